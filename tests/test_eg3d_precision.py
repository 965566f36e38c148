"""EG3D's reduced-precision super-resolution (the CUDA path), exercised on CPU through hfagp.eg3d.precision.

The released FFHQ models run their super-resolution blocks in float16 on CUDA (``sr_num_fp16_res = 4``);
no GPU runs here, so ``reduced_precision(..., on_cpu=True)`` runs the same code (casts, the float16 overflow
guard of the modulated convolution, the conv clamp, float32 image accumulation) with CPU half kernels, checked
against the official code's float32 golden vectors at the tolerances the GPU check also uses.
"""

from __future__ import annotations

from contextlib import nullcontext

import pytest
import torch
from conftest import require_fixture

from hfagp import eg3d
from hfagp.eg3d.golden import GoldenSet
from hfagp.eg3d.precision import AUTOCAST_TOLERANCE, REDUCED_DTYPES, SR_TOLERANCE, block_dtype, reduced_precision


@pytest.fixture(scope="module")
def sr512():
    golden = GoldenSet(require_fixture("eg3d", "sr512"))
    return golden, golden.build()


def test_block_dtype_defaults_follow_the_official_code():
    cuda, cpu = torch.device("cuda", 0), torch.device("cpu")
    assert block_dtype(True, False, cuda) == torch.float16
    assert block_dtype(True, False, cpu) == torch.float32
    assert block_dtype(True, True, cuda) == torch.float32  # force_fp32
    assert block_dtype(False, False, cuda) == torch.float32
    with reduced_precision("bf16"):
        assert block_dtype(True, False, cuda) == torch.bfloat16
        assert block_dtype(True, False, cpu) == torch.float32
    with reduced_precision(torch.float16, on_cpu=True):
        assert block_dtype(True, False, cpu) == torch.float16
    assert block_dtype(True, False, cpu) == torch.float32  # the context is undone


def test_unknown_reduced_precision_is_refused():
    with pytest.raises(ValueError, match="fp16, bf16"):
        with reduced_precision("fp8"):
            pass
    with pytest.raises(ValueError, match="float16 or bfloat16"):
        with reduced_precision(torch.float64):
            pass


@pytest.mark.parametrize("name", ["fp16", "bf16"])
def test_reduced_precision_superresolution_matches_golden_within_tolerance(sr512, name):
    golden, G = sr512
    with reduced_precision(name, on_cpu=True):
        out = golden.synthesize(G)
    errors = golden.output_errors(out)
    assert out["image"].dtype == torch.float32
    tolerance = SR_TOLERANCE[name]
    assert errors["image"]["max_abs"] <= tolerance["max_abs"], errors
    assert errors["image"]["mean_abs"] <= tolerance["mean_abs"], errors
    # The reduced path really ran (the float32 path is within 1e-5 of the golden image) ...
    assert errors["image"]["max_abs"] > 1e-4, errors
    # ... and only in the super-resolution: the neural rendering stays float32.
    assert errors["image_raw"]["max_abs"] <= 1e-4 and errors["image_depth"]["max_abs"] <= 1e-4, errors


def test_force_fp32_overrides_reduced_precision(sr512):
    golden, G = sr512
    with reduced_precision("fp16", on_cpu=True):
        out = golden.synthesize(G, force_fp32=True)
    assert golden.output_errors(out)["image"]["max_abs"] <= 1e-4


def test_reduced_precision_superresolution_trains(sr512):
    """Gradients through the reduced-precision blocks reach the same weights as in float32, finite, nearly parallel.

    bfloat16: its CPU kernels are fast; float16's CPU backward has none (14 s here) and runs the same casts.
    """
    c = sr512[0].inputs["c_render"][:1]

    def gradients(half: bool) -> dict[str, torch.Tensor]:
        G = eg3d.demo_generator(0).train()
        ws = torch.randn(1, G.num_ws, 512, generator=torch.Generator().manual_seed(1)) * 0.5
        with reduced_precision("bf16", on_cpu=True) if half else nullcontext():
            out = G.synthesis(ws, c, noise_mode="const", deterministic=True)
        out["image"].square().mean().backward()
        return {name: p.grad for name, p in G.superresolution.named_parameters() if p.grad is not None}

    full, half = gradients(False), gradients(True)
    assert full and set(half) == set(full)
    assert all(torch.isfinite(g).all() and g.dtype == torch.float32 for g in half.values())  # float32 master weights
    flat_full = torch.cat([full[k].flatten() for k in sorted(full)])
    flat_half = torch.cat([half[k].flatten() for k in sorted(full)])
    assert torch.nn.functional.cosine_similarity(flat_full, flat_half, dim=0) > 0.99
    assert not torch.equal(flat_full, flat_half)  # the reduced path really ran


@pytest.mark.parametrize("set_name", ["small128", "sr512"])
def test_synthesis_under_autocast_stays_within_tolerance(set_name):
    """Mixed precision everywhere (torch.autocast, the CPU flavour of CUDA AMP) against the float32 golden vectors."""
    golden = GoldenSet(require_fixture("eg3d", set_name))
    G = golden.build()
    for name, dtype in REDUCED_DTYPES.items():
        with torch.autocast("cpu", dtype=dtype):
            out = golden.synthesize(G)
        assert out["image"].dtype == dtype  # autocast really reached the super-resolution
        for key, error in golden.output_errors(out).items():
            assert error["max_abs"] <= AUTOCAST_TOLERANCE[name]["max_abs"], (name, key, error)
            assert error["mean_abs"] <= AUTOCAST_TOLERANCE[name]["mean_abs"], (name, key, error)
