"""Semantic labeling with VLM annotators (issue 4)."""
