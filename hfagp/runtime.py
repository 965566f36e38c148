"""Device, seed and thread set-up shared by every network stage (inversion, training, rendering, audio).

* :func:`resolve_device`: ``cpu`` / ``cuda`` / ``cuda:N`` / ``auto`` with a clear error when CUDA is absent.
* :func:`setup_torch`: the thread count and the global seed of a command, set once at its start.
* :func:`settle_vector_math`: run each of torch's MKL vector-math routines once, serially, before real work.
* :func:`seed_process`, :func:`rng_state`, :func:`set_rng_state`: the RNG streams of a training process,
  saved in ``resume.pt`` as plain containers (tensors, numbers, tuples) so that weights-only loading reads them.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from hfagp.errors import HfagpError


def resolve_device(name: str | None) -> torch.device:
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (cuda when available)."""
    name = name or "cpu"
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise HfagpError(f"device {name!r} requested but CUDA is not available; set device: cpu (or auto) in config.yaml")
    return torch.device(name)


# The float ops that torch's CPU kernels hand to MKL's vector math library (VML) when torch is built with MKL
# (ATen/cpu/vml.h); every other elementwise op runs ATen's own vectorised kernels.
MKL_VECTOR_MATH_OPS = ("acos", "asin", "atan", "cos", "erf", "erfc", "erfinv", "exp", "log", "log10", "log2",
                       "sin", "sqrt", "tan", "tanh", "trunc")


def settle_vector_math() -> None:
    """Call each of :data:`MKL_VECTOR_MATH_OPS` once, on one thread, in float32 and float64.

    VML's results depend on which of MKL's CPU code paths computes them (the bits of exp, log and sqrt differ
    between its SSE4.2, AVX2 and AVX-512 paths), and MKL picks the path lazily, at a routine's first call. A
    first call made by several threads at once in a loaded fresh process once gave a different result from
    every later call (README "Reproducibility"). Calling each routine first on a tensor too small for torch to
    split across threads takes that choice out of any race. The renderer needs none of this (it uses no VML
    routine); the optimiser's sqrt and the training PSNR's log10 do. Costs well under a millisecond.
    """
    for dtype in (torch.float32, torch.float64):
        x = torch.linspace(0.125, 0.875, 64, dtype=dtype)
        for name in MKL_VECTOR_MATH_OPS:
            getattr(torch, name)(x)


def setup_torch(threads: int = 0, seed: int | None = None) -> None:
    """Set torch's CPU thread count (0 keeps torch's default), settle MKL's vector math and seed torch's RNG."""
    if threads:
        torch.set_num_threads(int(threads))
    settle_vector_math()
    if seed is not None:
        torch.manual_seed(int(seed))


def seed_process(seed: int, rank: int) -> None:
    """Seed the RNGs a training step draws from (ray jitter), differently per process."""
    s = (int(seed) * 1_000_003 + 17 * int(rank) + 1) % 2**31
    torch.manual_seed(s)
    np.random.seed(s)
    random.seed(s)


def rng_state() -> dict:
    """This process's RNG states (torch, numpy, python, CUDA) as plain containers."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore :func:`rng_state` (also the numpy tuple that resume files of hfagp 0.1 hold)."""
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    if isinstance(numpy_state, dict):
        keys = numpy_state["keys"].numpy().astype(np.uint32)
        numpy_state = (numpy_state["name"], keys, numpy_state["pos"], numpy_state["has_gauss"], numpy_state["cached_gaussian"])
    np.random.set_state(numpy_state)
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
