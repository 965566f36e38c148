"""Benchmark: the joint morphable-model fit (hfagp.face3d.fit), milliseconds per frame.

Two inputs: synthetic sequences made by the model itself (F = 120, 1000, 5000
frames, 0.5 px noise) and the demo video's landmarks when a preprocessed
``results/demo/cameras.parquet`` exists. Times the whole fit (the rigid start
poses included) and, separately, the Gauss-Newton part. The goal of issue #5
is under 5 ms per frame on 2 cores.

    .venv/bin/python bench/bench_expressions.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")

import numpy as np  # noqa: E402

from hfagp.face3d import geometry as geo  # noqa: E402
from hfagp.face3d.fit import FitSettings, fit_sequence, initial_poses, project  # noqa: E402
from hfagp.face3d.morphable import sparse_model  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def synthetic(frames: int, seed: int = 0) -> np.ndarray:
    model = sparse_model()
    rng = np.random.default_rng(seed)
    expression = rng.normal(size=(frames, 10)) * 0.8
    angles = np.c_[rng.uniform(-15, 15, frames), rng.uniform(-30, 30, frames), rng.uniform(-10, 10, frames)]
    rotation = np.array([geo.rotation_from_euler(*a) for a in angles])
    translation = np.c_[rng.normal(0, 0.05, (frames, 2)), rng.uniform(9.5, 11.0, frames)]
    cam = np.einsum("fij,fpj->fpi", rotation, model.points(rng.normal(size=40) * 0.7, expression)) + translation[:, None]
    return project(cam) - 0.5 + rng.normal(0, 0.5, (frames, 68, 2))


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    model = sparse_model()
    inputs = [(f"synthetic F={n}", synthetic(n)) for n in (120, 1000, 5000)]
    demo = REPO / "results" / "demo" / "cameras.parquet"
    if demo.exists():
        import pandas as pd

        table = pd.read_parquet(demo)
        inputs.append(("demo video", np.stack(table.landmarks_crop.to_numpy()).reshape(-1, 68, 2)))
    print(f"{'input':<22}{'frames':>8}{'total ms/frame':>16}{'GN ms/frame':>13}{'iterations':>12}")
    for name, landmarks in inputs:
        n = len(landmarks)
        start = initial_poses(model, landmarks, 512)
        total = best_of(args.repeats, lambda: fit_sequence(model, landmarks))
        solve = best_of(args.repeats, lambda: fit_sequence(model, landmarks, initial=start))
        iterations = len(fit_sequence(model, landmarks, initial=start).cost_history) - 1
        print(f"{name:<22}{n:>8}{1000 * total / n:>16.3f}{1000 * solve / n:>13.3f}{iterations:>12}")
    print(f"settings: {FitSettings()}")


if __name__ == "__main__":
    main()
