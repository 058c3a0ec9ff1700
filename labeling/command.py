"""`aig label-semantic` as a library function: LabelOptions -> a LabelJob -> the run -> a LabelOutcome."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from aig.manifests.errors import AigError

from .options import LabelOptions
from .run import LabelReport


class LabelingFailed(AigError):
    """A labeling run ended with chunks to redo or too many failed candidates; `.outcome` holds its counts."""

    def __init__(self, message: str, outcome: LabelOutcome):
        super().__init__(message)
        self.outcome = outcome


@dataclass
class LabelOutcome:
    """What a label-semantic run did, and whether it counts as failed (`problem`)."""
    report: LabelReport
    dataset: Path
    caption: bool
    max_failed_fraction: float
    note: str | None = None  # the annotator is an untrained stand-in

    def lines(self) -> list[str]:
        r, what = self.report, "captioned" if self.caption else "labelled"
        out = [f"dataset: {self.dataset.resolve()}",
               f"{r.run_id}: annotator {r.annotator}, prompt {r.prompt_version}: {r.candidates} candidates, "
               f"{r.skipped} already {what}, {r.labelled} {what} now, {r.failures} failed (in `failures`), {r.seconds:.1f}s"]
        if r.decisions:
            out.append("  decisions: " + ", ".join(f"{k} {v}" for k, v in r.decisions.items()))
        if not self.caption:
            out.append(f"  semantic-sft shards: shards/{r.group}/  query: aig sql -d {self.dataset} "
                       "\"select generator, category, count(*) from semantic_inconsistencies group by all\"")
        return out + ([self.note] if self.note else [])

    @property
    def problem(self) -> str | None:
        """Why the run counts as failed (chunks left to do, or too many failed candidates), or None."""
        if self.report.errors:
            return (f"{len(self.report.errors)} chunk(s) failed and stay to do; re-run the same command to finish them:\n  "
                    + "\n  ".join(self.report.errors[:20]))
        return failed_summary(self.report, self.max_failed_fraction, self.dataset)


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


def run(options: LabelOptions, *, command: str = "aig.label_semantic", log=_echo) -> LabelOutcome:
    """Label (or caption) the dataset's candidates; progress goes to `log`. User errors raise AigError."""
    from aig.pipeline.config import RunnerConfig, ShardConfig

    from .backends import BackendSpec, Decoding, check_backend
    from .prompts import ANNOTATE, CAPTION, resolve
    from .purity import PurityRules
    from .run import group_name, label_dataset
    from .worker import LabelJob

    o = options
    o.check()
    spec = BackendSpec(o.backend, o.model, o.revision, o.base_url, o.api_key, o.concurrency, o.timeout, o.http_retries,
                       o.dtype, o.max_response_bytes)
    check_backend(spec)
    prompt, version = resolve(CAPTION if o.caption else ANNOTATE, o.prompt_version,
                              str(o.prompt_file) if o.prompt_file else None)
    job = LabelJob(spec, Decoding(o.max_new_tokens, o.temperature, seed=o.seed, constrained=o.constrained),
                   prompt, version, PurityRules(o.min_confidence, o.min_inconsistencies, o.quarantine_reals),
                   batch_size=o.batch_size, max_attempts=o.max_attempts, task="caption" if o.caption else "annotate")
    job = LabelJob(**{**job.__dict__, "group": group_name(job)})
    note = stand_in_note(o.model) if o.backend == "transformers" else None
    if note:
        log(note)
    runner = RunnerConfig(executor=o.executor, ray_address=o.ray_address, workers=o.workers,
                          gpus_per_worker=o.gpus_per_worker)
    root = Path(o.dataset)
    splits = [s.strip() for s in o.splits.split(",")] if o.splits else None
    report = label_dataset(root, job, runner, ShardConfig(), splits, o.where, o.limit, o.chunk_size, command, log)
    return LabelOutcome(report, root, o.caption, o.max_failed_fraction, note)


def failed_summary(report: LabelReport, max_fraction: float, root) -> str | None:
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
