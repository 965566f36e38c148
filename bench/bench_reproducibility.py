"""What the reproducibility fix of issue 24 costs: the ray marcher's alpha with ``torch.exp`` (MKL's vector math,
before) and ``torch.expm1`` (ATen's own kernel, now), and the once-per-process warm-up of MKL's routines.

Usage::

    .venv/bin/python bench/bench_reproducibility.py [--threads 2] [--repeat 50]

Shapes are the ffhq512 configuration's at batch 1 (128 x 128 rays; 48 coarse samples, then 96 after the
importance pass), the marcher's interval count being one less. Prints the median time per call of each
variant, the maximum difference between them and the warm-up's time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hfagp.runtime import settle_vector_math  # noqa: E402
from timing import time_calls  # noqa: E402


def median_seconds(fn, repeat: int) -> float:
    return statistics.median(time_calls(fn, repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, MKL {torch.backends.mkl.is_available()}")
    print("| tensor | 1 - exp(-x) (ms) | -expm1(-x) (ms) | max abs difference |")
    print("|---|---:|---:|---:|")
    for name, samples in (("coarse 1 x 16384 x 47", 47), ("fine 1 x 16384 x 95", 95)):
        x = torch.rand(1, 128 * 128, samples, generator=torch.Generator().manual_seed(0)) * 2
        old = median_seconds(lambda: 1 - torch.exp(-x), args.repeat)
        new = median_seconds(lambda: -torch.expm1(-x), args.repeat)
        diff = ((1 - torch.exp(-x)) - (-torch.expm1(-x))).abs().max().item()
        print(f"| {name} | {old * 1e3:.3f} | {new * 1e3:.3f} | {diff:.1e} |")
    print(f"settle_vector_math: {median_seconds(settle_vector_math, args.repeat) * 1e3:.3f} ms")


if __name__ == "__main__":
    main()
