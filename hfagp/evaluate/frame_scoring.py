"""One (render, ground truth) pair scored under an evaluation protocol: the rows of ``metrics.parquet``.

:class:`FrameScorer` finds the faces (dlib HOG + 68 landmarks on the render
and on the ground truth, separately tracked), builds the protocol's region
pair (:mod:`hfagp.evaluate.protocol`) and computes every per-frame metric;
what cannot be computed is NaN with its reason in ``missing``. The stage
around it (inputs, summaries, files) is :mod:`hfagp.evaluate.scoring`.
"""

from __future__ import annotations

import math

import numpy as np

from hfagp.evaluate import face_region
from hfagp.evaluate.protocol import Protocol, apply_region, region_mask, to_color

REGION_METRICS = ("psnr", "ssim", "l1", "lpips")  # computed on the protocol's region pair


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)


def face_tracker(height: int, width: int, upsample: int | None = None):
    """The evaluation's dlib face tracker: HOG, upsampling ``upsample`` (default 0, or 1 below 256 px)."""
    from hfagp.preprocess.landmarks import DetectorSettings, FaceTracker

    if upsample is None:
        upsample = 0 if min(height, width) >= 256 else 1
    return FaceTracker(DetectorSettings(detector="hog", upsample=upsample))


class LandmarkPair:
    """Two dlib trackers (render, ground truth); each side gives ``(box, 68 landmarks)`` or None."""

    def __init__(self, height: int, width: int, upsample: int | None = None):
        self.render, self.truth = face_tracker(height, width, upsample), face_tracker(height, width, upsample)

    @staticmethod
    def _found(tracker, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        found = tracker.track(rgb)
        return None if found is None else (found[0], found[2])

    def __call__(self, render: np.ndarray, truth: np.ndarray):
        return self._found(self.render, render), self._found(self.truth, truth)


def _points(found) -> np.ndarray | None:
    return None if found is None else found[1]


def _no_face(render_found, truth_found) -> str | None:
    """Why a metric that needs both faces is missing (None when both were found)."""
    sides = [name for name, found in (("render", render_found), ("ground truth", truth_found)) if found is None]
    return f"no face found in the {' or the '.join(sides)}" if sides else None


class FrameScorer:
    """Every per-frame metric of one (render, ground truth) pair under a :class:`Protocol`.

    ``lpips``: a :class:`~hfagp.evaluate.metrics.LpipsScorer`; ``embedder``: a
    :class:`~hfagp.evaluate.identity.FaceEmbedder` (CSIM). Built for one
    evaluation size (landmark trackers follow the face from frame to frame).
    """

    def __init__(self, protocol: Protocol, size: tuple[int, int], lpips, embedder, upsample: int | None = None):
        self.protocol, self.size, self.lpips, self.embedder = protocol, size, lpips, embedder
        self.landmarks = LandmarkPair(*size, upsample=upsample)

    def region_pair(self, render: np.ndarray, truth: np.ndarray, points_truth) -> tuple | None:
        """(render, truth) as the region metrics see them, or None when the region's mask is missing."""
        mask = region_mask(points_truth, self.protocol.region, *self.size)
        if self.protocol.needs_mask and mask is None:
            return None
        return apply_region(render, truth, self.protocol.region, mask)

    def pixel_metrics(self, pair: tuple | None) -> dict:
        """PSNR, SSIM, L1 (in the protocol's colour space) and LPIPS (RGB) of a region pair; NaN without one."""
        from hfagp.evaluate import metrics

        if pair is None:
            return {name: math.nan for name in REGION_METRICS}
        a, b = (to_color(image, self.protocol.color) for image in pair)
        value = self.lpips(*pair)
        return {"psnr": metrics.psnr(a, b), "ssim": metrics.ssim(a, b), "l1": metrics.l1(a, b),
                "lpips": math.nan if value is None else value}

    def __call__(self, render: np.ndarray, truth: np.ndarray, baseline: np.ndarray | None = None) -> dict:
        """The row of one pair of float [0, 1] images at :attr:`size`; ``missing`` says what is absent and why.

        With a ``baseline`` image, ``baseline_psnr`` and ``baseline_psnr_face`` score
        it against the same ground truth and protocol (they do not go to the parquet).
        """
        from hfagp.evaluate import metrics
        from hfagp.evaluate.identity import csim

        render_u8, truth_u8 = _to_uint8(render), _to_uint8(truth)
        render_found, truth_found = self.landmarks(render_u8, truth_u8)
        points_render, points_truth = _points(render_found), _points(truth_found)
        pair = self.region_pair(render, truth, points_truth)
        row = self.pixel_metrics(pair)
        row.update({
            "psnr_face": face_region.psnr_face(render, truth, points_truth),
            "akd": metrics.akd(points_render, points_truth),
            "lmd": metrics.lmd(points_render, points_truth),
            "csim": math.nan,
            "niqe": math.nan,
            "lip_render": face_region.lip_opening(points_render),
            "lip_gt": face_region.lip_opening(points_truth),
            "face_render": render_found is not None,
            "face_gt": truth_found is not None,
        })
        if render_found is not None and truth_found is not None:
            row["csim"] = csim(self.embedder.embed(render_u8, *render_found), self.embedder.embed(truth_u8, *truth_found))
        missing: dict[str, str] = {}
        if pair is None:
            reason = f"no face found in the ground truth (the {self.protocol.region} mask needs its landmarks)"
            missing.update(dict.fromkeys(REGION_METRICS, reason))
        elif not self.lpips.available:
            missing["lpips"] = "LPIPS backbone weights absent"
        if truth_found is None:
            missing["psnr_face"] = "no face found in the ground truth"
        reason = _no_face(render_found, truth_found)
        if reason:
            missing.update(dict.fromkeys(("akd", "lmd", "csim"), reason))
        row["missing"] = missing
        if baseline is not None:
            base = self.region_pair(baseline, truth, points_truth)
            row["baseline_psnr"] = math.nan if base is None else metrics.psnr(
                *(to_color(image, self.protocol.color) for image in base))
            row["baseline_psnr_face"] = face_region.psnr_face(baseline, truth, points_truth)
        return row


def missing_text(missing: dict[str, str]) -> str:
    """``"akd, lmd, csim: no face found in the render; lpips: ..."`` (empty when nothing is missing)."""
    by_reason: dict[str, list[str]] = {}
    for metric, reason in missing.items():
        by_reason.setdefault(reason, []).append(metric)
    return "; ".join(f"{', '.join(metrics)}: {reason}" for reason, metrics in by_reason.items())
