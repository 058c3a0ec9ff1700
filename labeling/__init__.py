"""Semantic labeling with VLM annotators."""
