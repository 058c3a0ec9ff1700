"""Annotator prompts, versioned: labels are kept per (annotator, prompt version)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from aig.manifests.errors import AigError

from .schema import CATEGORIES, CATEGORY_HELP

_CATEGORY_LINES = "\n".join(f"- {c}: {CATEGORY_HELP[c]}" for c in CATEGORIES)

ANNOTATE = {
    "v1": (
        "You are a forensic image analyst. Examine this image for SEMANTIC inconsistencies only — things that "
        "could not be so in a real photograph — not for noise, blur, compression or other pixel artifacts.\n"
        f"Categories:\n{_CATEGORY_LINES}\n"
        "Reply with one JSON object and nothing else: "
        '{"verdict": "consistent" | "inconsistent", "inconsistencies": [{"category": one of the categories, '
        '"description": what is wrong and where, "confidence": 0..1, "box": [x0, y0, x1, y1] as fractions '
        "of width and height, optional}]}. An image with no semantic inconsistency is \"consistent\" with an "
        "empty list."
    ),
}
CAPTION = {
    "v1": ("Describe this photograph in one sentence of at most 30 words, as a prompt for a text-to-image "
           "model: the main subject, the setting and the style. Reply with the sentence only."),
}


class PromptError(AigError, ValueError):
    """The prompt asked for does not exist."""


def resolve(table: dict[str, str], version: str, prompt_file: str | None) -> tuple[str, str]:
    """(prompt text, prompt version). A prompt file gets its own version, 'file-<sha256[:8]>'."""
    if prompt_file:
        p = Path(prompt_file)
        if not p.is_file():
            raise PromptError(f"prompt file '{prompt_file}' does not exist")
        text = p.read_text(encoding="utf-8").strip()
        return text, f"file-{hashlib.sha256(text.encode()).hexdigest()[:8]}"
    if version not in table:
        raise PromptError(f"unknown prompt version {version!r}; known: {', '.join(table)} (or pass --prompt-file)")
    return table[version], version
