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

Evaluation policy (the protocol's choices are :mod:`hfagp.evaluate.protocol`'s, written into
``metrics.json`` as ``protocol``):

* both images are brought to the protocol's size (default 512 px: renders of
  another size are resized, bicubic up, area down; ``render``: the ground truth
  is area-resized to the render), floats in **[0, 1]**;
* **PSNR / SSIM / L1 / LPIPS** over the protocol's region (full frame by
  default; ``head``: ground truth pasted outside the head mask; ``face``: both
  white outside the face hull) and colour space (RGB, or BT.601 luma for
  PSNR/SSIM/L1), as documented in :mod:`hfagp.evaluate.metrics` (LPIPS on RGB
  mapped to [-1, 1]; missing when the backbone weights are absent);
* **face PSNR** (``psnr_face``): PSNR over the pixels inside the filled convex
  hull of the ground truth's dlib 68 landmarks (all channels), see
  :mod:`hfagp.evaluate.face_region`;
* **AKD** (all 68 landmarks) and **LMD** (mouth 48-67, mean-centred): dlib HOG
  detection + 68-point landmarks on the render and on the ground truth,
  separately tracked (dlib upsampling 0, or 1 below 256 px), distances in
  pixels of the evaluation size; **CSIM**: cosine similarity of the dlib
  face-recognition embeddings of the render's and the ground truth's faces
  (:mod:`hfagp.evaluate.identity`); the face counts are reported
  (``face_fraction``: renders with a face / test frames);
* **inner-lip opening** (``lip_render``, ``lip_gt``): mean distance of the
  inner-lip landmark pairs (61, 67), (62, 66), (63, 65) over the outer-eye-corner
  distance (36, 45) of the same image; ``lip_opening_correlation`` is the
  Pearson correlation of the render's and the ground truth's openings over the
  frames where both have landmarks (null with a reason below 3 frames or for a
  constant sequence);
* **baseline** ``last10_train_mean``: the mean image of the last ten training
  crops (largest frame numbers with a crop), at the evaluation size, scored
  with the same protocol's PSNR and with face PSNR against every test ground truth;
* **NIQE** (:mod:`hfagp.evaluate.niqe`, basicsr's) on every novel-view frame at
  the render's own size, no reference; missing with a reason below 192x192 px;
  dlib (the settings of the test frames) looks for a face in every novel-view
  frame (``novel_faces``), whatever its size;
* a metric that cannot be computed on a frame (no face found, no mask, no
  LPIPS weights) is NaN in that frame's row with the reason in ``missing``,
  and counted in the summary (``count`` of ``frames``, ``missing``: reason ->
  frames), never zero-filled;
* summaries: mean and population std (ddof 0) over finite values (PSNR of an
  identical pair is +inf and is left out and counted as ``nonfinite``).

``metrics.parquet``: one row per evaluated frame: ``frame`` (int), ``set``
(``test``: reenactment of a test frame; ``novel``: novel-view frame, its
position in ``--novel``), ``psnr``, ``psnr_face``, ``ssim``, ``l1``,
``lpips``, ``akd``, ``lmd``, ``csim``, ``niqe``, ``lip_render``, ``lip_gt``
(float, NaN where not defined), ``face_render``, ``face_gt`` (bool; on novel
rows ``face_render`` is the novel-view detection), ``missing`` (str: ``"akd,
lmd, csim: no face found in the render; ..."``, empty when every metric of the
row exists). ``metrics.json`` beside it (same stem) holds the summary read by
``hfagp paper-table``: ``protocol`` (``resolution``, ``region``, ``color``,
``text``), ``resolution`` (evaluated) and ``render_resolution``, ``methods``
(per metric: ``tool``, ``version``, ``protocol``; :mod:`hfagp.evaluate.methods`),
``metrics`` (mean/std/count/frames/missing of each metric over the test
frames), ``akd_faces``, ``lip_opening_correlation`` (``{value, frames,
reason}``), ``baselines`` (``{"last10_train_mean": {psnr, psnr_face,
face_frames, frames}}``), ``niqe`` and ``novel_faces`` (``{detected, frames,
fraction}``; null without ``--novel``).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from hfagp.errors import HfagpError
from hfagp.evaluate import face_region
from hfagp.evaluate.frame_scoring import FrameScorer, face_tracker, missing_text
from hfagp.evaluate.protocol import Protocol, resize_to
from hfagp.io import atomic
from hfagp.io.artifacts import read_json
from hfagp.logs import get_logger

log = get_logger("evaluate")

FRAME_NAME = "{:06d}.png"
METRICS = ("psnr", "psnr_face", "ssim", "l1", "lpips", "akd", "lmd", "csim")
LIP_COLUMNS = ("lip_render", "lip_gt")
COLUMNS = ("frame", "set", *METRICS, "niqe", *LIP_COLUMNS, "face_render", "face_gt", "missing")
GENERATOR_KINDS = ("demo", "checkpoint", "tuned")
DEMO_PRIOR = "random-init demo generator (no prior)"
POLICY = (
    "region, size and colour space as in `protocol`; psnr_face: inside the convex hull of the ground truth's "
    "dlib 68 landmarks; images in [0,1]; SSIM Gaussian sigma 1.5; AKD = mean distance of dlib 68 landmarks, "
    "LMD = mean distance of the mean-centred mouth landmarks 48-67, both in pixels of the evaluation size; "
    "CSIM = cosine of dlib face-recognition embeddings; "
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


def evaluate_test(pairs, lpips, upsample: int | None = None, baseline_crops: list[Path] | None = None,
                  protocol: Protocol | None = None, embedder=None) -> tuple[list[dict], tuple[int, int], tuple[int, int]]:
    """Rows for the test pairs, the evaluation size and the renders' own size, both (height, width).

    ``baseline_crops``: crops whose mean image (at the evaluation size) is
    scored as a baseline too (see :class:`FrameScorer`).
    """
    from tqdm import tqdm

    from hfagp.evaluate.identity import FaceEmbedder
    from hfagp.io.images import read_rgb

    protocol = protocol or Protocol()
    embedder = embedder or FaceEmbedder()
    rows, scorer, render_size, size, baseline = [], None, None, None, None
    for frame, render_path, crop_path in tqdm(pairs, desc="evaluate", unit="frame", leave=False):
        render_rgb = read_rgb(render_path)
        if render_size is None:
            render_size = render_rgb.shape[:2]
            size = protocol.size(render_size)
            if size != render_size:
                log.info("renders are %dx%d; compared at %dx%d (%s)", render_size[1], render_size[0], size[1], size[0],
                         "bicubic" if size[0] > render_size[0] else "area")
            scorer = FrameScorer(protocol, size, lpips, embedder, upsample)
            if baseline_crops:
                baseline = face_region.mean_image(baseline_crops, *size)
        elif render_rgb.shape[:2] != render_size:
            raise HfagpError(f"{render_path} is {render_rgb.shape[1]}x{render_rgb.shape[0]}, other renders "
                             f"{render_size[1]}x{render_size[0]}; rerun the render stage")
        render = resize_to(render_rgb.astype(np.float64) / 255.0, *size)
        truth = resize_to(read_rgb(crop_path).astype(np.float64) / 255.0, *size)
        rows.append({"frame": frame, "set": "test", **scorer(render, truth, baseline)})
    return rows, size, render_size


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
        missing = {"niqe": reason} if reason is not None else {}
        if math.isnan(value) and reason is None:
            missing["niqe"] = "fewer than two 96 px blocks with defined features (a flat image)"
        rows.append({"frame": position, "set": "novel", **{m: math.nan for m in METRICS}, "niqe": value,
                     **{c: math.nan for c in LIP_COLUMNS}, "face_render": bool(boxes), "face_gt": False,
                     "missing": missing})
    return rows, "; ".join(reasons) or None


def metric_summary(rows: list[dict], name: str) -> dict:
    """mean/std/count of one metric over ``rows``, with ``frames`` (N) and ``missing`` (reason -> frames)."""
    from hfagp.evaluate import metrics

    stats = metrics.summarize(row[name] for row in rows)
    reasons: dict[str, int] = {}
    for row in rows:
        reason = row["missing"].get(name)
        if reason is not None:
            reasons[reason] = reasons.get(reason, 0) + 1
    return {**stats, "frames": len(rows), "missing": reasons}


def summary(rows: list[dict], info: dict, scorer, size, unrendered, split: dict, niqe_part: dict | None,
            baseline_frames: list[int] | None = None, protocol: Protocol | None = None,
            render_size=None, methods: dict | None = None) -> dict:
    """The ``metrics.json`` content."""
    protocol = protocol or Protocol()
    test = [row for row in rows if row["set"] == "test"]
    novel = [row for row in rows if row["set"] == "novel"]
    stats = {name: metric_summary(test, name) for name in METRICS}
    if not scorer.available:
        stats["lpips"]["na"] = scorer.reason
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
        "render_resolution": list(render_size or size),
        "protocol": {**protocol.as_dict(), "text": protocol.describe(size)},
        "methods": methods or {},
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
    protocol: Protocol | None = None,
) -> dict:
    """The whole stage; writes ``output`` (parquet) and ``output`` with suffix ``.json``; returns the summary."""
    import pandas as pd

    from hfagp.evaluate.identity import FaceEmbedder
    from hfagp.evaluate.methods import metric_methods
    from hfagp.evaluate.metrics import LpipsScorer
    from hfagp.evaluate.niqe import DESCRIPTION, load_model
    from hfagp.io.tables import read_split

    protocol = protocol or Protocol()
    info = read_avatar_info(avatar_info)
    split = read_split(split_path)
    pairs, unrendered = frame_pairs(Path(renders), Path(crops), split["test"])
    scorer = LpipsScorer(lpips_backbone, lpips_weights)
    if not scorer.available:
        log.warning("LPIPS reported as n/a: %s", scorer.reason)
    if is_demo(info["generator"]):
        log.warning("this avatar uses the random-init demo generator: its metrics say nothing about HFA-GP quality")
    niqe_source = load_model(niqe_model).source if novel is not None else None  # a bad model file fails before the work
    baseline_frames = face_region.last_train_frames(split["train"], Path(crops))
    if not baseline_frames:
        log.warning("no training frame has a crop in %s: no last10_train_mean baseline", crops)
    baseline_crops = [Path(crops) / FRAME_NAME.format(frame) for frame in baseline_frames]
    log.info("protocol: %s", protocol.describe())
    rows, size, render_size = evaluate_test(pairs, scorer, upsample, baseline_crops, protocol, FaceEmbedder())
    niqe_part = None
    if novel is not None:
        novel_rows, reason = evaluate_novel(Path(novel), niqe_model, upsample)
        rows += novel_rows
        niqe_part = {**metric_summary(novel_rows, "niqe"), "reason": reason, "model": niqe_source, "method": DESCRIPTION}
    methods = metric_methods(protocol, size, render_size, scorer, niqe_source)
    table = pd.DataFrame([{**row, "missing": missing_text(row["missing"])} for row in rows], columns=list(COLUMNS))
    table = table.astype({"frame": "int64", "face_render": bool, "face_gt": bool, "missing": str})
    result = summary(rows, info, scorer, size, unrendered, split, niqe_part, baseline_frames, protocol,
                     render_size, methods)
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
