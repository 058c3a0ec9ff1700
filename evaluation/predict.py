"""`aig predict`: per image, the verdict, both branch scores, which branch fired and the named inconsistencies."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .evaluate import fuse_row, load_branches
from .folders import IMAGE_EXTS
from .options import EvalError, PredictOptions


@dataclass
class PredictReport:
    results: list[dict] = field(default_factory=list)  # one per image: path, error, verdict, scores, inconsistencies
    semantic: bool = False  # the semantic branch ran

    @property
    def unreadable(self) -> int:
        return sum(1 for r in self.results if r["error"])

    def to_json(self) -> str:
        return json.dumps(self.results, indent=1, ensure_ascii=False)

    def lines(self) -> list[str]:
        out = []
        for r in self.results:
            if r["error"]:
                out.append(f"{r['path']}: ERROR {r['error']}")
                continue
            parts = [f"{r['path']}: {r['verdict'].upper()}"]
            if r["pixel_prob"] is not None:
                parts.append(f"pixel {r['pixel_prob']:.3f}")
            if self.semantic:
                parts.append(f"semantic {r['semantic_verdict'] or 'unreadable answer'} (P(fake) {r['semantic_prob']:.3f})")
            parts.append(f"fired: {r['fired']}")
            out.append("  ".join(parts))
            out += [f"    - {inc.get('category')}: {inc.get('description')}" for inc in r["inconsistencies"]]
        return out


def image_files(paths: list[Path]) -> list[Path]:
    """The files given, and the images under the folders given (sorted)."""
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTS)
        else:
            out.append(p)
    return out


def run(options: PredictOptions) -> PredictReport:
    from .branches import set_threads
    from .dataset_io import open_path

    options.check()
    if not (options.pixel or options.has_semantic):
        raise EvalError("pass --pixel CHECKPOINT and/or --semantic-model MODEL (with --semantic-adapter DIR)")
    files = image_files(options.paths)
    if not files:
        raise EvalError("no images found in the given paths")
    set_threads(options.threads)
    pix, sem, opts = load_branches(options)
    report = PredictReport(semantic=sem is not None)
    for f in files:
        img, err = open_path(str(f))
        rec = {"path": str(f), "error": err, "verdict": None, "pixel_prob": None, "semantic_verdict": None,
               "fired": None, "inconsistencies": []}
        if img is not None:
            p = pix.score([img])[0] if pix else None
            s = sem.ask([img])[0] if sem else None
            fused = fuse_row(p, s.says_fake if s else None, opts, s.prob_fake if s else None)
            rec.update(verdict=fused["fused_pred"], pixel_prob=p, fired=fused["fired"],
                       fused_score=fused.get("fused_score"))
            if s:
                rec.update(semantic_verdict=s.verdict, semantic_prob=s.prob_fake, semantic_status=s.status,
                           inconsistencies=s.inconsistencies, semantic_text=s.text)
        report.results.append(rec)
    return report
