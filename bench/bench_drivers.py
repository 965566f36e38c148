"""Benchmark the drivers and the personal subspace on CPU: forward+backward time per batch.

Usage::

    .venv/bin/python bench/bench_drivers.py                  # batch 2, 2 threads, D = 50
    .venv/bin/python bench/bench_drivers.py --repeat 10 --batch 1

Each case runs a forward pass and a backward pass of a random projection of
the output to every parameter (as in training). Two warm-up calls precede the
timed repeats; the table shows the minimum and median in milliseconds and the
parameter count.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import time_calls  # noqa: E402

from hfagp.avatar.drivers import AudioDriver, ExpressionMLP, RGBEncoder  # noqa: E402
from hfagp.avatar.subspace import PersonalSubspace  # noqa: E402


def step(module: torch.nn.Module, make_output: Callable[[], torch.Tensor]) -> Callable[[], None]:
    """A closure doing one forward + backward of ``make_output()`` through ``module``."""

    def run() -> None:
        module.zero_grad(set_to_none=True)
        out = make_output()
        (out * torch.randn_like(out)).sum().backward()

    return run


def cases(batch: int, dim: int) -> list[tuple[str, torch.nn.Module, Callable[[], torch.Tensor]]]:
    """(name, module, forward closure) for every benchmarked configuration."""
    result = []
    for res, width in ((256, 1.0), (128, 0.25), (64, 0.25)):
        enc = RGBEncoder(dim, res, width)
        image = torch.rand(batch, 3, res, res) * 2 - 1
        result.append((f"rgb {res}px width {width}", enc, lambda enc=enc, image=image: enc(image)))
    for in_dim in (10, 76):
        mlp = ExpressionMLP(in_dim, dim)
        coeffs = torch.randn(batch, in_dim)
        result.append((f"expression in {in_dim}", mlp, lambda mlp=mlp, coeffs=coeffs: mlp(coeffs)))
    audio = AudioDriver(dim)
    windows = torch.randn(batch, 8, 16, 29)
    result.append(("audio", audio, lambda: audio(windows, smooth=False)))
    result.append(("audio smoothed (8 windows)", audio, lambda: audio(windows, smooth=True)))
    space = PersonalSubspace(torch.randn(14 * 512), torch.randn(dim, 14 * 512))
    weights = torch.randn(batch, dim)
    result.append((f"subspace D={dim}", space, lambda: space(weights)))
    return result


def main(argv: list[str] | None = None) -> None:
    """Print the timing table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--dim", type=int, default=50, help="subspace dimension D (driver output size)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    print(f"forward+backward, batch {args.batch}, D={args.dim}, {threads} threads, torch {torch.__version__}")
    print(f"{'case':<30}{'params':>12}{'min ms':>10}{'median ms':>11}")
    for name, module, forward in cases(args.batch, args.dim):
        times = time_calls(step(module, forward), args.repeat)
        params = sum(p.numel() for p in module.parameters())
        print(f"{name:<30}{params:>12,}{min(times) * 1e3:>10.1f}{statistics.median(times) * 1e3:>11.1f}")


if __name__ == "__main__":
    main()
