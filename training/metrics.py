"""Pure metric functions (AUROC, balanced accuracy, threshold calibration) and the JSONL metrics log."""

from __future__ import annotations

import json
from pathlib import Path


def auroc(scores, labels) -> float:
    """Area under the ROC curve (Mann-Whitney U with tied ranks averaged); nan with a single class."""
    import numpy as np

    s, y = np.asarray(scores, np.float64), np.asarray(labels).astype(bool)
    npos, nneg = int(y.sum()), int((~y).sum())
    if not npos or not nneg:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), np.float64)
    sorted_s = s[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[y].sum() - npos * (npos + 1) / 2) / (npos * nneg))


def balanced_accuracy(scores, labels, threshold: float) -> float:
    """Mean of the real-class and fake-class accuracies; 'fake' when score > threshold."""
    import numpy as np

    s, y = np.asarray(scores, np.float64), np.asarray(labels).astype(bool)
    pred = s > threshold
    accs = [float((pred[y] == 1).mean()) if y.any() else None, float((pred[~y] == 0).mean()) if (~y).any() else None]
    accs = [a for a in accs if a is not None]
    return float(sum(accs) / len(accs)) if accs else float("nan")


def best_threshold(scores, labels) -> float:
    """Threshold maximising balanced accuracy; the middle of the best plateau, between observed scores."""
    import numpy as np

    s = np.unique(np.asarray(scores, np.float64))
    if len(s) < 2:
        return 0.5
    cands = np.concatenate([[s[0] - 1e-6], (s[:-1] + s[1:]) / 2])
    accs = np.array([balanced_accuracy(scores, labels, t) for t in cands])
    best = np.flatnonzero(accs >= accs.max() - 1e-12)
    return float(cands[best[len(best) // 2]])


def finite(obj):
    """NaN/inf -> None, recursively (strict JSON; AUROC is undefined with one class)."""
    import math

    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


class MetricsLog:
    """Append-only JSONL; on resume, lines after the checkpoint's step are dropped first.

    With `log_with=["tensorboard"]` every numeric field also goes to TensorBoard event files in the same
    folder (`tensorboard --logdir OUTPUT`); a resumed run purges the events after the checkpoint's step.
    """

    def __init__(self, path: Path, resume_step: int | None = None, log_with: list[str] | tuple = ()):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is None:
            path.write_text("")
        elif path.exists():
            keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln).get("step", 0) <= resume_step]
            path.write_text("".join(ln + "\n" for ln in keep))
        self.tensorboard = None
        if "tensorboard" in log_with:
            from torch.utils.tensorboard import SummaryWriter

            purge = resume_step + 1 if resume_step is not None else None
            self.tensorboard = SummaryWriter(log_dir=str(path.parent), purge_step=purge)

    def write(self, record: dict) -> None:
        record = finite(record)
        with open(self.path, "a") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")
        if self.tensorboard is not None:
            step = record.get("step", 0)
            for k, v in sorted(record.items()):
                if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool):
                    self.tensorboard.add_scalar(k.replace("val_", "val/", 1), v, step)
            self.tensorboard.flush()

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()
