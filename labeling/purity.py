"""The method's purity rules: which annotated images enter the semantic training set, as pure functions."""

from __future__ import annotations

from dataclasses import dataclass

from .schema import Annotation, Inconsistency

ACCEPTED, EXCLUDED, QUARANTINED, INVALID = "accepted", "excluded", "quarantined", "invalid"


@dataclass(frozen=True)
class PurityRules:
    min_confidence: float = 0.5  # an inconsistency counts from this confidence on
    min_inconsistencies: int = 1  # a fake needs at least this many counted inconsistencies
    quarantine_inconsistent_reals: bool = True  # a real called inconsistent is not trained on

    def to_dict(self) -> dict:
        return {"min_confidence": self.min_confidence, "min_inconsistencies": self.min_inconsistencies,
                "quarantine_inconsistent_reals": self.quarantine_inconsistent_reals}


def counted(annotation: Annotation, rules: PurityRules) -> list[Inconsistency]:
    return [i for i in annotation.inconsistencies if i.confidence >= rules.min_confidence]


DISAGREE = "verdict and findings disagree"  # the reason's prefix when the verdict and the counted findings differ


def decide(label: str, annotation: Annotation | None, rules: PurityRules) -> tuple[str, str]:
    """(decision, reason) for one image. The verdict and the counted inconsistencies (confidence >=
    `min_confidence`) must agree; when they do not, the image gets its own reason and the conservative decision: a
    fake is excluded, a real quarantined (whatever `quarantine_inconsistent_reals`). A reason never contradicts
    the stored verdict."""
    if annotation is None:
        return INVALID, "the annotator's output never parsed"
    n = len(counted(annotation, rules))
    if (annotation.verdict == "inconsistent") != (n > 0):
        reason = (f"{DISAGREE}: verdict {annotation.verdict}, {n} inconsistenc{'y' if n == 1 else 'ies'} named at "
                  f"confidence >= {rules.min_confidence}")
        return (EXCLUDED if label == "fake" else QUARANTINED), reason
    if label == "fake":
        if n == 0:
            return EXCLUDED, "semantically faithful fake: its only evidence is pixel-level"
        if n < rules.min_inconsistencies:
            return EXCLUDED, f"fake with {n} named inconsistencies, fewer than the rules' {rules.min_inconsistencies}"
        return ACCEPTED, "fake with named semantic inconsistencies"
    if n == 0:
        return ACCEPTED, "real image, consistent"
    if rules.quarantine_inconsistent_reals:
        return QUARANTINED, "real image the annotator called inconsistent"
    return ACCEPTED, "real image the annotator called inconsistent, kept by the rules"
