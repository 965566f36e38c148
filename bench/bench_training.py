"""Benchmark driver training on CPU: iterations per second and peak memory per driver.

Usage::

    .venv/bin/python bench/bench_training.py                       # every case
    .venv/bin/python bench/bench_training.py --cases demo-expression-tuned --steps 10

Each case runs in its own process (``torch.set_num_threads(2)``) on a small
synthetic subject, through the real :class:`hfagp.avatar.training.Trainer` step
(driver -> subspace -> EG3D -> MSE loss -> Adam -> weight average; LPIPS
off, it adds its own cost when its weights are present). ``frozen`` =
generator frozen (before ``tune_iter``), ``tuned`` = generator fine-tuned
jointly.

* ``demo-*``: the random-init 128 px demo generator at the demo settings
  (training resolution 128; RGB encoder on 64 px crops, width 0.5; batch 1;
  weight average 0.99);
* ``full512-*``: the released ffhq512-128 configuration (random weights,
  official init kwargs as in ``bench_eg3d.py``), training resolution 256,
  RGB encoder on 256 px crops (width 1), batch 1, weight average 0.999; projected time per 1k
  iterations = s/it x 1000.

Peak memory is the process's maximum resident set size (includes the data
and the Python runtime).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

KINDS = ("rgb", "expression", "audio")
CASES = [f"{config}-{kind}-{phase}" for config in ("demo", "full512") for kind in KINDS for phase in ("frozen", "tuned")]


def make_subject(root: Path, frames: int = 12, dim: int = 50) -> dict:
    """A synthetic subject: random-blob 512 crops, cameras, split, expressions (10), audio features, prior."""
    import numpy as np
    import pandas as pd

    from hfagp.eg3d import camera
    from hfagp.io import atomic
    from hfagp.io.images import write_rgb
    from hfagp.io.tables import write_expressions, write_split

    rng = np.random.default_rng(0)
    (root / "crops").mkdir(parents=True, exist_ok=True)
    rows = []
    for f in range(frames):
        image = np.kron(rng.integers(0, 255, (16, 16, 3)), np.ones((32, 32, 1))).astype(np.uint8)
        write_rgb(root / "crops" / f"{f:06d}.png", image)
        label = camera.camera_label(camera.look_at_cam2world(yaw_deg=-10 + 2 * f))
        rows.append({"frame": f, "name": f"{f:06d}.png", "flag": "ok", "label": label.tolist()})
    atomic.write_parquet(root / "cameras.parquet", pd.DataFrame(rows))
    write_split(root / "split.json", list(range(frames - 2)), [frames - 2, frames - 1], source="bench")
    table = pd.DataFrame({"frame": np.arange(frames), "flag": "ok", "expression": list(rng.standard_normal((frames, 10)))})
    write_expressions(root / "expressions.parquet", table, {"model": "bench"})
    np.save(root / "audio_features.npy", rng.standard_normal((frames, 16, 29)))
    q, _ = np.linalg.qr(rng.standard_normal((14 * 512, dim)))
    atomic.save_npz(root / "prior.npz", mean=np.zeros((14, 512), np.float32), basis=q.T.astype(np.float32),
                    explained_variance=np.ones(dim), explained_variance_ratio=np.ones(dim) / dim,
                    data_directions=np.array(dim), total_variance=np.array(float(dim)), seed=np.array(0), frames=np.arange(dim + 1))
    return {"crops": str(root / "crops"), "cameras": str(root / "cameras.parquet"), "split": str(root / "split.json"),
            "prior": str(root / "prior.npz"), "expressions": str(root / "expressions.parquet"),
            "audio_features": str(root / "audio_features.npy")}


def generator_json(root: Path, config: str) -> str:
    from hfagp.io import atomic

    if config == "demo":
        record = {"kind": "demo", "checkpoint": None, "demo_seed": 0, "tuned": None}
    else:
        import torch
        from bench_eg3d import _full512_kwargs

        from hfagp.eg3d import TriPlaneGenerator, save_generator

        kwargs, nrr = _full512_kwargs()
        torch.manual_seed(0)
        G = TriPlaneGenerator(**kwargs)
        G.neural_rendering_resolution = nrr
        save_generator(G, root / "full512.pt")
        record = {"kind": "checkpoint", "checkpoint": str(root / "full512.pt"), "demo_seed": 0, "tuned": None}
    atomic.write_json(root / "generator.json", record)
    return str(root / "generator.json")


def run_case(case: str, steps: int) -> dict:
    import logging

    import torch

    from hfagp.avatar.distributed import setup_distributed
    from hfagp.avatar.settings import TrainPaths, TrainSettings
    from hfagp.avatar.training import Trainer

    logging.getLogger("hfagp").setLevel(logging.ERROR)
    torch.set_num_threads(2)
    config, kind, phase = case.split("-")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        subject = make_subject(root)
        demo = config == "demo"
        settings = TrainSettings(
            kind=kind, steps=10**6, tune_iter=0 if phase == "tuned" else 10**6, lr=3e-4, lpips_weight=0.0,
            batch_size=1, resolution=None, ema_decay=0.99 if demo else 0.999,
            rgb_resolution=64 if demo else 256, driver_width=0.5 if demo else 1.0, smoothing_start=0, smoothing_window=8,
        )
        paths = TrainPaths(output=str(root / "out" / "checkpoint.pt"), generator_json=generator_json(root, config), **subject)
        trainer = Trainer(settings, paths, setup_distributed("cpu"))
        trainer.train_step()  # warm-up (and the switch to tuning)
        start = time.perf_counter()
        for _ in range(steps):
            trainer.train_step()
        per_it = (time.perf_counter() - start) / steps
        return {
            "case": case, "resolution": trainer.resolution, "batch": settings.batch_size, "s_per_it": per_it,
            "it_per_s": 1.0 / per_it, "s_per_1k": per_it * 1000, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", default=CASES, choices=CASES)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per demo case (after one warm-up step)")
    parser.add_argument("--full-steps", type=int, default=2, help="timed steps per full512 case")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_case(args.worker, args.steps)))
        return
    print(f"{'case':<26} {'res':>4} {'batch':>5} {'it/s':>7} {'s/it':>7} {'min/1k it':>10} {'peak MB':>8}")
    for case in args.cases:
        steps = args.full_steps if case.startswith("full512") else args.steps
        proc = subprocess.run([sys.executable, __file__, "--worker", case, "--steps", str(steps)], capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{case:<26} failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}", flush=True)
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"{r['case']:<26} {r['resolution']:>4} {r['batch']:>5} {r['it_per_s']:>7.2f} {r['s_per_it']:>7.2f} "
              f"{r['s_per_1k'] / 60:>10.1f} {r['peak_rss_mb']:>8.0f}", flush=True)


if __name__ == "__main__":
    main()
