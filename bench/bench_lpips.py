"""Benchmark ``hfagp.losses.lpips`` on CPU: time per LPIPS call, batch 1, 2 threads.

Usage::

    .venv/bin/python bench/bench_lpips.py             # alex and vgg at 256 and 512 px
    .venv/bin/python bench/bench_lpips.py --repeat 10 --backbones alex

The backbone weights are numpy-seeded stand-ins (``seeded_backbone_state``)
written to a temporary file: the timings are those of the real network, the
distances are meaningless. ``fwd`` is one ``torch.no_grad()`` call on a
(pred, target) pair; ``fwd+bwd`` is a forward and a backward to ``pred``
(as in inversion and training). Two warm-up calls precede the timed repeats;
the table shows the minimum and median.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timing import time_calls  # noqa: E402

from hfagp.losses.lpips import load_lpips, seeded_backbone_state  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--backbones", nargs="+", default=["alex", "vgg"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for backbone in args.backbones:
            path = Path(tmp) / f"{backbone}.pth"
            torch.save(seeded_backbone_state(backbone, 0), path)
            model = load_lpips(backbone, path)
            for size in args.sizes:
                gen = torch.Generator().manual_seed(size)
                pred = torch.rand(1, 3, size, size, generator=gen) * 2 - 1
                target = torch.rand(1, 3, size, size, generator=gen) * 2 - 1

                def fwd() -> None:
                    with torch.no_grad():
                        model(pred, target)

                def fwdbwd() -> None:
                    p = pred.clone().requires_grad_(True)
                    model(p, target).sum().backward()

                for mode, fn in (("fwd", fwd), ("fwd+bwd", fwdbwd)):
                    times = time_calls(fn, args.repeat)
                    rows.append((backbone, size, mode, min(times), statistics.median(times)))
    print(f"LPIPS v0.1, batch 1, {args.threads} CPU threads, torch {torch.__version__}, {args.repeat} repeats")
    print(f"{'backbone':<9}{'size':>6}  {'mode':<9}{'min s':>9}{'median s':>10}")
    for backbone, size, mode, tmin, tmed in rows:
        print(f"{backbone:<9}{size:>6}  {mode:<9}{tmin:>9.3f}{tmed:>10.3f}")


if __name__ == "__main__":
    main()
