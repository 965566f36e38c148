"""Benchmark the evaluate stage's per-frame cost on CPU, and NIQE against basicsr's own function.

Usage::

    .venv/bin/python bench/bench_evaluate.py            # 10 frames of the carphone face, 128 px renders
    .venv/bin/python bench/bench_evaluate.py --frames 20 --repeat 5

Per test frame (:class:`hfagp.evaluate.frame_scoring.FrameScorer`, LPIPS
absent as in the demo): the whole row under the default protocol (512 px,
full frame) and under ``render`` (the 128 px render's own size), and the parts
(dlib landmarks on both images, the CSIM embeddings, SSIM). NIQE on one
512x512 photograph: ours and basicsr's ``calculate_niqe`` (loaded as the tests
load it), minimum and median of the repeats.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from media import demo_frames  # noqa: E402
from reference_tools import basicsr_metrics  # noqa: E402
from skimage import data  # noqa: E402

from hfagp.evaluate import metrics, niqe  # noqa: E402
from hfagp.evaluate.frame_scoring import FrameScorer  # noqa: E402
from hfagp.evaluate.identity import FaceEmbedder  # noqa: E402
from hfagp.evaluate.metrics import LpipsScorer  # noqa: E402
from hfagp.evaluate.protocol import Protocol, resize_to  # noqa: E402


def timed(fn, repeat: int) -> tuple[float, float]:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def pairs(count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(128 px noisy 'render', 512 px crop) of real carphone frames, float [0, 1]."""
    rng = np.random.default_rng(0)
    out = []
    for frame in demo_frames(count * 5)[::5]:
        crop = cv2.resize(frame[12:116, 34:138], (512, 512), interpolation=cv2.INTER_CUBIC) / 255.0
        render = np.clip(resize_to(crop, 128, 128) + rng.normal(0, 0.02, (128, 128, 3)), 0, 1)
        out.append((render, crop))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    lpips = LpipsScorer("alex", ROOT / "absent-alexnet.pth")
    embedder = FaceEmbedder()
    frames = pairs(args.frames)
    rows = []
    for name, protocol in (("512 px (default)", Protocol()), ("render (128 px)", Protocol(resolution="render"))):
        size = protocol.size((128, 128))
        scaled = [(resize_to(r, *size), resize_to(t, *size)) for r, t in frames]

        def run(protocol=protocol, size=size, scaled=scaled):
            scorer = FrameScorer(protocol, size, lpips, embedder)
            for render, truth in scaled:
                scorer(render, truth)

        best, median = timed(run, args.repeat)
        rows.append((f"row per frame, {name}", best / len(frames), median / len(frames)))
    render, truth = (resize_to(image, 512, 512) for image in frames[0])
    u8 = (np.round(truth * 255)).astype(np.uint8)
    scorer = FrameScorer(Protocol(), (512, 512), lpips, embedder)
    found = scorer.landmarks.truth.track(u8)
    rows.append(("dlib landmarks, one 512 px image", *timed(lambda: scorer.landmarks.truth.track(u8), args.repeat)))
    rows.append(("CSIM embedding, one face", *timed(lambda: embedder.embed(u8, found[0], found[2]), args.repeat)))
    rows.append(("SSIM, 512 px RGB", *timed(lambda: metrics.ssim(render, truth), args.repeat)))
    photo = data.astronaut()
    reference = basicsr_metrics()
    rows.append(("NIQE 512x512, hfagp", *timed(lambda: niqe.niqe(photo), args.repeat)))
    rows.append(("NIQE 512x512, basicsr calculate_niqe", *timed(
        lambda: reference.calculate_niqe(photo[..., ::-1], 0, input_order="HWC", convert_to="y"), args.repeat)))
    print(f"{'what':<42} {'min s':>8} {'median s':>9}")
    for what, best, median in rows:
        print(f"{what:<42} {best:8.3f} {median:9.3f}")


if __name__ == "__main__":
    main()
