"""Stages that turn real images into datasets: sources, decoding, shards, runner, CLI."""
