"""Training of the pixel and semantic branches (issue 5)."""
