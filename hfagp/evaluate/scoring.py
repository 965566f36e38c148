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
  **face PSNR** (``psnr_face``) is the same PSNR over the pixels inside the
  filled convex hull of the ground truth's dlib 68 landmarks (at the render
  resolution, all channels; NaN where the ground truth has no face), see
  :mod:`hfagp.evaluate.face_region`;
* the ground truth is **area-resized to the render resolution** (renders are
  never resampled), images are floats in **[0, 1]**;
* PSNR / SSIM / L1 / LPIPS as documented in :mod:`hfagp.evaluate.metrics` (LPIPS on
  images mapped to [-1, 1]; ``n/a`` when the backbone weights are absent);
* **AKD**: dlib HOG detection + 68-point landmarks on the render and on the
  resized ground truth, separately tracked, at the render resolution (dlib
  upsampling 0, or 1 below 256 px); the distance is in pixels of the render
  resolution; NaN where either image has no face, and the face counts are
  reported (``face_fraction``: renders with a face / test frames);
* **inner-lip opening** (``lip_render``, ``lip_gt``): mean distance of the
  inner-lip landmark pairs (61, 67), (62, 66), (63, 65) over the outer-eye-corner
  distance (36, 45) of the same image; ``lip_opening_correlation`` is the
  Pearson correlation of the render's and the ground truth's openings over the
  frames where both have landmarks (null with a reason below 3 frames or for a
  constant sequence);
* **baseline** ``last10_train_mean``: the mean image of the last ten training
  crops (largest frame numbers with a crop), resized like the ground truth, and
  scored with the same PSNR / face PSNR against every test ground truth;
* **NIQE** (:mod:`hfagp.evaluate.niqe`) on every novel-view frame, no reference; n/a
  with a reason below 192x192 px; dlib (the settings of the test frames) looks
  for a face in every novel-view frame (``novel_faces``), whatever its size;
* summaries: mean and population std (ddof 0) over finite values (PSNR of an
  identical pair is +inf and is left out and counted as ``nonfinite``).

``metrics.parquet``: one row per evaluated frame: ``frame`` (int), ``set``
(``test``: reenactment of a test frame; ``novel``: novel-view frame, its
position in ``--novel``), ``psnr``, ``psnr_face``, ``ssim``, ``l1``,
``lpips``, ``akd``, ``niqe``, ``lip_render``, ``lip_gt`` (float, NaN where not
defined), ``face_render``, ``face_gt`` (bool; on novel rows ``face_render`` is
the novel-view detection). ``metrics.json`` beside it (same stem) holds the
summary read by ``hfagp paper-table``: ``metrics`` (mean/std/count of each
metric over the test frames), ``akd_faces``, ``lip_opening_correlation``
(``{value, frames, reason}``), ``baselines`` (``{"last10_train_mean": {psnr,
psnr_face, face_frames, frames}}``), ``niqe`` and ``novel_faces``
(``{detected, frames, fraction}``; null without ``--novel``).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from hfagp.errors import HfagpError
from hfagp.evaluate import face_region
from hfagp.io import atomic
from hfagp.io.artifacts import read_json
from hfagp.logs import get_logger

log = get_logger("evaluate")

FRAME_NAME = "{:06d}.png"
METRICS = ("psnr", "psnr_face", "ssim", "l1", "lpips", "akd")
LIP_COLUMNS = ("lip_render", "lip_gt")
COLUMNS = ("frame", "set", *METRICS, "niqe", *LIP_COLUMNS, "face_render", "face_gt")
GENERATOR_KINDS = ("demo", "checkpoint", "tuned")
DEMO_PRIOR = "random-init demo generator (no prior)"
POLICY = (
    "full aligned crop, no mask, except psnr_face: inside the convex hull of the ground truth's dlib 68 landmarks; "
    "ground truth area-resized to the render resolution; images in [0,1]; "
    "SSIM Gaussian sigma 1.5; AKD = mean distance of dlib 68 landmarks in render pixels; "
    "lip opening = mean inner-lip gap (61-67, 62-66, 63-65) / outer eye corner distance (36-45), Pearson over test frames; "
    "baseline = mean of the last 10 training crops; mean/std (ddof 0) over finite values"
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


def face_tracker(height: int, width: int, upsample: int | None = None):
    """The evaluation's dlib face tracker: HOG, upsampling ``upsample`` (default 0, or 1 below 256 px)."""
    from hfagp.preprocess.landmarks import DetectorSettings, FaceTracker

    if upsample is None:
        upsample = 0 if min(height, width) >= 256 else 1
    return FaceTracker(DetectorSettings(detector="hog", upsample=upsample))


class LandmarkPair:
    """Two dlib trackers (render, ground truth) that return 68 landmarks or None."""

    def __init__(self, height: int, width: int, upsample: int | None = None):
        self.render, self.truth = face_tracker(height, width, upsample), face_tracker(height, width, upsample)

    @staticmethod
    def _points(tracker, rgb: np.ndarray) -> np.ndarray | None:
        found = tracker.track(rgb)
        return None if found is None else found[2]

    def __call__(self, render: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        return self._points(self.render, render), self._points(self.truth, truth)


def frame_metrics(render: np.ndarray, truth: np.ndarray, lpips, landmarks: LandmarkPair,
                  baseline: np.ndarray | None = None) -> dict:
    """All full-reference metrics of one (render, ground truth) pair of float [0, 1] images.

    With a ``baseline`` image, ``baseline_psnr`` and ``baseline_psnr_face`` score
    it against the same ground truth (they do not go to the parquet).
    """
    from hfagp.evaluate import metrics

    points_render, points_truth = landmarks(_to_uint8(render), _to_uint8(truth))
    value = lpips(render, truth)
    row = {
        "psnr": metrics.psnr(render, truth),
        "psnr_face": face_region.psnr_face(render, truth, points_truth),
        "ssim": metrics.ssim(render, truth),
        "l1": metrics.l1(render, truth),
        "lpips": math.nan if value is None else value,
        "akd": metrics.akd(points_render, points_truth),
        "niqe": math.nan,
        "lip_render": face_region.lip_opening(points_render),
        "lip_gt": face_region.lip_opening(points_truth),
        "face_render": points_render is not None,
        "face_gt": points_truth is not None,
    }
    if baseline is not None:
        row["baseline_psnr"] = metrics.psnr(baseline, truth)
        row["baseline_psnr_face"] = face_region.psnr_face(baseline, truth, points_truth)
    return row


def evaluate_test(pairs, lpips, upsample: int | None = None,
                  baseline_crops: list[Path] | None = None) -> tuple[list[dict], tuple[int, int]]:
    """Rows for the test pairs and the render resolution (height, width).

    ``baseline_crops``: crops whose mean image (at the render resolution) is
    scored as a baseline too (see :func:`frame_metrics`).
    """
    from tqdm import tqdm

    from hfagp.io.images import read_rgb

    rows, landmarks, size, baseline = [], None, None, None
    for frame, render_path, crop_path in tqdm(pairs, desc="evaluate", unit="frame", leave=False):
        render_rgb = read_rgb(render_path)
        if size is None:
            size = render_rgb.shape[:2]
            landmarks = LandmarkPair(*size, upsample=upsample)
            if baseline_crops:
                baseline = face_region.mean_image(baseline_crops, *size)
        elif render_rgb.shape[:2] != size:
            raise HfagpError(f"{render_path} is {render_rgb.shape[1]}x{render_rgb.shape[0]}, other renders "
                             f"{size[1]}x{size[0]}; rerun the render stage")
        render = render_rgb.astype(np.float64) / 255.0
        truth = resize_area(read_rgb(crop_path), *size)
        rows.append({"frame": frame, "set": "test", **frame_metrics(render, truth, lpips, landmarks, baseline)})
    return rows, size


def evaluate_novel(novel: Path, model_path: str | None = None,
                   upsample: int | None = None) -> tuple[list[dict], str | None]:
    """One row per PNG in ``novel`` (sorted by name): NIQE and face detection; and why NIQE is n/a (too small).

    Frames too small for NIQE keep a NaN ``niqe`` (the reason is returned) but
    still get their row and their face detection (``face_render``).
    """
    from tqdm import tqdm

    from hfagp.evaluate import niqe
    from hfagp.io.images import read_rgb

    files = sorted(novel.glob("*.png")) if novel.is_dir() else []
    if not files:
        raise HfagpError(f"no novel-view PNG frames in {novel}; rerun the render stage or leave out --novel")
    model = niqe.load_model(model_path)
    rows, reasons, trackers = [], [], {}
    for position, path in enumerate(tqdm(files, desc="NIQE", unit="frame", leave=False)):
        rgb = read_rgb(path)
        size = rgb.shape[:2]
        if size not in trackers:
            trackers[size] = face_tracker(*size, upsample=upsample)
        boxes, _ = trackers[size].detect(rgb)  # independent detection per frame
        reason = niqe.too_small_reason(*size)
        if reason is not None and reason not in reasons:
            log.warning("NIQE n/a for %s: %s", path, reason)
            reasons.append(reason)
        value = math.nan if reason is not None else niqe.niqe(rgb, model)
        rows.append({"frame": position, "set": "novel", **{m: math.nan for m in METRICS}, "niqe": value,
                     **{c: math.nan for c in LIP_COLUMNS}, "face_render": bool(boxes), "face_gt": False})
    return rows, "; ".join(reasons) or None


def summary(rows: list[dict], info: dict, scorer, size, unrendered, split: dict, niqe_part: dict | None,
            baseline_frames: list[int] | None = None) -> dict:
    """The ``metrics.json`` content."""
    from hfagp.evaluate import metrics

    test = [row for row in rows if row["set"] == "test"]
    novel = [row for row in rows if row["set"] == "novel"]
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
            "face_fraction": sum(row["face_render"] for row in test) / len(test) if test else None,
        },
        "lip_opening_correlation": face_region.lip_correlation([r["lip_render"] for r in test], [r["lip_gt"] for r in test]),
        "baselines": {"last10_train_mean": face_region.baseline_summary(test, baseline_frames or [])},
        "niqe": niqe_part,
        "novel_faces": face_region.novel_faces([row["face_render"] for row in novel]) if niqe_part is not None else None,
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
    baseline_frames = face_region.last_train_frames(split["train"], Path(crops))
    if not baseline_frames:
        log.warning("no training frame has a crop in %s: no last10_train_mean baseline", crops)
    baseline_crops = [Path(crops) / FRAME_NAME.format(frame) for frame in baseline_frames]
    rows, size = evaluate_test(pairs, scorer, upsample, baseline_crops)
    niqe_part = None
    if novel is not None:
        novel_rows, reason = evaluate_novel(Path(novel), niqe_model, upsample)
        rows += novel_rows
        from hfagp.evaluate.metrics import summarize

        niqe_part = {**summarize(row["niqe"] for row in novel_rows), "frames": len(novel_rows), "reason": reason,
                     "model": load_model(niqe_model).source, "method": DESCRIPTION}
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    table = table.astype({"frame": "int64", "face_render": bool, "face_gt": bool})
    result = summary(rows, info, scorer, size, unrendered, split, niqe_part, baseline_frames)
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
    faces, lip = result["akd_faces"], result["lip_opening_correlation"]
    log.info("%s/%s, %d frames: %s; faces found in %d renders, %d ground truths; lip-opening correlation %s",
             result["subject"], result["driver"], result["frames"], ", ".join(parts), faces["render"],
             faces["ground_truth"], "n/a" if lip["value"] is None else f"{lip['value']:.3f}")
    base = result["baselines"]["last10_train_mean"]
    if base["psnr"] is not None:
        log.info("baseline (mean of training frames %s): PSNR %.4g, face PSNR %s", base["frames"], base["psnr"],
                 "n/a" if base["psnr_face"] is None else f"{base['psnr_face']:.4g}")
    if result["novel_faces"] is not None:
        novel = result["novel_faces"]
        log.info("novel views: a face in %d of %d frames", novel["detected"], novel["frames"])
