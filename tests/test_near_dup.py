"""Near-duplicate grouping at ingest: re-encoded, resized and cropped copies of a photo share a group and split."""

from __future__ import annotations

import io
import random
import shutil

import numpy as np
import pytest
from conftest import run_aig, sql_rows
from PIL import Image

from aig.pipeline.sources import embedded_list

PHOTOS = embedded_list().parent
COPIES = ("q60", "half", "crop")


def _small(name: str, width: int) -> Image.Image:
    img = Image.open(PHOTOS / name).convert("RGB")
    return img.resize((width, round(img.height * width / img.width)), Image.Resampling.LANCZOS)


def _jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _write_photos(folder):
    """An original, its three copies (JPEG q60, 0.5x, 5% cropped off width and height) and three unrelated photos."""
    folder.mkdir(parents=True)
    original = _small("chelsea.png", 240)
    original.save(folder / "original.png")
    (folder / "q60.jpg").write_bytes(_jpeg(original, 60))
    original.resize((original.width // 2, original.height // 2), Image.Resampling.LANCZOS).save(folder / "half.png")
    dx, dy = round(original.width * 0.025), round(original.height * 0.025)
    original.crop((dx, dy, original.width - dx, original.height - dy)).save(folder / "crop.png")
    for name in ("coffee.png", "rocket.jpg", "astronaut.png"):
        _small(name, 200).save(folder / f"other_{name.split('.')[0]}.png")
    return folder


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return _write_photos(tmp_path_factory.mktemp("nd") / "photos")


def _by_name(rows):
    return {r["input_path"].rsplit("/", 1)[-1].split(".")[0]: r for r in rows}


def _table(dataset, table: str) -> list[dict]:
    """A manifest table read straight from its Parquet files (cheaper than an `aig sql` subprocess)."""
    import pyarrow.parquet as pq

    return [r for f in sorted((dataset / "manifest" / table).glob("*.parquet")) for r in pq.read_table(f).to_pylist()]


def test_copies_share_group_and_split_and_drop_mode_fails_them(photos, tmp_path):
    from aig.pipeline.config import SplitConfig
    from aig.pipeline.plan import assign_split

    out = tmp_path / "grouped"
    run_aig("build-data", "-o", out, "--executor", "local", "--stages", "ingest", "--input-dir", photos,
            "--split", "0.34,0.33,0.33")
    rows = _by_name(sql_rows(out, "select input_path, key, group_id, split, near_dup_of, phash from samples"))
    assert len(rows) == 7
    orig = rows["original"]
    # the group is named by its first member (the largest copy) and all copies share its split ...
    assert orig["near_dup_of"] is None and orig["group_id"] == orig["key"]
    for name in COPIES:
        assert (rows[name]["group_id"], rows[name]["split"], rows[name]["near_dup_of"]) == \
            (orig["key"], orig["split"], orig["key"]), name
    # ... which, split by their own ids as byte-exact deduplication did, they would not all be
    cfg = SplitConfig(train=0.34, val=0.33, test=0.33)
    assert len({assign_split(rows[n]["key"], cfg) for n in ("original", *COPIES)}) > 1
    for name in ("other_coffee", "other_rocket", "other_astronaut"):  # unrelated photos are not grouped
        assert rows[name]["near_dup_of"] is None and rows[name]["group_id"] == rows[name]["key"]

    dropped = tmp_path / "dropped"
    run_aig("build-data", "-o", dropped, "--executor", "local", "--stages", "ingest", "--input-dir", photos,
            "--near-dup", "drop")
    kept = _by_name(_table(dropped, "samples"))
    assert sorted(kept) == ["original", "other_astronaut", "other_coffee", "other_rocket"]
    failures = _by_name(_table(dropped, "failures"))
    assert sorted(failures) == sorted(COPIES)
    for f in failures.values():
        assert f["reason"] == "near_duplicate" and f["duplicate_of"].endswith("original.png")
        assert "bits apart" in f["error"]


def test_append_joins_the_existing_group_and_off_turns_grouping_off(photos, tmp_path):
    first, rest = tmp_path / "first", tmp_path / "rest"
    first.mkdir()
    rest.mkdir()
    for p in photos.iterdir():
        shutil.copy(p, (first if p.stem in ("half", "crop") else rest) / p.name)
    out = tmp_path / "ds"
    run_aig("build-data", "-o", out, "--executor", "local", "--stages", "ingest", "--input-dir", first)
    before = _by_name(_table(out, "samples"))
    run_aig("build-data", "-o", out, "--executor", "local", "--stages", "ingest", "--input-dir", first,
            "--input-dir", rest)
    rows = _by_name(_table(out, "samples"))
    assert len(rows) == 7
    anchor = before["crop"]["group_id"]  # samples already stored keep their group; new copies join it
    assert {n: rows[n]["group_id"] for n in before} == {n: before[n]["group_id"] for n in before}
    for name in ("original", *COPIES):
        assert (rows[name]["group_id"], rows[name]["split"]) == (anchor, before["crop"]["split"]), name

    off = tmp_path / "off"
    run_aig("build-data", "-o", off, "--executor", "local", "--stages", "ingest", "--input-dir", photos,
            "--near-dup", "off")
    rows = _table(off, "samples")
    assert len(rows) == len({r["group_id"] for r in rows}) == 7 and not any(r["phash"] for r in rows)


def test_bad_near_dup_value_is_a_one_line_error(tmp_path):
    proc = run_aig("build-data", "-o", tmp_path / "x", "--near-dup", "maybe", check=False)
    assert proc.returncode == 2 and "'maybe' is not one of 'group', 'drop', 'off'" in proc.stderr
    assert "Traceback" not in proc.stderr


# ---- pure functions --------------------------------------------------------------------------------


def test_close_pairs_matches_brute_force():
    from aig.pipeline.near_dup import close_pairs

    rng = np.random.default_rng(0)
    base = rng.integers(0, 2**63, 300, dtype=np.uint64)
    flips = [int(b) ^ int(sum(1 << int(k) for k in rng.choice(64, int(rng.integers(0, 14)), replace=False)))
             for b in base[:100]]
    hashes = np.array([*map(int, base), *flips], dtype=np.uint64)
    brute = sorted((i, j) for i in range(len(hashes)) for j in range(i + 1, len(hashes))
                   if bin(int(hashes[i]) ^ int(hashes[j])).count("1") <= 10)
    assert close_pairs(hashes, 10) == brute and len(brute) >= 60


def test_grouping_is_order_independent(photos):
    from aig.pipeline.config import SplitConfig
    from aig.pipeline.plan import hash_inputs, make_plan
    from aig.pipeline.sources import from_folder

    items = from_folder(str(photos))
    results = []
    for seed in range(3):
        shuffled = items[:]
        random.Random(seed).shuffle(shuffled)
        plan = make_plan(shuffled, hash_inputs(shuffled, max_pixels=10**8), [], SplitConfig(), 1000, 0, "group")
        results.append({r["input_path"]: (r["group_id"], r["split"], r["near_dup_of"]) for r in plan})
    assert results[0] == results[1] == results[2]
    assert len({g for g, _, _ in results[0].values()}) == 4  # the photo and its copies, plus 3 unrelated


def test_perceptual_hash_skips_what_ingest_rejects():
    from aig.pipeline.near_dup import perceptual_hash

    img = _small("coffee.png", 64)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    assert perceptual_hash(buf.getvalue(), 10**6)[1] == img.width * img.height
    assert perceptual_hash(buf.getvalue(), 100) is None  # too many pixels: never decoded here
    assert perceptual_hash(b"not an image", 10**6) is None
    assert perceptual_hash(buf.getvalue()[:200], 10**6) is None  # truncated
