"""Semantic labeling end to end: tiny local VLM, a scripted OpenAI-compatible server, purity, resume, SQL."""

from __future__ import annotations

import json
import shutil
import tarfile

import pytest
from conftest import run_aig, sql_rows, start_and_kill, tar_digests
from corpus import make_images
from openai_server import VALID, ScriptedServer


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from aig.generators.tiny_models import build_tiny_sd
    from aig.labeling.tiny_vlm import build_tiny_llava

    base = tmp_path_factory.mktemp("label-models")
    return {"vlm": build_tiny_llava(base / "tiny-vlm"), "t2i": build_tiny_sd(base / "tiny-sd")}


@pytest.fixture(scope="module")
def dataset(models, tmp_path_factory):
    """6 captioned reals + one text-to-image fake per caption, and 3 reals without a caption."""
    base = tmp_path_factory.mktemp("label-data")
    imgs = make_images(base / "imgs", 9, size=(72, 56), fmt="PNG")
    lines = ["path,caption"] + [f"imgs/{p.name},{'a photo number %d' % i if i < 6 else ''}" for i, p in enumerate(imgs)]
    (base / "list.csv").write_text("\n".join(lines) + "\n")
    out = base / "ds"
    run_aig("build-data", "-o", out, "--input-list", base / "list.csv", "--size", 64, "--executor", "local",
            "--stages", "ingest,generate", "--t2i-model", models["t2i"], "--t2i-size", 32, "--t2i-steps", 2)
    return out


def copy(ds, tmp_path):
    dst = tmp_path / "ds"
    shutil.copytree(ds, dst)
    return dst


def sft_records(ds):
    out = {}
    for tar in sorted(ds.glob("shards/sft-*/*/*.tar")):
        with tarfile.open(tar) as t:
            for m in t.getmembers():
                if m.name.endswith(".json"):
                    out[m.name[:-5]] = json.loads(t.extractfile(m).read())
    return out


@pytest.mark.slow
def test_tiny_vlm_on_ray_constrained_idempotent_and_versioned(models, dataset, tmp_path):
    ds = copy(dataset, tmp_path)
    args = ["label-semantic", "-d", ds, "--model", models["vlm"], "--temperature", "1.0", "--max-new-tokens", "160",
            "--workers", "2", "--chunk-size", "4"]
    proc = run_aig(*args)
    assert "untrained random-weight stand-in" in proc.stdout and "carry NO meaning" in proc.stdout
    cands = sql_rows(ds, "select key, label from samples where (task='semantic' and label='fake') or task='both'")
    labels = sql_rows(ds, "select key, label, verdict, decision, decision_reason, parse_status, n_counted, sft_key, "
                          "raw_text from semantic_labels")
    assert sorted(r["key"] for r in labels) == sorted(r["key"] for r in cands) and len(cands) == 15
    # constrained decoding: every sampled output parses against the schema (tolerant validation may normalise it)
    assert {r["parse_status"] for r in labels} <= {"ok", "repaired"}
    for r in labels:  # purity rules, row by row
        flagged = r["n_counted"] >= 1
        expected = {("fake", True): "accepted", ("fake", False): "excluded",
                    ("real", True): "quarantined", ("real", False): "accepted"}[(r["label"], flagged)]
        if flagged != (r["verdict"] == "inconsistent"):  # verdict and findings disagree: the conservative decision
            expected = {"fake": "excluded", "real": "quarantined"}[r["label"]]
            assert r["decision_reason"].startswith("verdict and findings disagree")
        assert r["decision"] == expected
        assert (r["sft_key"] is not None) == (expected == "accepted")
    records = sft_records(ds)
    accepted = {r["sft_key"]: r for r in labels if r["decision"] == "accepted"}
    assert set(records) == set(accepted)
    for key, rec in records.items():
        assert rec["label"] == accepted[key]["label"] and rec["source_key"] == accepted[key]["key"]
        answer = json.loads(rec["messages"][1]["content"][0]["text"])
        assert answer["verdict"] == rec["label"]
        assert (len(answer["inconsistencies"]) >= 1) == (rec["label"] == "fake")
        assert set(rec["scramble"]) >= {"seed", "scale", "jpeg_quality", "noise_sigma", "blur_sigma"}
    run_aig("verify", ds)
    # Hugging Face datasets (offline) loads the semantic-sft group, conversation included, from the dataset card
    from datasets import load_dataset

    (group,) = [p.name for p in (ds / "shards").glob("sft-*")]
    hf = load_dataset(str(ds), group, cache_dir=str(tmp_path / "hf"))
    loaded = {r["__key__"]: r for split in hf.values() for r in split}
    assert set(loaded) == set(records)
    for key, r in loaded.items():
        assert r["json"]["messages"][1]["content"][0]["text"] == records[key]["messages"][1]["content"][0]["text"]
        assert r["json"]["cls"] == {"real": 0, "fake": 1}[r["json"]["label"]] and r["png"].size[0] > 0
        assert r["json"]["annotation"]["verdict"] == records[key]["annotation"]["verdict"]
    joined = sql_rows(ds, "select s.task, l.decision, count(*) n from samples s join semantic_labels l using (key) "
                          "group by all")
    assert sum(r["n"] for r in joined) == 15
    rows = sql_rows(ds, "select generator, category, count(*) n from semantic_inconsistencies group by all")
    assert all(r["category"] for r in rows)

    before = tar_digests(ds)
    again = run_aig(*args)
    assert "15 already labelled, 0 labelled now" in again.stdout
    assert tar_digests(ds) == before

    prompt = tmp_path / "prompt.txt"
    prompt.write_text("List semantic inconsistencies as JSON.")
    proc = run_aig(*args, "--prompt-file", prompt, "--no-constrained", "--max-attempts", "2", "--max-new-tokens", "40",
                   check=False)
    # A random model rarely writes JSON unconstrained: when no answer at all is usable the run says so (exit 1).
    assert proc.returncode == 0 or "got no usable answer" in proc.stderr, proc.stderr
    versions = sql_rows(ds, "select prompt_version, count(*) n from semantic_labels group by all order by all")
    assert len(versions) == 2 and all(v["n"] == 15 for v in versions)
    unconstrained = sql_rows(ds, "select parse_status, attempts, raw_text from semantic_labels where prompt_version != 'v1'")
    for r in unconstrained:  # a random model rarely writes JSON unconstrained: stored with its raw text, not lost
        assert r["raw_text"] is not None
        if r["parse_status"] == "invalid":
            assert r["attempts"] == 2


def scripted_keys(ds):
    return sql_rows(ds, "select key, sha256, label from samples where (task='semantic' and label='fake') "
                        "or (task='both' and label='real') order by key")


def test_openai_endpoint_retries_malformed_and_failures(dataset, tmp_path, monkeypatch):
    ds = copy(dataset, tmp_path)
    rows = scripted_keys(ds)
    plan = {
        0: ["valid"], 1: ["consistent"], 2: ["malformed", "valid"], 3: ["malformed"], 4: ["truncated", "valid"],
        5: ["429", "429", "valid"], 6: ["500", "valid"], 7: ["slow", "valid"], 8: ["500"], 9: ["garbage-body", "valid"],
    }
    # verdict and findings that disagree: a real called inconsistent with nothing named, a fake called consistent
    disagree = {"real": {"verdict": "inconsistent", "inconsistencies": []},
                "fake": {"verdict": "consistent", "inconsistencies": [VALID["inconsistencies"][0]]}}
    at = {label: next(i for i in range(10, len(rows)) if rows[i]["label"] == label) for label in disagree}
    plan.update({i: [("content", json.dumps(disagree[label]))] for label, i in at.items()})
    with ScriptedServer(slow_s=3) as server:
        for i, steps in plan.items():
            server.scripts[rows[i]["sha256"]] = steps
        args = ["label-semantic", "-d", ds, "--backend", "openai", "--model", "served-vlm", "--base-url", server.url,
                "--timeout", "1", "--http-retries", "2", "--max-attempts", "3", "--concurrency", "4"]
        proc = run_aig(*args, check=False)
        assert proc.returncode == 0, proc.stderr
        assert {r["response_format"]["type"] for r in server.requests} == {"json_schema"}
        labels = {r["key"]: r for r in sql_rows(ds, "select * from semantic_labels")}
        failures = sql_rows(ds, "select input_path, reason, error, attempts from failures where stage='label-semantic'")
        # every candidate is in exactly one place
        assert len(labels) + len(failures) == len(rows)
        k = [r["key"] for r in rows]
        assert labels[k[0]]["parse_status"] == "ok" and labels[k[0]]["n_counted"] == 1  # 0.3 confidence not counted
        assert labels[k[1]]["verdict"] == "consistent"
        assert labels[k[2]]["attempts"] == 2 and labels[k[2]]["parse_status"] == "ok"
        bad = labels[k[3]]
        assert bad["parse_status"] == "invalid" and bad["decision"] == "invalid" and bad["attempts"] == 3
        assert "cannot say more" in bad["raw_text"]
        assert labels[k[5]]["parse_status"] == "ok" and labels[k[6]]["parse_status"] == "ok"
        assert labels[k[7]]["attempts"] == 2  # the slow reply timed out once
        assert labels[k[9]]["attempts"] == 2
        for label, i in at.items():
            got = labels[k[i]]
            assert got["decision"] == {"real": "quarantined", "fake": "excluded"}[label] and got["sft_key"] is None
            assert got["decision_reason"].startswith("verdict and findings disagree: verdict " + got["verdict"] + ",")
        assert [f["input_path"] for f in failures] == [f"sample:{k[8]}"]
        assert failures[0]["reason"] == "annotator_error" and "HTTP 500" in failures[0]["error"]
        # the server recovers: a re-run labels only what failed
        server.scripts[rows[8]["sha256"]] = ["valid"]
        again = run_aig(*args)
        assert f"{len(rows) - 1} already labelled, 1 labelled now" in again.stdout
    assert len(sql_rows(ds, "select key from semantic_labels")) == len(rows)


def test_caption_feeds_build_data(models, dataset, tmp_path):
    ds = copy(dataset, tmp_path)
    uncaptioned = sql_rows(ds, "select key, sha256 from samples where task='both' and coalesce(caption,'')='' order by key")
    assert len(uncaptioned) == 3
    with ScriptedServer() as server:
        for i, r in enumerate(uncaptioned):
            server.scripts[r["sha256"]] = [("caption", f'"a generated caption {i}"\n')]
        run_aig("label-semantic", "-d", ds, "--caption", "--backend", "openai", "--model", "m", "--base-url", server.url)
        assert {r["response_format"] for r in server.requests} == {None}
    caps = sql_rows(ds, "select key, caption from captions order by key")
    assert [c["caption"] for c in caps] == [f"a generated caption {i}" for i in range(3)]
    run_aig("build-data", "-o", ds, "--stages", "generate", "--executor", "local", "--t2i-model", models["t2i"],
            "--t2i-size", 32, "--t2i-steps", 2)
    prompts = {r["prompt"] for r in sql_rows(ds, "select prompt from samples where task='semantic'")}
    assert {c["caption"] for c in caps} <= prompts


def test_python_api_label_semantic(dataset, tmp_path):
    """aig.label_semantic builds the command's LabelOptions and returns its outcome; refusals and failed runs raise."""
    import aig

    ds = copy(dataset, tmp_path)
    with pytest.raises(TypeError, match="no_such_option"):
        aig.label_semantic(ds, "m", no_such_option=1)
    with pytest.raises(aig.AigError, match="--base-url"):
        aig.label_semantic(ds, "m", backend="openai")
    with ScriptedServer() as server:
        outcome = aig.label_semantic(ds, "m", backend="openai", base_url=server.url, limit=4)
        assert (outcome.report.candidates, outcome.report.labelled, outcome.problem) == (4, 4, None)
        server.default = "500"
        with pytest.raises(aig.LabelingFailed, match="11 of 11 candidates got no usable answer") as failed:
            aig.label_semantic(ds, "m", backend="openai", base_url=server.url, http_retries=0, max_attempts=1)
    assert failed.value.outcome.report.failures == 11 and failed.value.outcome.report.skipped == 4


@pytest.mark.slow
def test_resume_after_kill_matches_clean_run(models, dataset, tmp_path):
    clean, killed = copy(dataset, tmp_path / "a"), copy(dataset, tmp_path / "b")
    args = ["--model", models["vlm"], "--max-new-tokens", "64", "--chunk-size", "3", "--executor", "local"]
    run_aig("label-semantic", "-d", clean, *args)
    n = start_and_kill(["label-semantic", "-d", killed, *args], killed / "manifest" / "done", "sft-*.json", 2)
    assert n < 5
    run_aig("label-semantic", "-d", killed, *args)
    assert tar_digests(killed) == tar_digests(clean)
    q = "select key, decision, raw_text from semantic_labels order by key"
    assert sql_rows(killed, q) == sql_rows(clean, q)
    run_aig("verify", killed)


@pytest.mark.parametrize("args, message", [
    (["--model", "nobody/no-such-vlm"], "nobody/no-such-vlm"),
    (["--backend", "openai", "--model", "m"], "--base-url"),
    ([], "--model"),
    (["--model", "{vlm}", "--where", "no_such_column = 1"], "selecting samples failed"),
    (["--model", "{vlm}", "--prompt-version", "v9"], "unknown prompt version"),
    (["--model", "{vlm}", "-d", "s3://bucket/ds"], "object storage"),
])
def test_bad_options_fail_clearly(models, dataset, tmp_path, args, message):
    ds = copy(dataset, tmp_path)
    before = tar_digests(ds)
    proc = run_aig("label-semantic", "-d", ds, *[a.format(vlm=models["vlm"]) for a in args], check=False)
    assert proc.returncode == 2 and message in proc.stderr
    assert tar_digests(ds) == before


def test_missing_dataset(tmp_path, models):
    proc = run_aig("label-semantic", "-d", tmp_path / "nothing", "--model", models["vlm"], check=False)
    assert proc.returncode == 2 and "build one first" in proc.stderr


@pytest.mark.slow
def test_disk_full_clear_error_then_resume(models, dataset, tmp_path):
    from faults import mount_tmpfs, unmount

    disk = tmp_path / "disk"
    why = mount_tmpfs(disk, 16 * 2**20)
    if why:
        pytest.skip(why)
    try:
        ds = copy(dataset, disk)
        args = ["label-semantic", "-d", ds, "--model", models["vlm"], "--max-new-tokens", "32", "--executor", "local",
                "--chunk-size", "4"]
        import os

        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        filler = disk / "filler"
        filler.write_bytes(b"\0" * max(0, free - 150_000))  # room for the catalog, not for all the shards
        proc = run_aig(*args, check=False)
        assert proc.returncode == 2 and f"the disk holding dataset '{ds}' is full" in proc.stderr, proc.stderr
        assert not list(ds.glob("**/.*.tmp-*"))
        filler.unlink()
        run_aig(*args)
        assert len(sql_rows(ds, "select key from semantic_labels")) == 15
        run_aig("verify", ds)
    finally:
        unmount(disk)


def _holds(ds, secret: str) -> list[str]:
    """Files under `ds` whose bytes, tar members or Parquet values contain `secret`."""
    import pyarrow.parquet as pq

    found = []
    for p in sorted(ds.rglob("*")):
        if not p.is_file():
            continue
        if secret.encode() in p.read_bytes():
            found.append(str(p))
        if p.suffix == ".tar":
            with tarfile.open(p) as t:
                found += [f"{p}:{m.name}" for m in t.getmembers() if secret.encode() in t.extractfile(m).read()]
        if p.suffix == ".parquet":  # pages may be compressed: read every value too
            if secret in json.dumps(pq.read_table(p).to_pylist(), default=str):
                found.append(f"{p} (values)")
    return found


def test_secrets_are_never_written(dataset, tmp_path):
    ds = copy(dataset, tmp_path)
    rows = scripted_keys(ds)
    key, password = "sk-test-KEY-4f9a7c", "PaSsWoRd-8c1e"
    with ScriptedServer() as server:
        server.scripts[rows[0]["sha256"]] = ["500"]  # its error text (with the endpoint) lands in `failures`
        url = server.url.replace("http://", f"http://someone:{password}@")
        args = ["label-semantic", "-d", ds, "--backend", "openai", "--model", "m", "--base-url", url,
                "--api-key", key, "--http-retries", "0", "--max-attempts", "1", "--batch-size", "2", "--concurrency", "2"]
        logs = [run_aig(*args)]
        # one pool and one HTTP session per thread for the whole run: 2 connections, not one set per batch
        assert len({r["port"] for r in server.requests}) <= 2
    logs.append(run_aig("report", ds))
    logs.append(run_aig("build-data", "-o", ds, "--stages", "ingest", "--executor", "local",
                        f"--api-key={key}", "--input-dir", f"http://x:{password}@127.0.0.1:9/none", check=False))
    assert sql_rows(ds, "select count(*) as n from runs where command like '%api-key%***%'")[0]["n"] >= 1
    annotators = {r["annotator"] for r in sql_rows(ds, "select distinct annotator from semantic_labels")}
    assert annotators == {f"openai:http://***@127.0.0.1:{server.url.split(':')[2]}#m"}
    for secret in (key, password):
        assert _holds(ds, secret) == []
        assert not any(secret in p.stdout + p.stderr for p in logs)


def test_openai_misbehaving_server_is_cut_off_and_the_run_fails(dataset, tmp_path):
    ds = copy(dataset, tmp_path)
    rows = scripted_keys(ds)
    with ScriptedServer(trickle_s=0.2, huge_bytes=300_000) as server:
        for i, step in enumerate(["trickle", "trickle-headers", "huge", "content-list"]):
            server.scripts[rows[i]["sha256"]] = [step]
        args = ["label-semantic", "-d", ds, "--backend", "openai", "--model", "m", "--base-url", server.url,
                "--timeout", "1", "--http-retries", "0", "--max-attempts", "1", "--max-response-bytes", "100000"]
        proc = run_aig(*args, check=False)
        assert len(server.hangups) == 2 and max(server.hangups) < 4, server.hangups  # cut off at ~1 s, not 200 s
        # 3 failed requests + 1 invalid answer of 15 > 0.25: exit 1 with a summary
        assert proc.returncode == 1 and f"4 of {len(rows)} candidates got no usable answer" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
        errors = {r["input_path"]: r["error"] for r in sql_rows(ds, "select input_path, error from failures")}
        k = [r["key"] for r in rows]
        assert "no complete reply" in errors[f"sample:{k[0]}"] and "within 1s" in errors[f"sample:{k[1]}"]
        assert "exceeds 100000 bytes" in errors[f"sample:{k[2]}"]
        bad = sql_rows(ds, f"select parse_status, raw_text from semantic_labels where key = '{k[3]}'")[0]
        assert bad["parse_status"] == "invalid" and bad["raw_text"].startswith("(message.content is a list")
        # the next run retries the three failed requests; every one fails again: exit 1, "all"
        for i in range(3):
            server.scripts[rows[i]["sha256"]] = ["500"]
        again = run_aig(*args, check=False)
        assert again.returncode == 1 and "3 of 3 candidates got no usable answer" in again.stderr and "all" in again.stderr
