"""What the semantic branch learns from: the question, the answer, and tolerant parsing of answers.

Shared by labeling (which writes the conversations), training (SFT) and evaluation (parsing verdicts).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

QUESTION = (
    "Is this image a real photograph or AI-generated? Check it for semantic inconsistencies: anatomy, "
    "text and glyphs, physics (lighting, shadows, reflections), geometry and perspective, object structure, "
    "context and commonsense. Answer in JSON: "
    '{"verdict": "real" or "fake", "inconsistencies": [{"category": ..., "description": ...}]}.'
)
LABELS = ("real", "fake")


def answer_text(label: str, inconsistencies: list[dict]) -> str:
    """The assistant's answer: the verdict and the named inconsistencies (none for a real image)."""
    if label not in LABELS:
        raise ValueError(f"label must be 'real' or 'fake', not {label!r}")
    named = [{"category": i["category"], "description": i["description"]} for i in inconsistencies]
    return json.dumps({"verdict": label, "inconsistencies": named}, ensure_ascii=False)


def conversation(label: str, inconsistencies: list[dict]) -> list[dict]:
    """Chat messages in the transformers format (the image goes with the question)."""
    return [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]},
        {"role": "assistant", "content": [{"type": "text", "text": answer_text(label, inconsistencies)}]},
    ]


@dataclass
class ParsedAnswer:
    verdict: str | None  # "real" | "fake" | None when it could not be read
    inconsistencies: list[dict] = field(default_factory=list)
    status: str = "ok"  # ok | repaired | invalid


def extract_json(text: str) -> tuple[object | None, bool]:
    """The first JSON object in a model's text; (object, repaired). Tolerates code fences, prose around it,
    trailing commas and a cut-off tail. (None, False) when nothing usable is found."""
    start = text.find("{")
    if start < 0:
        return None, False
    decoder = json.JSONDecoder()
    try:
        obj, _ = decoder.raw_decode(text[start:])
        return obj, text.strip() != text[start:].strip() or not text.strip().endswith("}")
    except json.JSONDecodeError:
        pass
    body = re.sub(r",\s*([}\]])", r"\1", text[start:])
    for candidate in (body, *_closings(body)):
        try:
            return decoder.raw_decode(candidate)[0], True
        except json.JSONDecodeError:
            continue
    return None, False


def _closings(body: str) -> list[str]:
    """Candidates that close a truncated object: cut back to the last complete value, close brackets."""
    out = []
    for cut in (len(body), body.rfind("}") + 1, body.rfind("]") + 1, body.rfind('"') + 1):
        if cut <= 0:
            continue
        head = re.sub(r",\s*$", "", body[:cut].rstrip())
        stack, in_str, esc = [], False, False
        for ch in head:
            if in_str:
                if esc:
                    esc = False
                elif ch == "\\":
                    esc = True
                elif ch == '"':
                    in_str = False
                continue
            if ch == '"':
                in_str = True
            elif ch in "{[":
                stack.append("}" if ch == "{" else "]")
            elif ch in "}]" and stack:
                stack.pop()
        if in_str:
            head += '"'
        out.append(head + "".join(reversed(stack)))
    return out


def parse_answer(text: str) -> ParsedAnswer:
    """Read the semantic branch's (or an annotator's) answer; never raises."""
    obj, repaired = extract_json(text)
    if isinstance(obj, dict):
        verdict = str(obj.get("verdict", "")).strip().lower()
        verdict = {"inconsistent": "fake", "consistent": "real", "ai-generated": "fake",
                   "generated": "fake"}.get(verdict, verdict)
        items = obj.get("inconsistencies") if isinstance(obj.get("inconsistencies"), list) else []
        named = [{"category": str(i.get("category", "other")), "description": str(i.get("description", ""))}
                 for i in items if isinstance(i, dict)]
        if verdict in LABELS:
            return ParsedAnswer(verdict, named, "repaired" if repaired else "ok")
    low = text.lower()  # no usable JSON: a bare word answer still says something
    words = set(re.findall(r"[a-z]+", low))
    if ("fake" in words or "generated" in words) != ("real" in words):
        return ParsedAnswer("fake" if "real" not in words else "real", [], "repaired")
    return ParsedAnswer(None, [], "invalid")
