"""Label tables in the manifest: semantic_labels (one row per image and annotator/prompt version),
semantic_inconsistencies (one row per named inconsistency) and captions."""

from __future__ import annotations

SEMANTIC_LABELS = (
    ("key", "string"),  # the labelled sample's key (join to samples.key)
    ("annotator", "string"),
    ("prompt_version", "string"),
    ("schema_version", "string"),
    ("run_id", "string"),
    ("chunk", "string"),
    ("label", "string"),  # the sample's ground truth: real | fake
    ("generator", "string"),
    ("split", "string"),
    ("verdict", "string"),  # consistent | inconsistent | null (unparsed)
    ("n_inconsistencies", "int32"),
    ("n_counted", "int32"),  # inconsistencies at or above the purity threshold
    ("max_confidence", "double"),
    ("decision", "string"),  # accepted | excluded | quarantined | invalid
    ("decision_reason", "string"),
    ("parse_status", "string"),  # ok | repaired | invalid
    ("attempts", "int32"),
    ("raw_text", "string"),  # the annotator's last output, always kept
    ("annotation", "string"),  # JSON of the validated annotation
    ("sft_key", "string"),  # key of the semantic-sft sample made from it (accepted only)
    ("decoding", "string"),  # JSON: decoding parameters, backend details
    ("purity", "string"),  # JSON: the rules applied
    ("seconds", "double"),
)

SEMANTIC_INCONSISTENCIES = (
    ("key", "string"),
    ("annotator", "string"),
    ("prompt_version", "string"),
    ("label", "string"),
    ("generator", "string"),
    ("split", "string"),
    ("decision", "string"),
    ("idx", "int32"),
    ("category", "string"),
    ("description", "string"),
    ("confidence", "double"),
    ("box", "string"),  # JSON [x0, y0, x1, y1] or null
)

CAPTIONS = (
    ("key", "string"),
    ("source_id", "string"),
    ("caption", "string"),
    ("annotator", "string"),
    ("prompt_version", "string"),
    ("run_id", "string"),
    ("chunk", "string"),
    ("raw_text", "string"),
)
