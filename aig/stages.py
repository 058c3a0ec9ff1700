"""The model stages of `build-data` (reconstruct, inpaint, generate): each one's driver-side check and worker."""

from __future__ import annotations

from functools import partial

from aig.pipeline.config import BuildConfig
from aig.pipeline.model_stages import generate_reads, model_stage, prompt_chunks
from aig.pipeline.stage import Stage, register_stage


@register_stage("reconstruct")
def reconstruct_stages(cfg: BuildConfig) -> list[Stage]:
    from aig.generators.autoencoder import read_model_json
    from aig.generators.reconstruct import AutoencoderSpec, ReconstructWorker

    specs = [AutoencoderSpec.parse(s) for s in cfg.reconstruct.autoencoders]
    return [model_stage("reconstruct", s, ReconstructWorker, cfg.reconstruct,
                        partial(read_model_json, "autoencoder", s.model, "config.json", s.subfolder, s.revision))
            for s in specs]


@register_stage("inpaint")
def inpaint_stages(cfg: BuildConfig) -> list[Stage]:
    from aig.generators.diffusion import check_pipeline
    from aig.generators.inpaint import InpaintWorker
    from aig.generators.reconstruct import AutoencoderSpec

    specs = [AutoencoderSpec.parse({"model": m} if isinstance(m, str) else m) for m in cfg.inpaint.pipelines]
    return [model_stage("inpaint", s, InpaintWorker, cfg.inpaint, partial(check_pipeline, s.model, s.revision))
            for s in specs]


@register_stage("generate")
def generate_stages(cfg: BuildConfig) -> list[Stage]:
    from aig.generators.diffusion import check_pipeline
    from aig.generators.text2image import PipelineSpec, TextToImageWorker

    specs = [PipelineSpec.parse(s) for s in cfg.generate.pipelines]
    prompt_chunks(cfg)  # a missing prompt file fails now, not after the other stages
    return [model_stage("generate", s, TextToImageWorker, cfg.generate, partial(check_pipeline, s.model, s.revision),
                        generate_reads(cfg, s.group())) for s in specs]
