"""Tiny random-weight diffusers pipelines built from configs, for tests and the offline demo.

They go through the same `from_pretrained(path)` code as a real hub id. Their images carry no
meaning (random weights): the demo says so wherever it uses them.

    python -m aig.generators.tiny_models OUT_DIR [--inpaint]
"""

from __future__ import annotations

import argparse
from pathlib import Path


def _tokenizer():
    from transformers import CLIPTokenizer
    import json
    import tempfile

    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "!": 2}
    for ch in letters + [",", ".", "'", "-"]:
        vocab.setdefault(ch, len(vocab))
        vocab.setdefault(ch + "</w>", len(vocab))
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "vocab.json").write_text(json.dumps(vocab))
        (Path(d) / "merges.txt").write_text("#version: 0.2\n")
        return CLIPTokenizer(str(Path(d) / "vocab.json"), str(Path(d) / "merges.txt"), model_max_length=77)


def build_tiny_sd(out: Path, inpaint: bool = False, seed: int = 0) -> Path:
    """A StableDiffusion(Inpaint)Pipeline with tiny UNet, CLIP text encoder and VAE, saved to `out`."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionInpaintPipeline, StableDiffusionPipeline
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=16, in_channels=9 if inpaint else 4, out_channels=4, layers_per_block=1,
        block_out_channels=(16, 32), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=16, attention_head_dim=4,
        norm_num_groups=8,
    )
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 16),
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        layers_per_block=1, norm_num_groups=8, sample_size=32,
    )
    tokenizer = _tokenizer()
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, max_position_embeddings=77, bos_token_id=0, eos_token_id=1, pad_token_id=1,
    ))
    scheduler = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                              clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    cls = StableDiffusionInpaintPipeline if inpaint else StableDiffusionPipeline
    pipe = cls(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
               safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    out.mkdir(parents=True, exist_ok=True)
    pipe.save_pretrained(out, safe_serialization=True)
    return out


# Each autoencoder class aig drives, shrunk (few channels and blocks) with its distinguishing parts kept:
# EfficientViT attention (DC-AE), causal 3-D convolutions (video VAEs; LTX with timestep conditioning),
# the masked-image-conditioned decoder (asymmetric VQGAN), the diffusion decoder (consistency decoder).
TINY_AUTOENCODERS = {
    "AutoencoderKL": dict(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                          up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, layers_per_block=1,
                          norm_num_groups=8, mid_block_add_attention=False, sample_size=64),
    "AutoencoderTiny": dict(encoder_block_out_channels=(8, 8), decoder_block_out_channels=(8, 8),
                            num_encoder_blocks=(1, 1), num_decoder_blocks=(1, 1), latent_channels=4),
    "VQModel": dict(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                    up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, layers_per_block=1,
                    norm_num_groups=8, num_vq_embeddings=16, vq_embed_dim=4, sample_size=64),
    "AutoencoderDC": dict(latent_channels=4, attention_head_dim=2, encoder_block_types=("ResBlock", "EfficientViTBlock"),
                          decoder_block_types=("ResBlock", "EfficientViTBlock"), encoder_block_out_channels=(8, 16),
                          decoder_block_out_channels=(8, 16), encoder_layers_per_block=(1, 1),
                          decoder_layers_per_block=(1, 1), encoder_qkv_multiscales=((), (5,)),
                          decoder_qkv_multiscales=((), (5,))),
    "AutoencoderKLWan": dict(base_dim=8, z_dim=4, dim_mult=[1, 2], num_res_blocks=1, temperal_downsample=[False],
                             latents_mean=[0.0] * 4, latents_std=[1.0] * 4),
    "AutoencoderKLQwenImage": dict(base_dim=8, z_dim=4, dim_mult=[1, 2], num_res_blocks=1, temperal_downsample=[False],
                                   latents_mean=[0.0] * 4, latents_std=[1.0] * 4),
    "AutoencoderKLCogVideoX": dict(block_out_channels=(8, 16), down_block_types=("CogVideoXDownBlock3D",) * 2,
                                   up_block_types=("CogVideoXUpBlock3D",) * 2, latent_channels=4, layers_per_block=1,
                                   norm_num_groups=4, sample_height=64, sample_width=64),
    "AutoencoderKLLTXVideo": dict(latent_channels=4, block_out_channels=(8, 8), decoder_block_out_channels=(8, 8),
                                  down_block_types=("LTXVideoDownBlock3D",) * 2, layers_per_block=(1, 1, 1),
                                  decoder_layers_per_block=(1, 1, 1), spatio_temporal_scaling=(True, False),
                                  decoder_spatio_temporal_scaling=(True, False),
                                  decoder_inject_noise=(False, False, False), downsample_type=("conv", "conv"),
                                  upsample_residual=(False, False), upsample_factor=(1, 1), patch_size=1,
                                  patch_size_t=1, timestep_conditioning=True),
    "AsymmetricAutoencoderKL": dict(down_block_types=("DownEncoderBlock2D",) * 2, down_block_out_channels=(8, 16),
                                    up_block_types=("UpDecoderBlock2D",) * 2, up_block_out_channels=(8, 16),
                                    layers_per_down_block=1, layers_per_up_block=1, latent_channels=4,
                                    norm_num_groups=8, sample_size=32),
    "ConsistencyDecoderVAE": dict(encoder_block_out_channels=(8, 16), encoder_down_block_types=("DownEncoderBlock2D",) * 2,
                                  encoder_layers_per_block=1, encoder_norm_num_groups=8, decoder_block_out_channels=(8, 16),
                                  decoder_down_block_types=("ResnetDownsampleBlock2D",) * 2,
                                  decoder_up_block_types=("ResnetUpsampleBlock2D",) * 2, decoder_layers_per_block=1,
                                  decoder_norm_num_groups=8, sample_size=64),
}


def build_tiny_autoencoder(out: Path, class_name: str = "AutoencoderKL", seed: int = 0, fault: str | None = None,
                           **config) -> Path:
    """A tiny random-weight autoencoder of `class_name`, saved to `out`; `config` overrides TINY_AUTOENCODERS.

    fault (AutoencoderKL): 'fp16_overflow' scales the decoder's first convolution so its float16 activations
    exceed 65504 (inf, then NaN; float32 is unaffected), 'nan' makes the output NaN in any dtype, 'flat'
    makes every output one flat colour.
    """
    import diffusers
    import torch

    torch.manual_seed(seed)
    model = getattr(diffusers, class_name)(**{**TINY_AUTOENCODERS[class_name], **config})
    with torch.no_grad():
        if fault == "fp16_overflow":
            model.decoder.conv_in.weight.mul_(1e5)
        elif fault == "nan":
            model.decoder.conv_out.bias.fill_(float("nan"))
        elif fault == "flat":
            model.decoder.conv_out.weight.zero_()
        elif fault is not None:
            raise ValueError(f"unknown fault {fault!r}")
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description="Build a tiny random-weight diffusers pipeline.")
    ap.add_argument("out", type=Path)
    ap.add_argument("--inpaint", action="store_true")
    args = ap.parse_args()
    print(build_tiny_sd(args.out, inpaint=args.inpaint))


if __name__ == "__main__":
    main()
