"""The model stages of `build-data` (reconstruct, inpaint, generate): each one's driver-side check and worker."""

from __future__ import annotations

from aig.pipeline.config import BuildConfig
from aig.pipeline.model_stages import StageJob, prompt_chunks, register_stage


@register_stage("reconstruct")
def reconstruct_jobs(cfg: BuildConfig) -> list[StageJob]:
    from aig.generators.autoencoder import read_model_json
    from aig.generators.reconstruct import AutoencoderSpec, ReconstructWorker

    specs = [AutoencoderSpec.parse(s) for s in cfg.reconstruct.autoencoders]
    for s in specs:
        read_model_json("autoencoder", s.model, "config.json", s.subfolder, s.revision)
    return [StageJob("reconstruct", s, ReconstructWorker, cfg.reconstruct) for s in specs]


@register_stage("inpaint")
def inpaint_jobs(cfg: BuildConfig) -> list[StageJob]:
    from aig.generators.diffusion import check_pipeline
    from aig.generators.inpaint import InpaintWorker
    from aig.generators.reconstruct import AutoencoderSpec

    specs = [AutoencoderSpec.parse({"model": m} if isinstance(m, str) else m) for m in cfg.inpaint.pipelines]
    for s in specs:
        check_pipeline(s.model, s.revision)
    return [StageJob("inpaint", s, InpaintWorker, cfg.inpaint) for s in specs]


@register_stage("generate")
def generate_jobs(cfg: BuildConfig) -> list[StageJob]:
    from aig.generators.diffusion import check_pipeline
    from aig.generators.text2image import PipelineSpec, TextToImageWorker

    specs = [PipelineSpec.parse(s) for s in cfg.generate.pipelines]
    for s in specs:
        check_pipeline(s.model, s.revision)
    prompt_chunks(cfg)  # a missing prompt file fails now, not after the other stages
    return [StageJob("generate", s, TextToImageWorker, cfg.generate) for s in specs]
