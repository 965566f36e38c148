"""Writing an import plan into ``results/<subject>/``: images, tables, cameras, split, audio, manifest.

:func:`write_import` turns the :class:`~hfagp.datasets.common.ImportPlan` that a
format's planner built (and :func:`~hfagp.datasets.common.check_plan` accepted)
into the same artifacts the video pipeline writes, so every later stage reads
an imported subject like any other.
"""

from __future__ import annotations

import contextlib
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from hfagp import __version__
from hfagp.datasets.common import (
    AUDIO_DIM,
    AUDIO_WINDOW,
    DERIVED_ARTIFACTS,
    METADATA_KEY,
    SOURCE_CAMERAS_NOTE,
    FrameRecord,
    ImportPlan,
    check_plan,
)
from hfagp.errors import HfagpError
from hfagp.io import atomic
from hfagp.logs import get_logger

log = get_logger("datasets")


def _write_images(
    records: list[FrameRecord],
    targets: list[Path],
    convert: Callable[[FrameRecord], np.ndarray],
    threads: int,
    desc: str,
) -> list[tuple[int, int]]:
    """Read each record's image, convert, write it into every target dir; return (width, height)s."""
    from tqdm import tqdm

    from hfagp.io.images import FRAME_NAME, write_rgb

    def one(record: FrameRecord) -> tuple[int, int]:
        rgb = convert(record)
        for target in targets:
            write_rgb(target / FRAME_NAME.format(record.frame), rgb)
        return rgb.shape[1], rgb.shape[0]

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        return list(tqdm(pool.map(one, records), total=len(records), desc=desc, unit="frame", leave=False))


def read_source_image(record: FrameRecord) -> np.ndarray:
    """RGB uint8 of a record's source image (alpha dropped)."""
    from hfagp.io.images import read_rgb

    if not record.image.is_file():
        raise HfagpError(f"image {record.image} ({record.source_split}) is missing; restore it and rerun the import")
    return read_rgb(record.image)


def parquet_with_metadata(path: Path, table: pd.DataFrame, metadata: dict[str, Any]) -> None:
    """Write a parquet table atomically with a JSON object under the ``hfagp`` schema metadata key."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow = pa.Table.from_pandas(table.reset_index(drop=True), preserve_index=False)
    meta = dict(arrow.schema.metadata or {})
    meta[METADATA_KEY] = json.dumps(metadata).encode()
    arrow = arrow.replace_schema_metadata(meta)
    with atomic.atomic_path(path) as tmp:
        pq.write_table(arrow, tmp)


def read_parquet_metadata(path: Path) -> dict[str, Any]:
    """The ``hfagp`` JSON metadata of a parquet file (empty when absent)."""
    import pyarrow.parquet as pq

    raw = (pq.read_schema(path).metadata or {}).get(METADATA_KEY)
    return json.loads(raw) if raw else {}


def write_import(
    plan: ImportPlan, out: Path, threads: int = 1, convert: Callable[[FrameRecord], np.ndarray] | None = None
) -> dict:
    """Write every artifact of ``plan`` into the subject directory ``out``; returns the manifest."""
    from hfagp.face3d import geometry as geo
    from hfagp.io.images import FRAME_NAME
    from hfagp.io.tables import write_expressions, write_split

    check_plan(plan)
    out.mkdir(parents=True, exist_ok=True)
    records = sorted(plan.records, key=lambda r: r.frame)
    convert = convert or read_source_image
    written: list[str] = []

    # Everything small is computed before the first byte is written.
    audio_rows = None
    if plan.audio is not None:
        n_rows = max(r.frame for r in records) + 1
        audio_rows = np.zeros((n_rows, AUDIO_WINDOW, AUDIO_DIM), dtype=np.float64)
        aud_ids = [-1] * n_rows
        for record in records:
            audio_rows[record.frame] = plan.audio[record.aud_id]
            aud_ids[record.frame] = record.aud_id
        gaps = n_rows - len(records)
        if gaps:
            log.warning("%d frame numbers below %d have no image in the dataset; their audio rows are zeros",
                        gaps, n_rows)

    # 1. image directories (built aside, renamed as a whole)
    with contextlib.ExitStack() as stack:
        frames_tmp = stack.enter_context(atomic.atomic_directory(out / "frames"))
        targets = [frames_tmp]
        if plan.write_crops:
            targets.append(stack.enter_context(atomic.atomic_directory(out / "crops")))
        sizes = _write_images(records, targets, convert, threads, f"import {plan.format}")
        # Every image converted: the earlier manifest goes before anything is replaced, so that
        # until the new one is written last the folder is visibly not a finished import.
        (out / "import.json").unlink(missing_ok=True)
    written += ["frames/"] + (["crops/"] if plan.write_crops else [])

    # 2. tables
    frames_table = pd.DataFrame(
        {
            "index": [r.frame for r in records],
            "source_index": [r.frame for r in records],
            "timestamp": [r.frame / plan.fps for r in records],
            "fps": plan.fps,
            "source_fps": plan.fps,
            "width": [w for w, _ in sizes],
            "height": [h for _, h in sizes],
            "rotation": 0,
            "source_name": [r.source_name for r in records],
            "source_split": [r.source_split for r in records],
        }
    )
    atomic.write_parquet(out / "frames.parquet", frames_table)
    written.append("frames.parquet")

    if plan.write_crops:
        rows = []
        for record in records:
            cam2world = record.label[:16].reshape(4, 4)
            pitch, yaw, roll = geo.euler_from_rotation(cam2world[:3, :3].T)
            radius = float(np.linalg.norm(cam2world[:3, 3]))
            rows.append(
                {
                    "frame": record.frame,
                    "name": FRAME_NAME.format(record.frame),
                    "flag": "imported",
                    "label": record.label,
                    "pitch": pitch,
                    "yaw": yaw,
                    "roll": roll,
                    "radius": radius,
                    "radius_unnormalised": radius,
                    "reprojection_error": float("nan"),
                    "crop_affine": np.full(6, np.nan),
                    "landmarks_crop": np.full(136, np.nan),
                }
            )
        atomic.write_parquet(out / "cameras.parquet", pd.DataFrame(rows))
        atomic.write_json(
            out / "dataset.json", {"labels": [[r["name"], [float(v) for v in r["label"]]] for r in rows]}, indent=None
        )
        written += ["cameras.parquet", "dataset.json"]
    else:
        table = pd.DataFrame(
            {
                "frame": [r.frame for r in records],
                "cam2world_opencv": [r.cam2world_opencv.reshape(16) for r in records],
                "intrinsics_normalised": [r.intrinsics for r in records],
            }
        )
        if plan.box_name:
            table[plan.box_name] = [r.box if r.box is not None else np.full(4, np.nan) for r in records]
        parquet_with_metadata(
            out / "source_cameras.parquet",
            table,
            {"world": "dataset tracker", "note": SOURCE_CAMERAS_NOTE, "format": plan.format, "source": plan.files},
        )
        written.append("source_cameras.parquet")

    if records[0].expression is not None:
        expressions = pd.DataFrame(
            {"frame": [r.frame for r in records], "flag": "imported", "expression": [r.expression for r in records]}
        )
        write_expressions(
            out / "expressions.parquet",
            expressions,
            {"model": plan.expression_model, "source": plan.expression_source, "format": plan.format},
        )
        written.append("expressions.parquet")

    if audio_rows is not None:
        atomic.save_npy(out / "audio_features.npy", audio_rows)
        atomic.write_json(
            out / "audio_features.npy.json",
            {
                "feature": "imported-adnerf-aud.npy",
                "model": None,
                "model_sha1": None,
                "fps": plan.fps,
                "n_windows": int(audio_rows.shape[0]),
                "window": AUDIO_WINDOW,
                "dim": AUDIO_DIM,
                "source": str(plan.audio_source),
                "timing": f"imported: row f = aud.npy[aud_id of frame f] ({plan.format} transforms files)",
                "aud_ids": aud_ids,
                "dtype": str(audio_rows.dtype),
                "hfagp_version": __version__,
            },
        )
        written += ["audio_features.npy", "audio_features.npy.json"]

    extra = {k: v for k, v in plan.split.items() if k not in ("train", "test")}
    write_split(out / "split.json", plan.split.get("train", []), plan.split.get("test", []), plan.split_source, **extra)
    written.append("split.json")

    done = {w.rstrip("/") for w in written}
    stale = [name for name in DERIVED_ARTIFACTS if (out / name).exists() and name not in done]
    if stale:
        log.warning(
            "%s already holds %s from an earlier run; they do not match the imported frames unless recomputed: "
            "delete them or rerun their stages",
            out,
            ", ".join(stale),
        )
    manifest = {
        "format": plan.format,
        "dataset": str(plan.dataset.resolve()),
        "files": plan.files,
        "frames": len(records),
        "frame_numbering": plan.numbering,
        "fps": plan.fps,
        "fps_origin": plan.fps_origin,
        "split_source": plan.split_source,
        "artifacts": written,
        "notes": plan.notes,
        "hfagp_version": __version__,
    }
    atomic.write_json(out / "import.json", manifest)
    log.info(
        "imported %d frames (%s) from %s into %s: %s; %s",
        len(records),
        ", ".join(f"{k} {len(v)}" for k, v in plan.split.items()),
        plan.dataset,
        out,
        ", ".join(written),
        plan.fps_origin,
    )
    return manifest
