"""Model-output checks, PSNR, aig's own tiling, the audit's PSNR floor and probe-error extraction: no models."""

from __future__ import annotations

import numpy as np
import pytest


def test_batch_problems_non_finite_and_flat():
    import torch

    from aig.generators.output_checks import DEGENERATE, NON_FINITE, batch_problems

    rng = np.random.default_rng(0)
    photo = torch.from_numpy(rng.random((3, 8, 8)))
    flat_red = torch.zeros(3, 8, 8) + torch.tensor([1.0, 0.0, 0.0])[:, None, None]  # channels differ, each flat
    nan, inf = torch.where(photo > 0.99, torch.nan, photo), torch.where(photo > 0.99, torch.inf, photo)
    images = torch.stack([photo, nan, inf, flat_red, flat_red]).float()
    references = torch.stack([photo, photo, photo, photo, flat_red]).float()
    # a flat input may reconstruct flat
    assert batch_problems(images, references) == [None, NON_FINITE, NON_FINITE, DEGENERATE, None]
    assert batch_problems(images[3:4]) == [DEGENERATE]  # text-to-image: no reference


def test_psnr():
    import torch

    from aig.generators.output_checks import PSNR_CAP, mean_squared_errors, psnr, psnr_of_mse

    a = torch.full((2, 3, 4, 4), 100, dtype=torch.uint8)
    b = torch.stack([a[0], a[1] + 10])
    psnrs = [psnr_of_mse(m) for m in mean_squared_errors(a, b).tolist()]
    assert psnrs == [PSNR_CAP, pytest.approx(10 * np.log10(255**2 / 100), abs=1e-3)]
    assert [psnr(x.numpy(), y.numpy()) for x, y in zip(a, b)] == psnrs


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
