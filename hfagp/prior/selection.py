"""Stage ``select-frames``: choose the K training frames that are inverted into EG3D's latent space.

The personalised prior is spanned by the inversions of a few frames, so those
frames should cover the person's range of expressions and head poses rather
than K near-identical neutral frames. Each candidate frame is described by a
feature vector of two equally weighted blocks:

* its expression coefficients (``expressions.parquet``), each z-scored over
  the candidates, the block scaled to unit total variance;
* its head pose (yaw, pitch from ``cameras.parquet``), z-scored the same way.

Greedy farthest-point sampling then picks the frame nearest the feature mean
first and, repeatedly, the candidate farthest from everything chosen so far.
It is deterministic (ties go to the lower frame number). Candidates are only
frames of the *train* split (``split.json``) that have a crop and a camera;
test frames are never chosen.

Output ``inversion/selection.json``::

    {"frames": [...],            # chosen frame numbers, ascending (the order of latents.pt)
     "selection_order": [...],   # the same frames in the order they were picked
     "k": K, "method": "farthest-point", "features": [...], "candidates": N,
     "expression_model": "...", "coverage": {...}}
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hfagp.errors import HfagpError
from hfagp.io.artifacts import read_json
from hfagp.logs import get_logger

log = get_logger("selection")

METHOD = "farthest-point"


def standardised_block(values: np.ndarray) -> np.ndarray:
    """Z-score each column (constant columns become 0) and scale the block to unit total variance."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    std = values.std(axis=0)
    keep = std > 1e-12
    if not keep.any():
        return np.zeros((len(values), 0))
    block = (values[:, keep] - values[:, keep].mean(axis=0)) / std[keep]
    return block / np.sqrt(keep.sum())


def farthest_point_order(features: np.ndarray, k: int) -> list[int]:
    """Indices (rows of ``features``) of k points chosen by farthest-point sampling.

    The first point is the one nearest the mean; each next one maximises the
    distance to the nearest already chosen point (ties: lowest index).
    """
    features = np.asarray(features, dtype=np.float64)
    n = len(features)
    if not 1 <= k <= n:
        raise ValueError(f"cannot choose {k} of {n} points")
    if features.shape[1] == 0:
        return list(np.linspace(0, n - 1, k).round().astype(int))
    first = int(np.argmin(((features - features.mean(axis=0)) ** 2).sum(axis=1)))
    chosen = [first]
    nearest = ((features - features[first]) ** 2).sum(axis=1)
    for _ in range(k - 1):
        masked = nearest.copy()
        masked[chosen] = -1.0
        nxt = int(np.argmax(masked))
        chosen.append(nxt)
        nearest = np.minimum(nearest, ((features - features[nxt]) ** 2).sum(axis=1))
    return chosen


def selection_features(
    frames: np.ndarray, yaw: np.ndarray, pitch: np.ndarray, expressions: np.ndarray | None
) -> tuple[np.ndarray, list[str]]:
    """The feature matrix of the candidates (see the module docstring) and the names of its blocks."""
    blocks, names = [standardised_block(np.stack([yaw, pitch], axis=1))], ["yaw", "pitch"]
    if expressions is not None and expressions.size:
        blocks.append(standardised_block(expressions))
        names.append(f"expression[{expressions.shape[1]}]")
    return np.concatenate(blocks, axis=1), names


def select_frames(
    cameras_path: str | Path,
    split_path: str | Path,
    expressions_path: str | Path | None,
    k: int,
) -> dict:
    """Choose k train frames; returns the selection record (also what ``selection.json`` holds)."""
    from hfagp.io.tables import read_cameras, read_expressions, read_split

    table, _ = read_cameras(cameras_path)
    split = read_split(split_path)
    train, test = set(split["train"]), set(split["test"])
    candidates = table[table.frame.isin(train) & ~table.frame.isin(test)]
    coefficients = None
    model = None
    if expressions_path is not None:
        expr_table, coeffs, meta = read_expressions(expressions_path)
        model = meta.get("model")
        row_of = {int(f): i for i, f in enumerate(expr_table.frame)}
        missing = [int(f) for f in candidates.frame if int(f) not in row_of]
        if missing:
            log.warning("%d train frames have no expression coefficients in %s; they are not candidates", len(missing), expressions_path)
        candidates = candidates[candidates.frame.map(lambda f: int(f) in row_of)]
        coefficients = coeffs[[row_of[int(f)] for f in candidates.frame]] if len(candidates) else None
    n = len(candidates)
    if k < 1:
        raise HfagpError(f"inversion frames must be at least 1, got {k}; fix inversion.frames in config.yaml")
    if k > n:
        raise HfagpError(
            f"cannot select {k} frames: only {n} train frames of {split_path} have a crop and camera in {cameras_path}"
            + (f" and expression coefficients in {expressions_path}" if expressions_path is not None else "")
            + "; lower inversion.frames in config.yaml (or use a longer video / smaller test split)"
        )
    frames = candidates.frame.to_numpy().astype(int)
    yaw = candidates.yaw.to_numpy(dtype=np.float64)
    pitch = candidates.pitch.to_numpy(dtype=np.float64)
    features, names = selection_features(frames, yaw, pitch, coefficients)
    order = farthest_point_order(features, k)
    chosen = frames[order]
    record = {
        "frames": sorted(int(f) for f in chosen),
        "selection_order": [int(f) for f in chosen],
        "k": int(k),
        "method": METHOD,
        "features": names,
        "candidates": int(n),
        "expression_model": model,
        "split_source": split.get("source"),
        "coverage": {
            "yaw_range_candidates": [float(yaw.min()), float(yaw.max())],
            "yaw_range_selected": [float(yaw[order].min()), float(yaw[order].max())],
            "pitch_range_candidates": [float(pitch.min()), float(pitch.max())],
            "pitch_range_selected": [float(pitch[order].min()), float(pitch[order].max())],
        },
    }
    log.info(
        "selected %d of %d train frames by %s over %s: yaw %.1f..%.1f deg (all %.1f..%.1f), pitch %.1f..%.1f deg",
        k,
        n,
        METHOD,
        "+".join(names),
        yaw[order].min(),
        yaw[order].max(),
        yaw.min(),
        yaw.max(),
        pitch[order].min(),
        pitch[order].max(),
    )
    return record


def read_selection(path: str | Path) -> dict:
    """Read ``selection.json`` written by ``hfagp select-frames``."""
    record = read_json(path, "frame selection", "run `hfagp select-frames` (again)")
    try:
        record["frames"] = [int(f) for f in record["frames"]]
    except (ValueError, KeyError, TypeError) as err:
        raise HfagpError(f"{path} is not a valid frame selection ({err}); delete it and rerun `hfagp select-frames`") from err
    if not record["frames"]:
        raise HfagpError(f"{path} selects no frames; rerun `hfagp select-frames` with --frames >= 1")
    return record
