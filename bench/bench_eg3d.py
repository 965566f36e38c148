"""Benchmark ``hfagp.eg3d`` synthesis on CPU: time and peak memory per configuration.

Usage::

    .venv/bin/python bench/bench_eg3d.py            # all cases, a table on stdout
    .venv/bin/python bench/bench_eg3d.py --repeat 5 --cases small128-fwd full512-fwd

Each case runs in a fresh subprocess (so ``ru_maxrss`` is that case's peak RSS)
with ``torch.set_num_threads(2)``, batch 1, ``noise_mode='const'``, random
weights. ``full512`` is the released ffhq512-128 configuration (512 px, 8XDC
super-resolution, 128 px neural rendering, 48+48 samples); ``small128`` is the
demo/fixture configuration (128 px, 2X, 32 px, 12+12).

* ``fwd``: eval mode, ``torch.no_grad()``, one ``G.synthesis`` call.
* ``fwdbwd``: train mode (unfused modulated convs, as when HFA-GP fine-tunes G),
  forward then backward of a scalar loss to ws and every parameter; forward and
  backward are timed separately.

Two warm-up calls precede the timed repeats (oneDNN builds its kernels during
the first calls of each shape); the table shows the minimum and median of the repeats.

Official NVlabs/eg3d (reference ops) on this kind of machine, spec/eg3d.md §3:
full512 fwd 4.3-4.7 s, 1.75 GB; small128 fwd 0.11-0.18 s; small128 fwd+bwd
0.10-0.13 s + 0.165-0.19 s, 0.77 GB; full512 train-mode fwd+bwd 8.7-9.7 s + 8.9 s, 5.7 GB.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
WARMUP_CALLS = 2  # oneDNN builds and caches its kernels during the first calls of each shape
CASES = ("small128-fwd", "small128-fwdbwd", "full512-fwd", "full512-fwdbwd")
OFFICIAL = {
    "small128-fwd": "0.11-0.18 s, 0.47 GB",
    "small128-fwdbwd": "0.10-0.13 + 0.165-0.19 s, 0.77 GB",
    "full512-fwd": "4.3-4.7 s, 1.75 GB",
    "full512-fwdbwd": "8.7-9.7 + 8.9 s, 5.7 GB",
}


def _full512_kwargs() -> tuple[dict, int]:
    from hfagp.eg3d.snapshot import init_kwargs

    return init_kwargs("ffhq512")


def _frontal_camera(batch: int):
    import torch

    cam2world = torch.tensor([[1, 0, 0, 0], [0, -1, 0, 0], [0, 0, -1, 2.7], [0, 0, 0, 1]], dtype=torch.float32)
    intrinsics = torch.tensor([4.2647, 0, 0.5, 0, 4.2647, 0.5, 0, 0, 1], dtype=torch.float32)
    return torch.cat([cam2world.flatten(), intrinsics]).expand(batch, 25).clone()


def run_case(case: str, repeat: int) -> dict:
    """Run one case in this process and return its measurements."""
    import torch

    from hfagp.eg3d import DEMO_INIT_KWARGS, DEMO_NEURAL_RENDERING_RESOLUTION, TriPlaneGenerator

    torch.set_num_threads(2)
    config, mode = case.split("-")
    if config == "full512":
        kwargs, nrr = _full512_kwargs()
    else:
        kwargs, nrr = copy.deepcopy(DEMO_INIT_KWARGS), DEMO_NEURAL_RENDERING_RESOLUTION
    torch.manual_seed(0)
    G = TriPlaneGenerator(**kwargs)
    G.neural_rendering_resolution = nrr
    c = _frontal_camera(1)
    z = torch.randn(1, G.z_dim)
    with torch.no_grad():
        ws = G.mapping(z, c, truncation_psi=0.7)
    fwd_times: list[float] = []
    bwd_times: list[float] = []
    for i in range(repeat + WARMUP_CALLS):
        if mode == "fwd":
            G.eval()
            with torch.no_grad():
                start = time.perf_counter()
                out = G.synthesis(ws, c, noise_mode="const")
                fwd = time.perf_counter() - start
            bwd = 0.0
        else:
            G.train()
            G.zero_grad(set_to_none=True)
            ws_var = ws.clone().requires_grad_(True)
            start = time.perf_counter()
            out = G.synthesis(ws_var, c, noise_mode="const")
            loss = out["image"].square().mean() + out["image_raw"].square().mean()
            fwd = time.perf_counter() - start
            start = time.perf_counter()
            loss.backward()
            bwd = time.perf_counter() - start
        assert out["image"].shape[-1] == kwargs["img_resolution"]
        if i >= WARMUP_CALLS:
            fwd_times.append(fwd)
            bwd_times.append(bwd)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "case": case,
        "fwd_min": min(fwd_times),
        "fwd_median": statistics.median(fwd_times),
        "bwd_min": min(bwd_times),
        "bwd_median": statistics.median(bwd_times),
        "peak_gb": peak_kb / 1024**2,
    }


def _torch_version() -> str:
    import torch

    return torch.__version__


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=CASES)
    parser.add_argument("--repeat", type=int, default=3, help="timed calls per case after one warm-up")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_case(args.child, args.repeat)))
        return

    load = os.getloadavg()[0]
    print(f"torch {_torch_version()}, 1-min load average before the run: {load:.2f}")
    if load > 0.5:
        print("warning: the machine is busy; 2-thread timings are unreliable (OpenMP threads stall)")
    rows = []
    for case in args.cases:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", case, "--repeat", str(args.repeat)],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            raise SystemExit(f"case {case} failed")
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))

    header = f"{'case':<17} {'fwd min/med (s)':>16} {'bwd min/med (s)':>16} {'peak RSS':>9}   official (spec/eg3d.md)"
    print(header)
    print("-" * len(header))
    for row in rows:
        bwd = f"{row['bwd_min']:.3f}/{row['bwd_median']:.3f}" if row["bwd_min"] > 0 else "-"
        print(
            f"{row['case']:<17} {row['fwd_min']:.3f}/{row['fwd_median']:.3f}".ljust(35)
            + f"{bwd:>16} {row['peak_gb']:>7.2f}GB   {OFFICIAL[row['case']]}"
        )


if __name__ == "__main__":
    main()
