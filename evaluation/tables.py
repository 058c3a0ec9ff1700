"""Evaluation tables in the dataset manifest (views in the catalog, queryable with `aig sql`)."""

from __future__ import annotations

EVAL_RUNS = (
    ("eval_id", "string"),
    ("created_at", "string"),
    ("command", "string"),
    ("config", "string"),  # JSON: tau, fusion, weight, perturbations, sources, models
    ("pixel_checkpoint", "string"),
    ("semantic_model", "string"),
    ("semantic_adapter", "string"),
    ("n_images", "int64"),
    ("n_unreadable", "int64"),
    ("seconds", "double"),
)

EVAL_SCORES = (  # one row per image and perturbation
    ("eval_id", "string"),
    ("perturbation", "string"),  # none | jpeg75 | resize0.5 | crop0.75 ...
    ("benchmark", "string"),
    ("item", "string"),  # sample key (dataset) or file path (benchmark)
    ("label", "string"),  # real | fake
    ("generator", "string"),
    ("subset", "string"),  # semantic | pixel | null
    ("status", "string"),  # ok | missing | unreadable: ... (excluded from metrics)
    ("pixel_prob", "double"),
    ("semantic_verdict", "string"),  # real | fake | null (answer not readable: counted as real)
    ("semantic_status", "string"),  # ok | repaired | invalid
    ("semantic_score", "double"),  # P(fake) from the likelihood of the verdict word (ranking score)
    ("inconsistencies", "string"),  # JSON list named by the VLM
    ("semantic_text", "string"),  # the VLM's raw answer
    ("fused_score", "double"),
    ("fused_pred", "string"),  # real | fake
    ("fired", "string"),  # pixel | semantic | both | none
)

EVAL_RESULTS = (  # one row per perturbation, benchmark, group and detector
    ("eval_id", "string"),
    ("perturbation", "string"),
    ("benchmark", "string"),
    ("group_kind", "string"),  # all | generator | subset
    ("group_name", "string"),
    ("detector", "string"),  # pixel | semantic | fused
    ("n_real", "int64"),
    ("n_fake", "int64"),
    ("real_acc", "double"),
    ("fake_acc", "double"),
    ("balanced_acc", "double"),
    ("ap", "double"),
    ("auroc", "double"),
)

EVAL_TABLES = {"eval_runs": EVAL_RUNS, "eval_scores": EVAL_SCORES, "eval_results": EVAL_RESULTS}
