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


def decide(label: str, annotation: Annotation | None, rules: PurityRules) -> tuple[str, str]:
    """(decision, reason) for one image. The named inconsistencies decide, not the bare verdict."""
    if annotation is None:
        return INVALID, "the annotator's output never parsed"
    flagged = len(counted(annotation, rules)) >= rules.min_inconsistencies
    if label == "fake":
        if flagged:
            return ACCEPTED, "fake with named semantic inconsistencies"
        return EXCLUDED, "semantically faithful fake: its only evidence is pixel-level"
    if flagged and rules.quarantine_inconsistent_reals:
        return QUARANTINED, "real image the annotator called inconsistent"
    return ACCEPTED, "real image, consistent" if not flagged else "real image (findings ignored by the rules)"
