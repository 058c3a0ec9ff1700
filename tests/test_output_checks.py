"""Model-output checks, PSNR, aig's own tiling, the audit's PSNR floor and probe-error extraction: no models."""

from __future__ import annotations

import numpy as np
import pytest


def test_output_problem_non_finite_and_flat():
    from aig.generators.output_checks import DEGENERATE, NON_FINITE, output_problem

    rng = np.random.default_rng(0)
    photo = rng.random((8, 8, 3))
    flat_red = np.zeros((8, 8, 3)) + [1.0, 0.0, 0.0]  # one colour: channels differ, each is flat
    assert output_problem(photo, photo) is None
    assert output_problem(np.where(photo > 0.99, np.nan, photo), photo) == NON_FINITE
    assert output_problem(np.where(photo > 0.99, np.inf, photo)) == NON_FINITE
    assert output_problem(flat_red, photo) == DEGENERATE
    assert output_problem(flat_red, flat_red) is None  # a flat input may reconstruct flat
    assert output_problem(flat_red) == DEGENERATE  # text-to-image: no reference


def test_psnr():
    from aig.generators.output_checks import PSNR_CAP, psnr

    a = np.full((4, 4, 3), 100, np.uint8)
    assert psnr(a, a) == PSNR_CAP
    assert psnr(a, a + 10) == pytest.approx(10 * np.log10(255**2 / 100), abs=1e-3)


def test_aig_tiling_covers_and_blends():
    import torch

    from aig.generators.autoencoder import tile_starts, tiled

    assert tile_starts(32, 32, 8) == [0]
    assert tile_starts(64, 32, 8) == [0, 24, 32]
    seen = []

    def identity(x, seeds):
        seen.append(seeds)
        return x * 1.0

    images = torch.rand(2, 3, 48, 64)
    out = tiled(identity, images, [10, 20], 32, 8)
    assert torch.allclose(out, images, atol=1e-6)  # blending weights sum back to the image
    assert seen[0] == [10, 20] and seen[1] == [11, 21] and len(seen) == 2 * 3  # tile k: seed + k


def test_degenerate_generators_by_median_psnr():
    from aig.evaluation.audit import PSNR_FLOOR, degenerate_generators

    rows = [{"generator": "good", "recon_psnr": v} for v in (30.0, 9.0, 31.0)]
    rows += [{"generator": "bad", "recon_psnr": v} for v in (8.0, 40.0, 9.5)]
    rows += [{"generator": "real", "recon_psnr": None}]
    assert degenerate_generators(rows) == [{"generator": "bad", "pairs": 3, "median_psnr": 9.5, "floor": PSNR_FLOOR}]


def test_model_load_failure_found_behind_ray_errors():
    from aig.generators.autoencoder import ModelLoadError
    from aig.pipeline.model_stages import model_load_failure

    direct = ModelLoadError("autoencoder 'm' (X) fails the probe")
    assert model_load_failure(direct) is direct
    wrapped = RuntimeError("The actor died because of an error raised in its creation task\n  Traceback ...\n"
                           "aig.generators.autoencoder.ModelLoadError: autoencoder 'm' (X) fails the probe: boom\n")
    assert str(model_load_failure(wrapped)) == "autoencoder 'm' (X) fails the probe: boom"
    assert model_load_failure(RuntimeError("worker crashed")) is None


def test_pipeline_outputs_retried_in_float32_when_not_finite():
    import torch

    from aig.generators.diffusion import run_checked

    class Pipe:  # records the dtype it was moved to; NaN images while it is float16
        dtype = torch.float16

        def to(self, dtype):
            self.dtype = dtype

    pipe = Pipe()
    image = np.random.default_rng(0).random((1, 8, 8, 3))
    call = lambda: image * np.nan if pipe.dtype == torch.float16 else image  # noqa: E731
    pils, problems, upcast = run_checked(pipe, torch.float16, call)
    assert problems == [None] and upcast == "non_finite" and pils[0].size == (8, 8)
    assert pipe.dtype == torch.float16  # moved back after the retry
    pils, problems, upcast = run_checked(pipe, torch.float32, lambda: image * np.nan)
    assert pils == [None] and problems == ["non_finite"] and upcast is None
