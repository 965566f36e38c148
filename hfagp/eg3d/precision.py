"""Which dtype EG3D's reduced-precision blocks (``use_fp16``) compute in.

The official code runs the super-resolution blocks (``sr_num_fp16_res > 0``, as in the released FFHQ models)
in float16 on CUDA and in float32 elsewhere; :func:`block_dtype` keeps that default. The
:func:`reduced_precision` context changes it for one call site:

* ``dtype=torch.bfloat16`` runs those blocks in bfloat16 on CUDA (no overflow pre-normalisation needed; fewer
  mantissa bits than float16);
* ``on_cpu=True`` runs them in the reduced dtype on CPU too. CPU half convolutions are slow and nothing in the
  pipeline uses them; they exist so the CUDA-only code path (dtype casts, the fp16 overflow guard of the
  modulated convolution, the conv clamp, the float32 image accumulation) is exercised by the tests and by
  ``bench/gpu_check.py --device cpu`` on machines without a GPU.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Iterator

import torch

REDUCED_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class ReducedPrecision:
    dtype: torch.dtype = torch.float16
    on_cpu: bool = False


_POLICY: ContextVar[ReducedPrecision] = ContextVar("hfagp_eg3d_reduced_precision", default=ReducedPrecision())


@contextmanager
def reduced_precision(dtype: torch.dtype | str = torch.float16, on_cpu: bool = False) -> Iterator[ReducedPrecision]:
    """Within the block, ``use_fp16`` blocks compute in ``dtype`` (``fp16``/``bf16`` or a torch dtype), also on CPU if asked."""
    if isinstance(dtype, str):
        if dtype not in REDUCED_DTYPES:
            raise ValueError(f"unknown reduced precision {dtype!r}; use one of {', '.join(REDUCED_DTYPES)}")
        dtype = REDUCED_DTYPES[dtype]
    if dtype not in REDUCED_DTYPES.values():
        raise ValueError(f"reduced precision must be float16 or bfloat16, got {dtype}")
    token = _POLICY.set(ReducedPrecision(dtype, on_cpu))
    try:
        yield _POLICY.get()
    finally:
        _POLICY.reset(token)


def block_dtype(use_fp16: bool, force_fp32: bool, device: torch.device) -> torch.dtype:
    """The compute dtype of a synthesis block: the reduced dtype for ``use_fp16`` blocks on CUDA (or CPU when allowed)."""
    if not use_fp16 or force_fp32:
        return torch.float32
    policy = _POLICY.get()
    if device.type == "cuda" or policy.on_cpu:
        return policy.dtype
    return torch.float32


# Max and mean absolute difference from the float32 image (range about [-1, 1]) that the reduced-precision
# super-resolution keeps on the EG3D conformance fixture sr512 (512 px, SuperresolutionHybrid8XDC, released
# layout). Measured on CPU with on_cpu=True (torch 2.13): float16 max 4.1e-3 / mean 7.3e-4, bfloat16 max
# 4.6e-2 / mean 8.3e-3; the tolerances leave about 2.5x for other kernels (cuDNN). The neural rendering
# (image_raw, image_depth) is float32 in every mode.
SR_TOLERANCE = {"fp16": {"max_abs": 1e-2, "mean_abs": 2e-3}, "bf16": {"max_abs": 1e-1, "mean_abs": 2e-2}}

# Max and mean absolute difference from float32, over image, image_raw and image_depth, of a whole synthesis
# call under ``torch.autocast`` (mixed precision everywhere, not only the super-resolution) on the golden
# sets small128 and sr512. Measured on CPU (torch 2.13): float16 max 1.1e-2 / mean 1.2e-3, bfloat16 max
# 9.2e-2 / mean 9.2e-3; about 2.5x margin. hfagp does not train under autocast; this states what it costs.
AUTOCAST_TOLERANCE = {"fp16": {"max_abs": 3e-2, "mean_abs": 3e-3}, "bf16": {"max_abs": 2.5e-1, "mean_abs": 2.5e-2}}
