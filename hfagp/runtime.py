"""Device, seed and thread set-up shared by every network stage (inversion, training, rendering, audio).

* :func:`resolve_device`: ``cpu`` / ``cuda`` / ``cuda:N`` / ``auto`` with a clear error when CUDA is absent.
* :func:`configure_cuda`: the CUDA numerics of a run (TF32, cuDNN autotuning, deterministic algorithms).
* :func:`process_group_backend`: NCCL for CUDA devices, gloo for CPU.
* :func:`setup_torch`: the thread count and the global seed of a command, set once at its start.
* :func:`settle_vector_math`: run each of torch's MKL vector-math routines once, serially, before real work.
* :func:`seed_process`, :func:`rng_state`, :func:`set_rng_state`: the RNG streams of a training process,
  saved in ``resume.pt`` as plain containers (tensors, numbers, tuples) so that weights-only loading reads them.
"""

from __future__ import annotations

import random
import signal
import threading

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


# cuBLAS needs this workspace setting, made before its first call, for deterministic matrix products.
CUBLAS_DETERMINISTIC_WORKSPACE = ":4096:8"


def configure_cuda(deterministic: bool, tf32: bool = False) -> dict:
    """Set the process's CUDA numerics; returns what is now in force (for logs and ``gpu_check.json``).

    ``tf32=False`` (the default) keeps float32 matrix products and convolutions in full float32, which the
    EG3D conformance tolerances (1e-4) need; TF32 is faster on Ampere and later but changes the 4th digit.
    ``deterministic=True`` turns on torch's deterministic algorithms (an op without one raises instead of
    running non-deterministically), cuDNN's deterministic kernels without autotuning, and cuBLAS's fixed
    workspace (``CUBLAS_WORKSPACE_CONFIG``, set here unless the environment already sets it; it must be set
    before cuBLAS starts, so call this before any CUDA work). Harmless without CUDA: the flags are global.
    """
    import os

    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_DETERMINISTIC_WORKSPACE)
    torch.backends.cuda.matmul.allow_tf32 = bool(tf32)
    torch.backends.cudnn.allow_tf32 = bool(tf32)
    torch.backends.cudnn.deterministic = bool(deterministic)
    torch.backends.cudnn.benchmark = not deterministic
    torch.use_deterministic_algorithms(bool(deterministic))
    return cuda_settings()


def cuda_settings() -> dict:
    """The CUDA numerics in force (see :func:`configure_cuda`)."""
    import os

    return {
        "matmul_allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
        "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "deterministic_algorithms": bool(torch.are_deterministic_algorithms_enabled()),
        "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    }


def process_group_backend(device: torch.device) -> str:
    """The torch.distributed backend for processes on ``device``: NCCL for CUDA, gloo otherwise."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


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


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def install_stop_handler(handler) -> dict:
    """Install ``handler(signum, frame)`` for SIGTERM and SIGINT; returns the handlers it replaced.

    Explicit for Ctrl-C too: a process started in the background of a non-interactive shell inherits
    SIGINT *ignored*, and Python then installs no KeyboardInterrupt handler of its own. Outside the main
    thread (where handlers cannot be set) it does nothing and returns ``{}``. Undo with :func:`restore_handlers`.
    """
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}


def restore_handlers(old: dict) -> None:
    """Put back the handlers :func:`install_stop_handler` replaced."""
    for sig, handler in old.items():
        signal.signal(sig, handler)
