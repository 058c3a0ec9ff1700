"""Training of the pixel and semantic branches."""
