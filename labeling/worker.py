"""One annotator loaded once (per Ray actor, or in the driver for HTTP backends) labelling chunks of samples.

Per chunk it writes the label tables, the semantic-sft shards and its done marker (last).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from aig.manifests.dataset import Dataset
from aig.manifests.layout import chunk_name
from aig.pipeline.chunks import Outcome, failure_outcome, sample_outcome, write_chunk
from aig.pipeline.config import ShardConfig
from aig.pipeline.shards import read_member

from . import purity, schema
from .backends import BackendSpec, Decoding, Reply, make_backend
from .records import conversation
from .scramble import ScrambleRanges, draw_recipe

STAGE = "label-semantic"
CAPTION_STAGE = "caption"
MIME = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp"}


@dataclass(frozen=True)
class LabelJob:
    """What a labelling run does, identical for every chunk."""

    backend: BackendSpec
    decoding: Decoding
    prompt: str
    prompt_version: str
    rules: purity.PurityRules = field(default_factory=purity.PurityRules)
    scramble: ScrambleRanges = field(default_factory=ScrambleRanges)
    batch_size: int = 8
    max_attempts: int = 3
    group: str = ""  # shard group of the semantic-sft samples
    task: str = "annotate"  # annotate | caption


def run_with_retries(backend, inputs: list, prompt: str, schema_: dict | None, max_attempts: int,
                     parse) -> list[tuple[Reply, object, int]]:
    """Generate for each input; re-ask inputs whose reply failed or did not parse, up to max_attempts.
    Returns (last reply, parsed value or None, attempts) per input."""
    results: list = [None] * len(inputs)
    todo = list(range(len(inputs)))
    for attempt in range(max_attempts):
        if not todo:
            break
        replies = backend.generate([inputs[i] for i in todo], prompt, schema_, attempt)
        still = []
        for i, reply in zip(todo, replies):
            answered = reply.error is None and reply.text is not None and not reply.invalid
            parsed = parse(reply.text) if answered else None
            results[i] = (reply, parsed, attempt + 1)
            if parsed is None:
                still.append(i)
        todo = still
    return results


def parse_annotation(text: str):
    """(Annotation, parse status) or None when the text holds no valid annotation."""
    from .records import extract_json

    obj, repaired = extract_json(text)
    if obj is None:
        return None
    try:
        annotation, fixed = schema.from_dict(obj)
    except schema.SchemaError:
        return None
    return annotation, "repaired" if (repaired or fixed) else "ok"


def parse_caption(text: str):
    line = " ".join(text.strip().strip('"').split())
    return line[:400] if len(line) >= 3 else None


class LabelWorker:
    def __init__(self, job: LabelJob, threads: int = 1):
        self.job = job
        self.backend = make_backend(job.backend, job.decoding, threads)
        self.details = {**job.decoding.to_dict(), **self.backend.describe()}

    def _inputs(self, root: Path, rows: list[dict]) -> list:
        import io

        from PIL import Image

        out = []
        for r in rows:
            data = read_member(root, r)
            if self.backend.wants_bytes:
                out.append((data, MIME.get(r["format"], "application/octet-stream")))
            else:
                out.append(Image.open(io.BytesIO(data)).convert("RGB"))
        return out

    def run_chunk(self, root: str, chunk: int, rows: list[dict], shard_cfg: ShardConfig, run_id: str) -> dict:
        start = time.perf_counter()
        root = Path(root)
        job = self.job
        results = []
        for i in range(0, len(rows), job.batch_size):
            batch = rows[i:i + job.batch_size]
            t0 = time.perf_counter()
            if job.task == "caption":
                out = run_with_retries(self.backend, self._inputs(root, batch), job.prompt, None, job.max_attempts,
                                       parse_caption)
            else:
                out = run_with_retries(self.backend, self._inputs(root, batch), job.prompt, schema.json_schema(),
                                       job.max_attempts, parse_annotation)
            per = (time.perf_counter() - t0) / len(batch)
            results += [(row, *r, per) for row, r in zip(batch, out)]
        name = chunk_name(job.group, chunk)
        if job.task == "caption":
            return self._write_captions(root, name, chunk, results, shard_cfg, run_id, start)
        return self._write_labels(root, name, chunk, results, shard_cfg, run_id, start)

    def _failure(self, row: dict, reply: Reply, attempts: int, chunk: int, run_id: str, stage: str) -> Outcome:
        return failure_outcome(f"sample:{row['key']}", run_id, stage, self.job.group, chunk, "annotator_error",
                               reply.error or "no reply", attempts=attempts)

    def _write_labels(self, root, name, chunk, results, shard_cfg, run_id, start) -> dict:
        job = self.job
        annotator = job.backend.annotator_id()
        labels, findings, outcomes = [], [], []
        for row, reply, parsed, attempts, seconds in results:
            if reply.error is not None:
                outcomes.append(self._failure(row, reply, attempts, chunk, run_id, STAGE))
                continue
            annotation, status = parsed if parsed else (None, "invalid")
            decision, reason = purity.decide(row["label"], annotation, job.rules)
            counted = purity.counted(annotation, job.rules) if annotation else []
            sft_key = None
            if decision == purity.ACCEPTED:
                sft_key = f"{row['key']}-{job.group.removeprefix('sft-')}"
                outcomes.append(self._sft_sample(row, sft_key, counted, annotation, annotator, run_id, root))
            labels.append({
                "key": row["key"], "annotator": annotator, "prompt_version": job.prompt_version,
                "schema_version": schema.SCHEMA_VERSION, "run_id": run_id, "chunk": name, "label": row["label"],
                "generator": row.get("generator"), "split": row["split"],
                "verdict": annotation.verdict if annotation else None,
                "n_inconsistencies": len(annotation.inconsistencies) if annotation else None,
                "n_counted": len(counted) if annotation else None,
                "max_confidence": annotation.max_confidence() if annotation else None,
                "decision": decision, "decision_reason": reason, "parse_status": status, "attempts": attempts,
                "raw_text": reply.text, "annotation": json.dumps(annotation.to_dict()) if annotation else None,
                "sft_key": sft_key, "decoding": json.dumps({**self.details, "truncated": reply.truncated}),
                "purity": json.dumps(job.rules.to_dict()), "seconds": round(seconds, 4),
            })
            for idx, inc in enumerate(annotation.inconsistencies if annotation else []):
                findings.append({"key": row["key"], "annotator": annotator, "prompt_version": job.prompt_version,
                                 "label": row["label"], "generator": row.get("generator"), "split": row["split"],
                                 "decision": decision, "idx": idx, "category": inc.category,
                                 "description": inc.description, "confidence": inc.confidence,
                                 "box": json.dumps(inc.box) if inc.box else None})
        # label tables first, then the chunk (its done marker last): a chunk without a marker is cleaned up
        Dataset(root).write_table("semantic_labels", name, labels)
        Dataset(root).write_table("semantic_inconsistencies", name, findings)
        stats = write_chunk(root, job.group, chunk, outcomes, shard_cfg, STAGE, run_id)
        stats.update(seconds=time.perf_counter() - start, labelled=len(labels),
                     decisions={d: sum(1 for r in labels if r["decision"] == d) for d in
                                (purity.ACCEPTED, purity.EXCLUDED, purity.QUARANTINED, purity.INVALID)})
        return stats

    def _sft_sample(self, row, sft_key, counted, annotation, annotator, run_id, root) -> Outcome:
        job = self.job
        named = [{"category": i.category, "description": i.description} for i in counted]
        recipe = draw_recipe(sft_key, job.scramble)
        data = read_member(root, row)
        extra = {"messages": conversation(row["label"], named), "scramble": recipe, "annotator": annotator,
                 "prompt_version": job.prompt_version, "source_key": row["key"],
                 "annotation": annotation.to_dict()}
        prov = {"kind": "semantic-sft", "source_key": row["key"], "annotator": annotator,
                "prompt_version": job.prompt_version, "scramble": recipe, "purity": job.rules.to_dict()}
        return sample_outcome(
            key=sft_key, data=data, ext=row["format"], provenance=prov, extra_json=extra, run_id=run_id, stage=STAGE,
            task="semantic-sft", split=row["split"], label=row["label"], source_id=row["source_id"],
            group_id=row["group_id"], generator=row.get("generator"), generator_kind=row.get("generator_kind"),
            model_id=row.get("model_id"), seed=row.get("seed"), prompt=row.get("prompt"),
            input_path=f"sample:{row['key']}", origin="label", caption=row.get("caption"), width=row["width"],
            height=row["height"],
        )

    def _write_captions(self, root, name, chunk, results, shard_cfg, run_id, start) -> dict:
        job = self.job
        annotator = job.backend.annotator_id()
        rows, outcomes = [], []
        for row, reply, caption, attempts, _ in results:
            if reply.error is not None or caption is None:
                reply.error = reply.error or f"no usable caption after {attempts} attempt(s): {reply.text!r:.200}"
                outcomes.append(self._failure(row, reply, attempts, chunk, run_id, CAPTION_STAGE))
                continue
            rows.append({"key": row["key"], "source_id": row["source_id"], "caption": caption, "annotator": annotator,
                         "prompt_version": job.prompt_version, "run_id": run_id, "chunk": name,
                         "raw_text": reply.text})
        Dataset(root).write_table("captions", name, rows)
        stats = write_chunk(root, job.group, chunk, outcomes, shard_cfg, CAPTION_STAGE, run_id)
        stats.update(seconds=time.perf_counter() - start, labelled=len(rows))
        return stats
