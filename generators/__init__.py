"""Fake-image generators: autoencoder reconstructions and diffusion pipelines."""
