"""Stage ``evaluate``: per-frame metrics of one avatar (subject + driver) -> ``metrics.parquet`` + ``metrics.json``.

Inputs: the render stage's reenactment frames (``--renders``, PNGs named
``%06d.png`` by frame number, at the generator's resolution), the ground-truth
512x512 crops (``--crops``, same names), ``split.json`` (only its ``test``
frames are evaluated), optionally novel-view frames (``--novel``, any PNG
names) and the render stage's ``avatar.json`` (``--avatar-info``)::

    {"subject": "obama", "driver": "rgb",
     "generator": {"kind": "demo" | "checkpoint" | "tuned", "demo": bool,
                   "checkpoint": "path/ffhqrebalanced512-128.pkl" | null,
                   "base_checkpoint": "..." (optional, the prior a tuned generator came from)}}

Evaluation policy:

* the **full aligned crop**, no face/background mask: the crops and the renders
  share the EG3D/FFHQ alignment, so every pixel counts (as in HFA-GP's tables);
* the ground truth is **area-resized to the render resolution** (renders are
  never resampled), images are floats in **[0, 1]**;
* PSNR / SSIM / L1 / LPIPS as documented in :mod:`hfagp.evaluate.metrics` (LPIPS on
  images mapped to [-1, 1]; ``n/a`` when the backbone weights are absent);
* **AKD**: dlib HOG detection + 68-point landmarks on the render and on the
  resized ground truth, separately tracked, at the render resolution (dlib
  upsampling 0, or 1 below 256 px); the distance is in pixels of the render
  resolution; NaN where either image has no face, and the face counts are
  reported;
* **NIQE** (:mod:`hfagp.evaluate.niqe`) on every novel-view frame, no reference; n/a
  with a reason below 192x192 px;
* summaries: mean and population std (ddof 0) over finite values (PSNR of an
  identical pair is +inf and is left out and counted as ``nonfinite``).

``metrics.parquet``: one row per evaluated frame: ``frame`` (int), ``set``
(``test``: reenactment of a test frame; ``novel``: novel-view frame, its
position in ``--novel``), ``psnr``, ``ssim``, ``l1``, ``lpips``, ``akd``,
``niqe`` (float, NaN where not defined), ``face_render``, ``face_gt`` (bool).
``metrics.json`` beside it (same stem) holds the summary read by
``hfagp paper-table``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from hfagp.errors import HfagpError
from hfagp.io import atomic
from hfagp.io.artifacts import read_json
from hfagp.logs import get_logger

log = get_logger("evaluate")

FRAME_NAME = "{:06d}.png"
METRICS = ("psnr", "ssim", "l1", "lpips", "akd")
GENERATOR_KINDS = ("demo", "checkpoint", "tuned")
DEMO_PRIOR = "random-init demo generator (no prior)"
POLICY = (
    "full aligned crop, no mask; ground truth area-resized to the render resolution; images in [0,1]; "
    "SSIM Gaussian sigma 1.5; AKD = mean distance of dlib 68 landmarks in render pixels; "
    "mean/std (ddof 0) over finite values"
)


def read_avatar_info(path: str | Path) -> dict:
    """Read and check the render stage's ``avatar.json``."""
    path = Path(path)
    info = read_json(path, "avatar info", "run the render stage first (it writes this file)")
    try:
        generator = info["generator"]
        kind = generator["kind"]
        str(info["subject"]), str(info["driver"])
    except (ValueError, KeyError, TypeError) as err:
        raise HfagpError(
            f"{path} is not a valid avatar info file ({err!r}); it needs subject, driver and "
            "generator {kind, demo, checkpoint}; rerun the render stage"
        ) from err
    if kind not in GENERATOR_KINDS:
        raise HfagpError(f"{path}: generator kind {kind!r} is not one of {', '.join(GENERATOR_KINDS)}; rerun the render stage")
    return info


def generator_prior(generator: dict) -> str:
    """Human description of the generator prior, e.g. ``EG3D ffhqrebalanced512-128.pkl``."""
    if generator.get("kind") == "demo" or generator.get("demo"):
        return DEMO_PRIOR
    name = Path(str(generator.get("base_checkpoint") or generator.get("checkpoint") or "unknown checkpoint")).name
    if generator.get("kind") == "tuned":
        return f"PTI-tuned EG3D {name}"
    return f"EG3D {name}"


def is_demo(generator: dict) -> bool:
    """Whether the avatar was made with the random-init demo generator."""
    return generator.get("kind") == "demo" or bool(generator.get("demo"))


def frame_pairs(renders: Path, crops: Path, frames: list[int]) -> tuple[list[tuple[int, Path, Path]], list[int]]:
    """``(frame, render, crop)`` for the test frames that were rendered, and the frames without a render.

    A test frame without a ground-truth crop is an error; no render at all too.
    """
    pairs, unrendered = [], []
    for frame in frames:
        crop = crops / FRAME_NAME.format(frame)
        if not crop.is_file():
            raise HfagpError(f"ground-truth crop {crop} of test frame {frame} not found; rerun the align stage")
        render = renders / FRAME_NAME.format(frame)
        if render.is_file():
            pairs.append((frame, render, crop))
        else:
            unrendered.append(frame)
    if not pairs:
        raise HfagpError(
            f"none of the {len(frames)} test frames has a render in {renders} (expected e.g. "
            f"{FRAME_NAME.format(frames[0]) if frames else '000000.png'}); rerun the render stage"
        )
    if unrendered:
        log.warning("%d of %d test frames have no render in %s (first: %s); they are not evaluated",
                    len(unrendered), len(frames), renders, unrendered[:5])
    return pairs, unrendered


def resize_area(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 RGB -> float64 [0, 1] at (height, width), area interpolation."""
    import cv2

    image = rgb.astype(np.float32) / 255.0
    if image.shape[:2] != (height, width):
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    return np.clip(image.astype(np.float64), 0.0, 1.0)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)


class LandmarkPair:
    """Two dlib trackers (render, ground truth) that return 68 landmarks or None."""

    def __init__(self, height: int, width: int, upsample: int | None = None):
        from hfagp.preprocess.landmarks import DetectorSettings, FaceTracker

        if upsample is None:
            upsample = 0 if min(height, width) >= 256 else 1
        settings = DetectorSettings(detector="hog", upsample=upsample)
        self.render, self.truth = FaceTracker(settings), FaceTracker(settings)

    @staticmethod
    def _points(tracker, rgb: np.ndarray) -> np.ndarray | None:
        found = tracker.track(rgb)
        return None if found is None else found[2]

    def __call__(self, render: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        return self._points(self.render, render), self._points(self.truth, truth)


def frame_metrics(render: np.ndarray, truth: np.ndarray, lpips, landmarks: LandmarkPair) -> dict:
    """All full-reference metrics of one (render, ground truth) pair of float [0, 1] images."""
    from hfagp.evaluate import metrics

    points_render, points_truth = landmarks(_to_uint8(render), _to_uint8(truth))
    value = lpips(render, truth)
    return {
        "psnr": metrics.psnr(render, truth),
        "ssim": metrics.ssim(render, truth),
        "l1": metrics.l1(render, truth),
        "lpips": math.nan if value is None else value,
        "akd": metrics.akd(points_render, points_truth),
        "niqe": math.nan,
        "face_render": points_render is not None,
        "face_gt": points_truth is not None,
    }


def evaluate_test(pairs, lpips, upsample: int | None = None) -> tuple[list[dict], tuple[int, int]]:
    """Rows for the test pairs and the render resolution (height, width)."""
    from tqdm import tqdm

    from hfagp.io.images import read_rgb

    rows, landmarks, size = [], None, None
    for frame, render_path, crop_path in tqdm(pairs, desc="evaluate", unit="frame", leave=False):
        render_rgb = read_rgb(render_path)
        if size is None:
            size = render_rgb.shape[:2]
            landmarks = LandmarkPair(*size, upsample=upsample)
        elif render_rgb.shape[:2] != size:
            raise HfagpError(f"{render_path} is {render_rgb.shape[1]}x{render_rgb.shape[0]}, other renders "
                             f"{size[1]}x{size[0]}; rerun the render stage")
        render = render_rgb.astype(np.float64) / 255.0
        truth = resize_area(read_rgb(crop_path), *size)
        rows.append({"frame": frame, "set": "test", **frame_metrics(render, truth, lpips, landmarks)})
    return rows, size


def evaluate_novel(novel: Path, model_path: str | None = None) -> tuple[list[dict], str | None]:
    """NIQE rows for every PNG in ``novel`` (sorted by name), and why there are none (too small)."""
    from tqdm import tqdm

    from hfagp.evaluate import niqe
    from hfagp.io.images import read_rgb

    files = sorted(novel.glob("*.png")) if novel.is_dir() else []
    if not files:
        raise HfagpError(f"no novel-view PNG frames in {novel}; rerun the render stage or leave out --novel")
    model = niqe.load_model(model_path)
    rows, reason = [], None
    for position, path in enumerate(tqdm(files, desc="NIQE", unit="frame", leave=False)):
        rgb = read_rgb(path)
        reason = niqe.too_small_reason(*rgb.shape[:2])
        if reason is not None:
            log.warning("NIQE n/a for %s: %s", novel, reason)
            return [], reason
        value = niqe.niqe(rgb, model)
        rows.append({"frame": position, "set": "novel", **{m: math.nan for m in METRICS}, "niqe": value,
                     "face_render": False, "face_gt": False})
    return rows, None


def summary(rows: list[dict], info: dict, scorer, size, unrendered, split: dict, niqe_part: dict | None) -> dict:
    """The ``metrics.json`` content."""
    from hfagp.evaluate import metrics

    test = [row for row in rows if row["set"] == "test"]
    stats = {name: metrics.summarize(row[name] for row in test) for name in METRICS}
    if not scorer.available:
        stats["lpips"] = {"mean": None, "std": None, "count": 0, "na": scorer.reason}
    generator = info["generator"]
    return {
        "subject": str(info["subject"]),
        "driver": str(info["driver"]),
        "generator": generator,
        "generator_prior": generator_prior(generator),
        "demo_generator": is_demo(generator),
        "lpips_backbone": scorer.description,
        "lpips_reason": scorer.reason,
        "resolution": list(size),
        "frames": len(test),
        "frames_without_render": len(unrendered),
        "split_source": split.get("source"),
        "metrics": stats,
        "akd_faces": {
            "render": sum(row["face_render"] for row in test),
            "ground_truth": sum(row["face_gt"] for row in test),
            "both": sum(row["face_render"] and row["face_gt"] for row in test),
        },
        "niqe": niqe_part,
        "policy": POLICY,
    }


def run_evaluate(
    renders: str | Path,
    crops: str | Path,
    split_path: str | Path,
    avatar_info: str | Path,
    output: str | Path,
    novel: str | Path | None = None,
    lpips_backbone: str = "alex",
    lpips_weights: str | Path | None = None,
    niqe_model: str | None = None,
    upsample: int | None = None,
) -> dict:
    """The whole stage; writes ``output`` (parquet) and ``output`` with suffix ``.json``; returns the summary."""
    import pandas as pd

    from hfagp.evaluate.metrics import LpipsScorer
    from hfagp.evaluate.niqe import DESCRIPTION, load_model
    from hfagp.io.tables import read_split

    info = read_avatar_info(avatar_info)
    split = read_split(split_path)
    pairs, unrendered = frame_pairs(Path(renders), Path(crops), split["test"])
    scorer = LpipsScorer(lpips_backbone, lpips_weights)
    if not scorer.available:
        log.warning("LPIPS reported as n/a: %s", scorer.reason)
    if is_demo(info["generator"]):
        log.warning("this avatar uses the random-init demo generator: its metrics say nothing about HFA-GP quality")
    rows, size = evaluate_test(pairs, scorer, upsample)
    niqe_part = None
    if novel is not None:
        novel_rows, reason = evaluate_novel(Path(novel), niqe_model)
        rows += novel_rows
        from hfagp.evaluate.metrics import summarize

        niqe_part = {**summarize(row["niqe"] for row in novel_rows), "frames": len(novel_rows), "reason": reason,
                     "model": load_model(niqe_model).source, "method": DESCRIPTION}
    table = pd.DataFrame(rows, columns=["frame", "set", *METRICS, "niqe", "face_render", "face_gt"])
    table = table.astype({"frame": "int64", "face_render": bool, "face_gt": bool})
    result = summary(rows, info, scorer, size, unrendered, split, niqe_part)
    output = Path(output)
    atomic.write_parquet(output, table)
    atomic.write_json(output.with_suffix(".json"), result)
    _log_summary(result)
    return result


def _log_summary(result: dict) -> None:
    parts = []
    for name in METRICS:
        stats = result["metrics"][name]
        parts.append(f"{name} n/a" if stats["mean"] is None else f"{name} {stats['mean']:.4g}±{stats['std']:.3g}")
    faces = result["akd_faces"]
    log.info("%s/%s, %d frames: %s; faces found in %d renders, %d ground truths", result["subject"],
             result["driver"], result["frames"], ", ".join(parts), faces["render"], faces["ground_truth"])
