"""A built dataset read unchanged by other tools: the README's "Use it with ..." snippets (webdataset, Hugging
Face datasets offline, timm, DuckDB, ray.data) run as written, and the DuckDB catalog follows a moved folder."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_aig

README = Path(__file__).resolve().parents[1] / "README.md"

# Run after the snippets, in their namespace: what a user sees must also be right.
CHECKS = '''
assert meta["cls"] == {"real": 0, "fake": 1}[meta["label"]] and image.size == (meta["width"], meta["height"])
names = get_dataset_config_names(DATASET)
assert "real" in names and any(n.startswith("pixel-") for n in names), names
truth = dict(((s, l), n) for s, l, n in counts)
for name in names:  # every group loads: one type per JSON field across all its records
    loaded = load_dataset(DATASET, name)
    for split, d in loaded.items():
        for r in d:
            j = r["json"]
            assert j["split"] == split and j["cls"] == {"real": 0, "fake": 1}[j["label"]]
            assert (r.get("png") or r.get("jpg")).size == (j["width"], j["height"]), (name, r["__key__"])
            if name.startswith("pixel-"):
                assert j["provenance"]["pair_id"] == j["pair_id"]
                assert (j["provenance"]["seed"] is not None) == (j["label"] == "fake")
assert len(hf["train"]) == con.execute("select count(*) from samples where stage = 'ingest' and split = 'train'").fetchone()[0]
n_fake, n_all = con.execute("select count(*) filter (where label = 'fake'), count(*) from samples "
                        "where task = 'pixel' and split = 'train'").fetchone()
assert (len(targets), sum(targets)) == (n_all, n_fake) and n_fake > 0, (len(targets), sum(targets), n_all, n_fake)
print("checks passed")
'''


def readme_snippets() -> list[str]:
    """The fenced python blocks of the README's "Use it with ..." section."""
    text = README.read_text()
    section = text[text.index("## Use it with"):]
    section = section[: section.index("\n## ", 1)]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def run_snippets(blocks: list[str], dataset: Path, cwd: Path, extra: str = "") -> subprocess.CompletedProcess:
    code = "\n".join(blocks).replace('DATASET = "aig-data/default"', f"DATASET = {str(dataset)!r}") + extra
    env = dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", HF_HOME=str(cwd / "hf"),
               HF_DATASETS_CACHE=str(cwd / "hf" / "datasets"), RAY_USAGE_STATS_ENABLED="0")
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def test_readme_snippets_read_a_built_dataset(pixel_dataset, tmp_path):
    blocks = readme_snippets()
    assert len(blocks) == 5 and 'DATASET = "aig-data/default"' in blocks[0]
    fast = [b for b in blocks if "import ray" not in b]  # ray.data: `test_readme_ray_data_snippet` (slow)
    # run from an unrelated working directory: nothing may depend on being inside the dataset folder
    proc = run_snippets(fast, pixel_dataset.resolve(), tmp_path, CHECKS)
    assert "checks passed" in proc.stdout
    assert not list((pixel_dataset / "shards").glob("**/*.parquet"))  # folder loaders see data only


@pytest.mark.slow  # starting Ray takes ~1 min on the 2-core CI machine
def test_readme_ray_data_snippet(pixel_dataset, tmp_path):
    blocks = readme_snippets()
    ray_block = [b for b in blocks if "import ray" in b]
    proc = run_snippets([blocks[0], *ray_block], pixel_dataset.resolve(), tmp_path)
    assert proc.stdout.strip().splitlines()[-1].endswith(" real")


def test_catalog_opens_anywhere_and_follows_a_move(pixel_dataset, tmp_path, monkeypatch):
    import duckdb

    def plain_count(ds: Path) -> int:
        con = duckdb.connect(str(ds / "catalog.duckdb"), read_only=True)
        try:
            return con.execute("select count(*) from samples").fetchone()[0]
        finally:
            con.close()

    n = plain_count(pixel_dataset)
    first = tmp_path / "first"
    shutil.copytree(pixel_dataset, first)
    from aig.manifests.catalog import refresh_catalog

    refresh_catalog(first)  # as a build there leaves it
    con = duckdb.connect(str(first / "catalog.duckdb"), read_only=True)
    sql = con.execute("select sql from duckdb_views() where view_name = 'samples'").fetchone()[0]
    con.close()
    assert str(first.resolve() / "manifest" / "samples") in sql
    moved = tmp_path / "moved"
    first.rename(moved)
    with pytest.raises(duckdb.IOException):  # still pointing at the (now gone) first place
        plain_count(moved)
    run_aig("info", moved)  # any aig command re-points the catalog
    assert plain_count(moved) == n
    # a copy aig may not write to (a read-only mount): answers come from the same views, in memory
    from aig.manifests import catalog

    ro = tmp_path / "ro"
    moved.rename(ro)
    before = (ro / "catalog.duckdb").read_bytes()

    def read_only_fs(root):
        raise PermissionError(f"[Errno 30] Read-only file system: '{root}'")

    monkeypatch.setattr(catalog, "refresh_catalog", read_only_fs)
    assert catalog.query_rows(ro, "select count(*) as n from samples") == [{"n": n}]
    assert (ro / "catalog.duckdb").read_bytes() == before
