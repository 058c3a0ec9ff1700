"""Evaluation, fusion and audits (issue 6)."""
