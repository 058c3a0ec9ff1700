"""Evaluation of the two-branch detector: metrics, fusion, benchmarks, robustness, audit, report."""
