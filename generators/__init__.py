"""Fake-image generators: autoencoder reconstructions and diffusion pipelines (issue 3)."""
