"""`aig label-semantic`: options to a LabelJob, then the run and its summary."""

from __future__ import annotations

import sys
from pathlib import Path

import typer


def _echo(msg: str) -> None:
    from aig.pipeline.redact import redact_url

    print(f"[aig] {redact_url(msg)}", file=sys.stderr, flush=True)


def stand_in_note(model: str) -> str | None:
    """A warning when the annotator is one of our untrained stand-ins (their config says so)."""
    import json

    cfg = Path(model, "config.json")
    if cfg.is_file() and json.loads(cfg.read_text()).get("aig_stand_in"):
        return (f"NOTE: the annotator '{model}' is an untrained random-weight stand-in: its labels carry NO meaning; "
                "they only exercise the pipeline. Use a real VLM (e.g. --model Qwen/Qwen2.5-VL-7B-Instruct).")
    return None


def run_label_semantic(fail, o: dict, command: str) -> None:
    from aig.pipeline.config import RunnerConfig, ShardConfig

    from .backends import BackendError, BackendSpec, Decoding, check_backend
    from .prompts import ANNOTATE, CAPTION, resolve
    from .purity import PurityRules
    from .run import group_name, label_dataset
    from .worker import LabelJob

    if not o["model"]:
        fail("name the annotator with --model: a hub id or local folder (e.g. Qwen/Qwen2.5-VL-7B-Instruct), "
             "or the served model's name with --backend openai")
    if o["backend"] not in ("transformers", "openai"):
        fail(f"--backend {o['backend']!r} unknown; use transformers or openai")
    if not 0 <= o["max_failed_fraction"] <= 1:
        fail(f"--max-failed-fraction {o['max_failed_fraction']:g} must be between 0 and 1")
    if o["executor"] not in ("ray", "local"):
        fail(f"--executor {o['executor']!r} unknown; use ray or local")
    spec = BackendSpec(o["backend"], o["model"], o["revision"], o["base_url"], o["api_key"], o["concurrency"],
                       o["timeout"], o["http_retries"], o["dtype"], o["max_response_bytes"])
    try:
        check_backend(spec)
        prompt, version = resolve(CAPTION if o["caption"] else ANNOTATE, o["prompt_version"],
                                  str(o["prompt_file"]) if o["prompt_file"] else None)
    except (BackendError, FileNotFoundError, KeyError) as e:
        fail(str(e).strip('"'))
    job = LabelJob(spec, Decoding(o["max_new_tokens"], o["temperature"], seed=o["seed"], constrained=o["constrained"]),
                   prompt, version, PurityRules(o["min_confidence"], o["min_inconsistencies"], o["quarantine_reals"]),
                   batch_size=o["batch_size"], max_attempts=o["max_attempts"],
                   task="caption" if o["caption"] else "annotate")
    job = LabelJob(**{**job.__dict__, "group": group_name(job)})
    note = stand_in_note(o["model"]) if o["backend"] == "transformers" else None
    if note:
        _echo(note)
    runner = RunnerConfig(executor=o["executor"], ray_address=o["ray_address"], workers=o["workers"],
                          gpus_per_worker=o["gpus_per_worker"])
    root = Path(o["dataset"])
    splits = [s.strip() for s in o["splits"].split(",")] if o["splits"] else None
    report = label_dataset(root, job, runner, ShardConfig(), splits, o["where"], o["limit"], o["chunk_size"],
                           command, _echo)
    what = "captioned" if o["caption"] else "labelled"
    typer.echo(f"dataset: {root.resolve()}")
    typer.echo(f"{report.run_id}: annotator {report.annotator}, prompt {report.prompt_version}: "
               f"{report.candidates} candidates, {report.skipped} already {what}, {report.labelled} {what} now, "
               f"{report.failures} failed (in `failures`), {report.seconds:.1f}s")
    if report.decisions:
        typer.echo("  decisions: " + ", ".join(f"{k} {v}" for k, v in report.decisions.items()))
    if not o["caption"]:
        typer.echo(f"  semantic-sft shards: shards/{report.group}/  query: aig sql -d {root} "
                   "\"select generator, category, count(*) from semantic_inconsistencies group by all\"")
    if note:
        typer.echo(note)
    problem = failed_summary(report, o["max_failed_fraction"], root)
    if report.errors:
        fail(f"{len(report.errors)} chunk(s) failed and stay to do; re-run the same command to finish them:\n  "
             + "\n  ".join(report.errors[:20]), code=1)
    if problem:
        fail(problem, code=1)


def failed_summary(report, max_fraction: float, root) -> str | None:
    """Why the run counts as failed (every candidate failed, or more than `max_fraction`), or None."""
    invalid = report.decisions.get("invalid", 0)
    attempted = report.labelled + report.failures
    failed = report.failures + invalid
    if not attempted or not failed or (failed < attempted and failed <= max_fraction * attempted):
        return None
    return (f"{failed} of {attempted} candidates got no usable answer ({report.failures} failed requests, "
            f"{invalid} invalid answers; {'all' if failed == attempted else f'over --max-failed-fraction {max_fraction:g}'}). "
            f"See why: aig sql -d {root} \"select error, count(*) from failures where run_id = '{report.run_id}' "
            "group by all\"; failed requests are retried by the next run.")
