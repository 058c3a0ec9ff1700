"""The embedded default, end to end through the CLI on the embedded local Ray."""

from __future__ import annotations

import json
import tarfile

import pyarrow.parquet as pq
import pytest
from conftest import run_aig, sql_rows, tar_digests


# Every default but the native policy's maximum side (2048): at 256 the photos are centre-cropped, never resized,
# and the tiny autoencoder's tiled reconstruction costs a fraction (`make demo` builds the full default).
SIZE = ("--size", "256")


@pytest.fixture(scope="module")
def default_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("default") / "ds"
    proc = run_aig("build-data", "-o", out, *SIZE)
    return out, proc


def test_build_data_default_reports_and_counts(default_dataset):
    out, proc = default_dataset
    assert f"dataset: {out.resolve()}" in proc.stdout
    assert "ingest: 12 inputs -> 12 samples, 0 failures" in proc.stdout
    assert "reconstruct: 24 samples, 0 failures" in proc.stdout
    assert "ray ready in" in proc.stderr and "(local, " in proc.stderr
    assert "building the 12 bundled sample photos" in proc.stderr
    rows = sql_rows(out, "select stage, label, task, count(*) as n from samples group by all order by all")
    assert rows == [{"stage": "ingest", "label": "real", "task": "both", "n": 12},
                    {"stage": "reconstruct", "label": "fake", "task": "pixel", "n": 12},
                    {"stage": "reconstruct", "label": "real", "task": "pixel", "n": 12}]


def test_every_sample_has_provenance_and_caption(default_dataset):
    out, _ = default_dataset
    rows = sql_rows(out, "select * from samples where stage = 'ingest' order by key")
    assert len({r["key"] for r in rows}) == 12
    for r in rows:
        assert "." not in r["key"] and r["caption"] and r["input_path"].startswith("embedded:")
        assert r["canonical"] == "native:256"
        # native: each side is the source's, or centre-cropped to 256; nothing is resized
        assert (r["width"], r["height"]) == (min(r["source_width"], 256), min(r["source_height"], 256))
    runs = sql_rows(out, "select * from runs")
    assert len(runs) == 1 and runs[0]["status"] == "complete"
    config = json.loads(runs[0]["config"])
    assert config["ingest"]["policy"] == "native" and config["inputs"]["embedded"] is True
    assert config["reconstruct"]["pair_format"] == "auto"
    versions = json.loads(runs[0]["versions"])
    assert versions["ray"] != "not installed" and versions["pillow"] != "not installed"
    assert runs[0]["git_commit"]


def test_stereo_pair_shares_a_split(default_dataset):
    out, _ = default_dataset
    rows = sql_rows(out, "select group_id, count(distinct split) as splits, count(*) as n from samples "
                         "where group_id = 'stereo_motorcycle' group by all")
    assert rows == [{"group_id": "stereo_motorcycle", "splits": 1, "n": 6}]  # 2 reals + their 2 pixel pairs


def test_verify_and_info(default_dataset):
    out, _ = default_dataset
    assert "OK" in run_aig("verify", out).stdout
    text = run_aig("info", out).stdout
    assert "size on disk" in text and "failures: none" in text


def test_shards_readable_by_standard_consumers(default_dataset):
    import webdataset as wds

    out, _ = default_dataset
    info = json.loads((out / "info.json").read_text())
    files = [out / f for split in info["splits"].values() for f in split["filenames"]]
    assert sum(s["num_samples"] for s in info["splits"].values()) == 36
    samples = list(wds.WebDataset([str(f) for f in files], shardshuffle=False).decode("pil"))
    assert len(samples) == 36
    for s in samples:
        img = s.get("png") or s.get("jpg")  # a JPEG left as decoded keeps its own bytes
        assert img.mode == "RGB" and s["json"]["key"] == s["__key__"]
    # timm-style _info.json: filenames relative to the group folder
    group_info = json.loads((out / "shards" / "real" / "_info.json").read_text())
    for split in group_info["splits"].values():
        for f, n in zip(split["filenames"], split["shard_lengths"]):
            with tarfile.open(out / "shards" / "real" / f) as tf:
                names = tf.getnames()
            assert len(names) == 2 * n and names == sorted(names)


def test_index_gives_random_access(default_dataset):
    out, _ = default_dataset
    assert not list((out / "shards").glob("**/*.parquet"))  # folder loaders read shards/ as data only
    indexes = sorted((out / "index").glob("**/*.index.parquet"))
    assert len(indexes) == len(list((out / "shards").glob("**/*.tar")))
    for index in indexes:
        tar = out / "shards" / index.relative_to(out / "index").as_posix().replace(".index.parquet", ".tar")
        with tarfile.open(tar) as tf:
            members = {m.name: (m.offset_data, m.size) for m in tf}
        for row in pq.read_table(index).to_pylist():
            assert members[row["member"]] == (row["offset_data"], row["size"])
            assert "." not in row["key"]


def test_rebuild_is_byte_identical_with_local_executor(default_dataset, tmp_path):
    out, _ = default_dataset
    other = tmp_path / "again"
    run_aig("build-data", "-o", other, "--executor", "local", "--stages", "ingest", *SIZE)
    real = {k: v for k, v in tar_digests(out).items() if k.startswith("shards/real/")}
    assert tar_digests(other) == real and real


def test_second_run_appends_nothing_new(default_dataset):
    out, _ = default_dataset
    before = tar_digests(out)
    proc = run_aig("build-data", "-o", out, "--executor", "local", *SIZE)
    assert "ingest: 0 inputs -> 0 samples" in proc.stdout and "reconstruct" not in proc.stdout
    assert tar_digests(out) == before
