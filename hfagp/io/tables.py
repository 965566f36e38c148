"""Readers and writers of the per-subject tables shared by several stages.

``frames.parquet``, ``landmarks.parquet`` and ``cameras.parquet`` are written by
the preprocess phase (their columns are documented in
:mod:`hfagp.preprocess.frames`, :mod:`~hfagp.preprocess.landmarks` and
:mod:`~hfagp.preprocess.align`) and read here by every later stage.

``expressions.parquet`` (the 3DMM driving signal), one row per frame:

* ``frame`` (int, the frame number of ``frames/`` and ``crops/``),
* ``flag`` (``ok`` / ``interpolated`` from tracking, or ``imported``),
* ``expression`` (list of E float64: the coefficient vector),
* optional per-frame diagnostics (``fit_residual`` px, ``pitch``/``yaw``/``roll`` deg, ...).

Its parquet schema metadata ``hfagp`` holds a JSON object with at least
``model`` (what the coefficients mean, e.g. ``3ddfa-bfm68`` for our fit or
``nerface76`` for NeRFace's tracker) and ``size`` (E).

``split.json``: ``{"train": [frame, ...], "test": [frame, ...], "source": "..."}``
where ``source`` says where the split came from (a policy such as
``last 20% of frames`` or a dataset's own files). Frames are frame numbers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hfagp.errors import HfagpError
from hfagp.io import atomic
from hfagp.io.artifacts import read_json, read_parquet

EXPRESSION_METADATA_KEY = b"hfagp"


def write_expressions(path: str | Path, table: pd.DataFrame, metadata: dict[str, Any]) -> None:
    """Write ``expressions.parquet`` atomically; ``metadata`` must name ``model``."""
    if "model" not in metadata:
        raise ValueError("expression metadata must say which model the coefficients belong to ('model')")
    for column in ("frame", "flag", "expression"):
        if column not in table.columns:
            raise ValueError(f"expressions table lacks column {column!r}")
    sizes = {len(v) for v in table.expression}
    if len(sizes) != 1:
        raise ValueError(f"expression vectors of different lengths: {sorted(sizes)}")
    arrow = pa.Table.from_pandas(table.reset_index(drop=True), preserve_index=False)
    meta = dict(arrow.schema.metadata or {})
    meta[EXPRESSION_METADATA_KEY] = json.dumps({**metadata, "size": sizes.pop()}).encode()
    arrow = arrow.replace_schema_metadata(meta)
    with atomic.atomic_path(path) as tmp:
        pq.write_table(arrow, tmp)


def read_expressions(path: str | Path) -> tuple[pd.DataFrame, np.ndarray, dict[str, Any]]:
    """Read ``expressions.parquet``: the table, the coefficients (F, E) and the metadata."""
    path = Path(path)
    if not path.exists():
        raise HfagpError(f"expression table {path} not found; run `hfagp expressions` (or import a dataset) first")
    try:
        arrow = pq.read_table(path)
    except Exception as err:  # pyarrow raises several types for damaged files
        raise HfagpError(f"cannot read {path} ({err}); delete it and rerun the expressions stage") from err
    raw = (arrow.schema.metadata or {}).get(EXPRESSION_METADATA_KEY)
    if raw is None:
        raise HfagpError(f"{path} has no hfagp metadata; it was not written by hfagp (rerun the expressions stage)")
    table = arrow.to_pandas()
    coefficients = np.stack(table.expression.to_numpy()).astype(np.float64) if len(table) else np.zeros((0, 0))
    return table, coefficients, json.loads(raw)


def write_split(path: str | Path, train: list[int], test: list[int], source: str, **extra: Any) -> None:
    """Write ``split.json`` atomically; train and test must not overlap."""
    train, test = sorted(int(f) for f in train), sorted(int(f) for f in test)
    overlap = set(train) & set(test)
    if overlap:
        raise ValueError(f"frames in both train and test: {sorted(overlap)[:10]}")
    atomic.write_json(path, {"train": train, "test": test, "source": source, **extra})


def read_split(path: str | Path) -> dict[str, Any]:
    """Read ``split.json`` (``train``/``test`` frame lists, ``source``)."""
    split = read_json(path, "split file", "run the split stage (hfagp split) or import a dataset first")
    try:
        split["train"] = [int(f) for f in split["train"]]
        split["test"] = [int(f) for f in split["test"]]
    except (ValueError, KeyError, TypeError) as err:
        raise HfagpError(f"{path} is not a valid split file ({err}); delete it and rerun the split stage") from err
    return split


def read_frames_table(path: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Read ``frames.parquet`` (optionally only ``columns``), with clear errors when missing or unreadable."""
    return read_parquet(path, "frame table", "run the frames stage first (hfagp frames)", columns=columns)


def read_landmarks(path: str | Path) -> tuple[pd.DataFrame, np.ndarray]:
    """Read ``landmarks.parquet``: the table and the smoothed landmarks as (F, 68, 2)."""
    table = read_parquet(path, "landmark table", "run the landmarks stage first (hfagp landmarks)")
    points = np.stack(table.landmarks.to_numpy()).reshape(len(table), 68, 2)
    return table, points


def read_cameras(path: str | Path) -> tuple[pd.DataFrame, np.ndarray]:
    """Read ``cameras.parquet``: the table and the labels as (N, 25)."""
    table = read_parquet(path, "camera table", "run the align stage first (hfagp align)")
    return table, np.stack(table.label.to_numpy()).astype(np.float64)
