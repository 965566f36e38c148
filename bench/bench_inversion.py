"""Benchmark W+ inversion on CPU: seconds per optimisation step and per frame.

Usage::

    .venv/bin/python bench/bench_inversion.py                 # demo (batch 4 and 1) and full512 (batch 1)
    .venv/bin/python bench/bench_inversion.py --cases demo-b4 --steps 5

``torch.set_num_threads(2)``, random weights, MSE loss (LPIPS adds its own
cost when its weights are present), deterministic rendering, the real
``hfagp.prior.inversion.invert`` loop. ``demo`` is the random-init 128 px demo
generator; ``full512`` is the released ffhq512-128 configuration (official
init kwargs as in bench_eg3d.py). A warm-up step precedes the timed steps.
Per frame = s/step x steps (demo config: 60, full: 500) / batch.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

CASES = {"demo-b4": ("demo", 4, 60), "demo-b1": ("demo", 1, 60), "full512-b1": ("full512", 1, 500)}


def build(config: str):
    from hfagp.eg3d import DEMO_NEURAL_RENDERING_RESOLUTION, TriPlaneGenerator, demo_generator

    if config == "demo":
        return demo_generator(0)
    from bench_eg3d import _full512_kwargs

    kwargs, nrr = _full512_kwargs()
    G = TriPlaneGenerator(**kwargs)
    G.neural_rendering_resolution = nrr if nrr else DEMO_NEURAL_RENDERING_RESOLUTION
    return G.eval()


def run_case(name: str, steps: int) -> dict:
    import torch

    from hfagp.losses.photometric import LossWeights, PhotometricLoss
    from hfagp.prior.inversion import InversionSettings, frontal_labels, invert, w_statistics

    torch.set_num_threads(2)
    config, batch, config_steps = CASES[name]
    G = build(config)
    G.requires_grad_(False)
    w_avg, w_std, _ = w_statistics(G, samples=1000)
    c = frontal_labels(batch)
    target = torch.rand(batch, 3, G.img_resolution, G.img_resolution) * 2 - 1
    loss = PhotometricLoss(LossWeights(mse=1.0, lpips=0.0))
    invert(G, target, c, w_avg, w_std, loss, InversionSettings(steps=1, batch_size=batch), progress=False)  # warm-up
    times = []
    invert(G, target, c, w_avg, w_std, loss, InversionSettings(steps=steps, batch_size=batch),
           callback=lambda step, ws: times.append(time.perf_counter()), progress=False)
    per_step = (times[-1] - times[0]) / max(len(times) - 1, 1) if len(times) > 1 else float("nan")
    return {"case": name, "resolution": G.img_resolution, "batch": batch, "s_per_step": per_step,
            "s_per_frame": per_step * config_steps / batch, "steps_per_frame": config_steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--steps", type=int, default=4, help="timed steps per case (the first interval is dropped)")
    args = parser.parse_args()
    print(f"{'case':<12} {'res':>4} {'batch':>5} {'s/step':>8} {'steps':>6} {'s/frame':>9}")
    for name in args.cases:
        r = run_case(name, args.steps + 1)
        print(f"{r['case']:<12} {r['resolution']:>4} {r['batch']:>5} {r['s_per_step']:>8.2f} "
              f"{r['steps_per_frame']:>6} {r['s_per_frame']:>9.1f}", flush=True)


if __name__ == "__main__":
    main()
