"""Inputs and datasets on object storage: an S3-compatible server (moto) on loopback, reached through s3fs."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from conftest import AIG, aig_env, run_aig, sql_rows, tar_digests
from ray_cluster import free_port

# Object storage (a moto S3 server, s3fs) is exercised by `make test-slow`; the fast suite keeps the local paths.
pytestmark = pytest.mark.slow

PHOTOS = Path(__file__).resolve().parent.parent / "pipeline" / "assets" / "photos"
BUCKET = "aig-test"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A moto S3 server on 127.0.0.1 with one bucket; AWS_* variables point s3fs (and `aig`) at it."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    with pytest.MonkeyPatch.context() as mp:
        for k, v in {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
                     "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                     "AIG_CACHE_DIR": str(tmp_path_factory.mktemp("aig-cache"))}.items():
            mp.setenv(k, v)
        import s3fs

        fs = s3fs.S3FileSystem(skip_instance_cache=True)
        fs.mkdir(BUCKET)
        try:
            yield fs
        finally:
            server.stop()


def put_photos(fs, local: Path, prefix: str, names: list[str]) -> None:
    local.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(PHOTOS / name, local / name)
        fs.put_file(str(local / name), f"{BUCKET}/{prefix}/{name}")


def remote_digests(fs, url: str) -> dict[str, str]:
    base = url.removeprefix("s3://")
    fs.invalidate_cache()
    return {p[len(base) + 1:]: hashlib.sha256(fs.cat_file(p)).hexdigest()
            for p in sorted(fs.find(f"{base}/shards")) if p.endswith(".tar")}


FOUR = ["chelsea.png", "coffee.png", "rocket.jpg", "astronaut.png"]


# In-process and ingest only by default (fast); the slow variant adds Ray worker processes, which must
# reach the store on their own, and the reconstruct stage, which reads the real shards back from it.
@pytest.mark.parametrize("executor,stages", [("local", "ingest"),
                                             pytest.param("ray", "ingest,reconstruct", marks=pytest.mark.slow)])
def test_build_on_s3_equals_local_and_sql_info_verify_work_there(s3, tmp_path, executor, stages):
    prefix = f"photos-{executor}"
    put_photos(s3, tmp_path / "photos", prefix, FOUR)
    args = ["build-data", "--stages", stages, "--samples-per-shard", "2", "--size", "64"]
    url = f"s3://{BUCKET}/ds-{executor}"
    proc = run_aig(*args, "--input-dir", f"s3://{BUCKET}/{prefix}", "-o", url, "--executor", executor)
    assert f"dataset: {url}" in proc.stdout
    run_aig(*args, "--input-dir", tmp_path / "photos", "-o", tmp_path / "local", "--executor", "local")

    digests = remote_digests(s3, url)
    assert len(digests) >= 2 and any(k.startswith("shards/pixel-") for k in digests) == ("reconstruct" in stages)
    assert digests == tar_digests(tmp_path / "local")
    # done markers and the manifest are there too; the remote holds no temporary objects
    files = [p.removeprefix(f"{url[5:]}/") for p in s3.find(url[5:])]
    assert sum(f.startswith("manifest/done/") for f in files) == 2 * len(stages.split(","))
    assert {"info.json", "catalog.duckdb", "manifest/runs/run-0001.parquet"} <= set(files)
    assert not [f for f in files if ".tmp-" in f]

    q = "select task, split, label, count(*) as n from samples group by all order by all"
    assert sql_rows(url, q) == sql_rows(tmp_path / "local", q)
    assert sql_rows(url, "select count(*) as n from samples where stage = 'ingest' and input_path like 's3://%'") == [{"n": 4}]
    info = run_aig("info", url).stdout
    assert "real" in info and "size in storage" in info
    assert run_aig("verify", url).stdout.strip() == f"{url}: OK"

    tar = next(k for k in digests if k.startswith("shards/real/"))
    data = bytearray(s3.cat_file(f"{url[5:]}/{tar}"))
    data[700] ^= 0xFF
    s3.pipe(f"{url[5:]}/{tar}", bytes(data))
    bad = run_aig("verify", url, check=False)
    assert bad.returncode == 1 and f"{tar}: sha256 differs from the done marker" in bad.stdout


def test_s3_build_killed_then_resumed_equals_clean_build(s3, tmp_path):
    put_photos(s3, tmp_path / "photos", "p12", sorted(p.name for p in PHOTOS.iterdir() if p.suffix in (".png", ".jpg")))
    args = ["build-data", "--stages", "ingest", "--samples-per-shard", "1", "--size", "96", "--executor", "local",
            "--input-dir", tmp_path / "photos"]
    url = f"s3://{BUCKET}/killed"
    proc = subprocess.Popen([AIG, *map(str, args), "-o", url], env=aig_env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done = f"{BUCKET}/killed/manifest/done"
    deadline = time.time() + 120
    n_done = 0
    while time.time() < deadline and proc.poll() is None and n_done < 3:
        time.sleep(0.05)
        s3.invalidate_cache()
        n_done = len(s3.ls(done)) if s3.exists(done) else 0
    assert proc.poll() is None, "the run finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    s3.invalidate_cache()
    assert 3 <= len(s3.ls(done)) < 12

    resumed = run_aig(*args, "-o", url)
    assert "resumed" in resumed.stdout
    run_aig(*args, "-o", tmp_path / "clean")
    assert remote_digests(s3, url) == tar_digests(tmp_path / "clean")
    assert run_aig("verify", url).returncode == 0
    assert sql_rows(url, "select count(*) as n from runs where status = 'complete'") == [{"n": 1}]


def _shard(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_s3_inputs_list_and_shards_into_a_local_dataset(s3, tmp_path):
    put_photos(s3, tmp_path / "photos", "listed/img", ["chelsea.png", "coffee.png"])
    s3.pipe(f"{BUCKET}/listed/photos.csv", b"path,caption\nimg/chelsea.png,a cat\nimg/coffee.png,a cup\nimg/gone.png,x\n")
    for i, name in enumerate(["rocket.jpg", "retina.jpg"]):
        s3.pipe(f"{BUCKET}/wds/{i}.tar", _shard({f"s{i}.jpg": (PHOTOS / name).read_bytes(), f"s{i}.txt": b"shard cap"}))
    out = tmp_path / "ds"
    run_aig("build-data", "--stages", "ingest", "--size", "64", "--executor", "local", "-o", out,
            "--input-list", f"s3://{BUCKET}/listed/photos.csv", "--input-shards", f"s3://{BUCKET}/wds/{{0..1}}.tar")
    rows = sql_rows(out, "select input_path, caption from samples order by input_path")
    assert rows == [
        {"input_path": f"s3://{BUCKET}/listed/img/chelsea.png", "caption": "a cat"},
        {"input_path": f"s3://{BUCKET}/listed/img/coffee.png", "caption": "a cup"},
        {"input_path": f"s3://{BUCKET}/wds/0.tar#s0.jpg", "caption": "shard cap"},
        {"input_path": f"s3://{BUCKET}/wds/1.tar#s1.jpg", "caption": "shard cap"},
    ]
    assert sql_rows(out, "select input_path, reason from failures") == [
        {"input_path": f"s3://{BUCKET}/listed/img/gone.png", "reason": "missing"}]
    run_aig("verify", out)


def test_s3_errors_are_clear_and_destroy_nothing(s3, tmp_path):
    put_photos(s3, tmp_path / "photos", "some/photos", ["chelsea.png"])
    base = ["build-data", "--stages", "ingest", "--executor", "local", "--input-dir", tmp_path / "photos"]
    no_bucket = run_aig(*base, "-o", "s3://no-such-bucket/ds", check=False)
    assert no_bucket.returncode == 2 and "cannot access 's3://no-such-bucket/ds'" in no_bucket.stderr
    assert "Traceback" not in no_bucket.stderr
    refused = run_aig(*base, "-o", f"s3://{BUCKET}/some", "--overwrite", check=False)
    assert refused.returncode == 2 and "holds objects but no aig dataset" in refused.stderr
    s3.invalidate_cache()
    assert s3.exists(f"{BUCKET}/some/photos/chelsea.png")
    missing = run_aig("build-data", "--input-dir", f"s3://{BUCKET}/nothing-here", "-o", tmp_path / "x", check=False)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    no_ds = run_aig("sql", "-d", f"s3://{BUCKET}/nothing-here", "select 1", check=False)
    assert no_ds.returncode == 2 and "holds no aig dataset" in no_ds.stderr


@pytest.mark.slow
def test_s3_overwrite_replaces_the_dataset_and_readers_drop_stale_files(s3, tmp_path):
    put_photos(s3, tmp_path / "two", "ow-in", ["chelsea.png", "coffee.png"])
    url = f"s3://{BUCKET}/ow"
    base = ["build-data", "--stages", "ingest", "--size", "64", "--executor", "local", "--samples-per-shard", "1"]
    run_aig(*base, "--input-dir", tmp_path / "two", "-o", url)
    assert sql_rows(url, "select count(*) as n from samples") == [{"n": 2}]
    (tmp_path / "one").mkdir()
    shutil.copy(PHOTOS / "rocket.jpg", tmp_path / "one" / "rocket.jpg")
    run_aig(*base, "--input-dir", tmp_path / "one", "-o", url, "--overwrite")
    s3.invalidate_cache()
    done = sorted(p.rsplit("/", 1)[1] for p in s3.ls(f"{BUCKET}/ow/manifest/done"))
    assert done == ["real-000000.json"]
    # the reader's mirror held two chunks; the second is gone remotely and must not linger in its answers
    assert sql_rows(url, "select count(*) as n, min(input_path) as p from samples") == [
        {"n": 1, "p": str((tmp_path / "one" / "rocket.jpg").resolve())}]
    assert sql_rows(url, "select count(*) as n from runs") == [{"n": 1}]
    run_aig("verify", url)


def test_upload_order_puts_the_done_marker_last():
    from aig.pipeline.storage import upload_order

    rels = ["manifest/done/real-000001.json", "manifest/samples/real-000001.parquet",
            "index/real/train/real-000001-00.index.parquet", "shards/real/train/real-000001-00.tar",
            "manifest/failures/real-000001.parquet", "shards/real/val/real-000001-00.tar"]
    order = upload_order(rels)
    assert order[-1] == "manifest/done/real-000001.json"
    assert [r for r in order if r.endswith(".tar")] == order[:2]
    assert order.index("index/real/train/real-000001-00.index.parquet") < order.index(
        "manifest/samples/real-000001.parquet")
