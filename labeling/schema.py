"""The annotation schema, defined once and versioned: what a VLM annotator says about one image."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from aig.manifests.errors import AigError

SCHEMA_VERSION = "aig-semantic-annotation/1"
CATEGORIES = ("anatomy", "text_and_glyphs", "physics", "geometry_and_perspective", "object_structure",
              "context_and_commonsense", "other")
CATEGORY_HELP = {
    "anatomy": "bodies, hands, faces, animals",
    "text_and_glyphs": "letters, signs, logos, numbers",
    "physics": "lighting, shadows, reflections",
    "geometry_and_perspective": "lines, vanishing points, proportions",
    "object_structure": "objects that melt, merge or miss parts",
    "context_and_commonsense": "things that cannot be there or happen",
    "other": "any other semantic inconsistency",
}
VERDICTS = ("consistent", "inconsistent")
MAX_INCONSISTENCIES = 8
MAX_DESCRIPTION = 300


@dataclass
class Inconsistency:
    category: str
    description: str
    confidence: float
    box: list[float] | None = None  # [x0, y0, x1, y1], fractions of width/height


@dataclass
class Annotation:
    verdict: str
    inconsistencies: list[Inconsistency] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def max_confidence(self) -> float:
        return max((i.confidence for i in self.inconsistencies), default=0.0)


class SchemaError(AigError, ValueError):
    """An annotator output that does not fit the schema."""


def json_schema() -> dict:
    """JSON Schema of an annotation, for constrained decoding (llguidance, OpenAI-compatible servers)."""
    number01 = {"type": "number", "minimum": 0, "maximum": 1}
    return {
        "type": "object",
        "properties": {
            "verdict": {"type": "string", "enum": list(VERDICTS)},
            "inconsistencies": {
                "type": "array", "maxItems": MAX_INCONSISTENCIES,
                "items": {
                    "type": "object",
                    "properties": {
                        "category": {"type": "string", "enum": list(CATEGORIES)},
                        "description": {"type": "string", "maxLength": MAX_DESCRIPTION},
                        "confidence": number01,
                        "box": {"type": "array", "items": number01, "minItems": 4, "maxItems": 4},
                    },
                    "required": ["category", "description", "confidence"],
                    "additionalProperties": False,
                },
            },
        },
        "required": ["verdict", "inconsistencies"],
        "additionalProperties": False,
    }


def _category(value) -> str:
    text = str(value).strip().lower().replace("-", "_").replace(" ", "_")
    if text in CATEGORIES:
        return text
    for c in CATEGORIES:  # "text" -> text_and_glyphs, "geometry" -> geometry_and_perspective, ...
        if text and (c.startswith(text) or text.startswith(c.split("_")[0])):
            return c
    return "other"


def _confidence(value) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise SchemaError(f"confidence {value!r} is not a number") from None
    if x > 1 and x <= 100:  # a percentage
        x /= 100
    if not 0 <= x <= 1:
        raise SchemaError(f"confidence {x} is outside [0, 1]")
    return x


def _box(value) -> list[float] | None:
    if value is None:
        return None
    try:
        box = [float(v) for v in value]
    except (TypeError, ValueError):
        return None
    return box if len(box) == 4 and all(0 <= v <= 1 for v in box) else None


def from_dict(obj) -> tuple[Annotation, bool]:
    """Validate a decoded JSON object; returns (annotation, repaired) — repaired when it had to be normalised."""
    if not isinstance(obj, dict):
        raise SchemaError(f"expected a JSON object, got {type(obj).__name__}")
    repaired = False
    items = obj.get("inconsistencies", [])
    if not isinstance(items, list):
        raise SchemaError("'inconsistencies' is not a list")
    found = []
    for item in items[:MAX_INCONSISTENCIES]:
        if not isinstance(item, dict) or not str(item.get("description", "")).strip():
            repaired = True
            continue
        category = _category(item.get("category", "other"))
        repaired |= category != item.get("category")
        found.append(Inconsistency(category, str(item["description"]).strip()[:MAX_DESCRIPTION],
                                   _confidence(item.get("confidence", 1.0)), _box(item.get("box"))))
    repaired |= len(items) > MAX_INCONSISTENCIES
    verdict = str(obj.get("verdict", "")).strip().lower()
    if verdict not in VERDICTS:
        inferred = {"fake": "inconsistent", "real": "consistent"}.get(verdict)
        if inferred is None:
            if "verdict" in obj:
                raise SchemaError(f"verdict {obj['verdict']!r} is not one of {', '.join(VERDICTS)}")
            inferred = "inconsistent" if found else "consistent"
        verdict, repaired = inferred, True
    return Annotation(verdict, found), repaired
