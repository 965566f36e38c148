"""Benchmark: rendering frames per second of a driven avatar (hfagp.evaluate.render's path), batch 1, 2 threads.

One frame = expression driver -> personal subspace (D = 50, QR) -> EG3D
synthesis at a yaw-sweep camera, deterministic (no ray jitter), at the
generator's full resolution, then conversion to uint8. Two generators with
random weights (timing does not depend on them): the demo config (128 px) and
the released ffhq512-128 config (512 px, 128 neural rendering, 48+48 samples).

    .venv/bin/python bench/bench_render.py [--frames 8]
"""

from __future__ import annotations

import argparse
import copy
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "2")


def build(config: str):
    import torch
    from bench_eg3d import _full512_kwargs  # bench/ is on sys.path when this script runs

    from hfagp.eg3d import DEMO_INIT_KWARGS, DEMO_NEURAL_RENDERING_RESOLUTION, TriPlaneGenerator

    if config == "full512":
        kwargs, rendering = _full512_kwargs()
    else:
        kwargs, rendering = copy.deepcopy(DEMO_INIT_KWARGS), DEMO_NEURAL_RENDERING_RESOLUTION
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        G = TriPlaneGenerator(**kwargs).eval()
    G.neural_rendering_resolution = rendering
    return G


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=8)
    args = parser.parse_args()
    import torch

    from hfagp.avatar.drivers import build_driver
    from hfagp.avatar.subspace import PersonalSubspace
    from hfagp.evaluate.render import novel_labels, to_uint8, yaw_sweep

    torch.set_num_threads(2)
    driver = build_driver("expression", 50, input_dim=10).eval()
    basis = torch.linalg.qr(torch.randn(14 * 512, 50))[0].T
    subspace = PersonalSubspace(torch.zeros(14, 512), basis).eval()
    labels = torch.as_tensor(novel_labels(yaw_sweep(args.frames)))
    print(f"{'config':<10}{'px':>6}{'s/frame':>10}{'frames/s':>10}")
    for config in ("demo128", "full512"):
        G = build(config)
        with torch.no_grad():
            for warm in range(2):  # oneDNN builds its kernels on the first calls
                G.synthesis(subspace(driver(torch.randn(1, 10))), labels[:1], noise_mode="const", deterministic=True)
            start = time.perf_counter()
            for i in range(args.frames):
                ws = subspace(driver(torch.randn(1, 10)))
                image = G.synthesis(ws, labels[i : i + 1], noise_mode="const", deterministic=True)["image"]
                to_uint8(image)
            seconds = (time.perf_counter() - start) / args.frames
        print(f"{config:<10}{G.img_resolution:>6}{seconds:>10.3f}{1 / seconds:>10.2f}")


if __name__ == "__main__":
    main()
