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
    from generators.tiny_models import build_tiny_sd
    from labeling.tiny_vlm import build_tiny_llava

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
    # constrained decoding: every sampled output is schema-valid JSON
    assert {r["parse_status"] for r in labels} == {"ok"}
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
    run_aig(*args, "--prompt-file", prompt, "--no-constrained", "--max-attempts", "2", "--max-new-tokens", "40")
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
