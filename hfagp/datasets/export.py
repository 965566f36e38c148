"""Export a subject's artifacts in HFA-GP's dataset layout (the inverse of ``import --format hfagp``).

Reads ``results/<subject>/``: ``crops/``, ``cameras.parquet``, ``split.json``
and, when present, ``expressions.parquet``, ``audio_features.npy`` and
``frames.parquet`` (for the ``source_name`` of imported frames). Writes::

    OUT/train/cropped_images/<name>.png + test.json   split train
    OUT/test/cropped_images/<name>.png  + test.json   split test
    OUT/test2/cropped_images/...                      split key test2 (only when split.json has one)
    OUT/transforms_train.json   train frames
    OUT/transforms_val.json     test frames (HFA-GP's val loader reads test/cropped_images)
    OUT/transforms_test.json    test2 frames when there are some, else the test frames again
    OUT/aud.npy                 audio_features.npy as is (audio mode)

``test.json`` holds our labels unchanged (OpenCV cam2world + normalised
intrinsics, as HFA-GP's test.json). Frames carry ``transform_matrix`` (the
label's cam2world in NeRF/OpenGL axes; HFA-GP loads but does not use it) and:

* audio mode (``audio_features.npy`` exists): ``img_id`` = ``aud_id`` = frame
  number, crops named ``<frame>.png`` (HFA-GP looks labels up as
  ``<img_id>.png``); ``aud.npy`` rows are indexed by frame number;
* otherwise ``file_path`` = ``./<folder>/<stem>`` with the crop
  ``<stem>.png``; the stem is the imported frame's original name when
  ``frames.parquet`` has ``source_name`` (so importing an HFA-GP folder and
  exporting it gives back its names), else the frame number ``%06d``.

``expression`` is added to every frame when ``expressions.parquet`` exists.
Top-level camera keys for both loaders: ``camera_angle_x``, ``intrinsics``
``[fx, fy, cx/W, cy/H]`` (NeRFace) and ``focal_len``, ``cx``, ``cy`` (AD-NeRF),
from the first label at 512 px. The frame rate is not part of the layout:
pass ``--fps`` again when importing the export.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np

from hfagp.datasets import common as C
from hfagp.errors import HfagpError
from hfagp.face3d import geometry as geo
from hfagp.io import atomic
from hfagp.io.artifacts import load_npy
from hfagp.io.tables import read_frames_table

FOLDERS = (("train", "train", "transforms_train.json"), ("test", "test", "transforms_val.json"),
           ("test2", "test2", "transforms_test.json"))


def _names(frames: list[int], subject: Path, audio: bool) -> dict[int, str]:
    """Crop file name per frame (see the module docstring)."""
    if audio:
        return {f: f"{f}.png" for f in frames}
    names = {f: f"{f:06d}.png" for f in frames}
    table_path = subject / "frames.parquet"
    if table_path.is_file():
        table = read_frames_table(table_path)
        if "source_name" in table.columns:
            source = dict(zip(table["index"].astype(int), table["source_name"]))
            candidate = {f: Path(str(source.get(f, ""))).name for f in frames}
            if all(n.endswith(".png") for n in candidate.values()) and len(set(candidate.values())) == len(frames):
                names = candidate
    return names


def _camera_keys(label: np.ndarray) -> dict:
    size = geo.OUTPUT_SIZE
    fx, cx, fy, cy = label[16] * size, label[18], label[20] * size, label[21]
    return {
        "camera_angle_x": 2.0 * math.atan(0.5 / label[16]),
        "intrinsics": [fx, fy, cx, cy],
        "focal_len": fx,
        "cx": cx * size,
        "cy": cy * size,
    }


def export_hfagp(subject: str | Path, out: str | Path) -> dict:
    """Write the HFA-GP layout of ``subject`` into ``out``; returns a summary."""
    from hfagp.io.tables import read_cameras, read_expressions, read_split

    subject, out = Path(subject), Path(out)
    if not subject.is_dir():
        raise HfagpError(f"subject folder {subject} not found; pass results/<subject>")
    split = read_split(subject / "split.json")
    cameras, labels = read_cameras(subject / "cameras.parquet")
    label_of = {int(f): labels[i] for i, f in enumerate(cameras.frame)}
    crops = subject / "crops"

    groups = [(folder, split.get(key, []), transforms) for folder, key, transforms in FOLDERS]
    if not split.get("test2"):
        groups = groups[:2]
    exported = [f for _, frames, _ in groups for f in frames]
    skipped = {k: len(v) for k, v in split.items() if k not in ("train", "test", "test2") and isinstance(v, list)}
    if skipped:
        C.log.info("split.json keys %s are not part of the HFA-GP layout; those frames are not exported", skipped)
    if not split["train"]:
        raise HfagpError(f"{subject / 'split.json'} has no training frames; nothing to export (rerun the split stage)")
    lacking = [f for f in exported if f not in label_of]
    if lacking:
        raise HfagpError(f"{subject / 'cameras.parquet'} has no camera for frames {lacking[:10]} of "
                         f"{subject / 'split.json'}; rerun the align stage (or the split stage)")
    missing = [crops / f"{f:06d}.png" for f in exported if not (crops / f"{f:06d}.png").is_file()]
    if missing:
        raise HfagpError(f"crop {missing[0]} is missing ({len(missing)} in all); rerun the align stage")

    expressions = None
    if (subject / "expressions.parquet").is_file():
        table, coefficients, _ = read_expressions(subject / "expressions.parquet")
        expressions = {int(f): coefficients[i] for i, f in enumerate(table.frame)}
        lacking = [f for f in exported if f not in expressions]
        if lacking:
            raise HfagpError(f"{subject / 'expressions.parquet'} has no expression for frames {lacking[:10]}; "
                             f"rerun the expressions stage")
    audio = None
    if (subject / "audio_features.npy").is_file():
        audio = load_npy(subject / "audio_features.npy", "audio features", "rerun the audio stage (hfagp audio-features)")
        if audio.ndim != 3 or audio.shape[0] < max(exported) + 1:
            raise HfagpError(f"{subject / 'audio_features.npy'} has shape {audio.shape}, too few windows for frame "
                             f"{max(exported)}; rerun the audio stage")
    names = _names(sorted(exported), subject, audio is not None)
    top = _camera_keys(label_of[split["train"][0]])

    def frame_entry(folder: str, frame: int) -> dict:
        cam2world = C.opengl_to_opencv(label_of[frame][:16].reshape(4, 4))
        entry: dict = {}
        if audio is not None:
            entry.update(img_id=frame, aud_id=frame)
        else:
            entry["file_path"] = f"./{folder}/{Path(names[frame]).stem}"
        entry["transform_matrix"] = cam2world.tolist()
        if expressions is not None:
            entry["expression"] = [float(v) for v in expressions[frame]]
        return entry

    out.mkdir(parents=True, exist_ok=True)
    transforms = {}
    for folder, frames, filename in groups:
        frames = sorted(frames)
        with atomic.atomic_directory(out / folder / "cropped_images") as tmp:
            for frame in frames:
                shutil.copyfile(crops / f"{frame:06d}.png", tmp / names[frame])
            (tmp / "test.json").write_text(
                json.dumps({"labels": [[names[f], [float(v) for v in label_of[f]]] for f in frames]}) + "\n"
            )
        transforms[filename] = {**top, "frames": [frame_entry(folder, f) for f in frames]}
    if "transforms_test.json" not in transforms:
        test = transforms["transforms_val.json"]
        transforms["transforms_test.json"] = {**test, "frames": [dict(e) for e in test["frames"]]}
    if audio is not None:
        atomic.save_npy(out / "aud.npy", audio)
    for filename, content in transforms.items():
        atomic.write_json(out / filename, content)
    stale = [p for p in (out / "test2", out / "aud.npy") if p.exists()
             and ((p.name == "test2" and len(groups) == 2) or (p.name == "aud.npy" and audio is None))]
    if stale:
        C.log.warning("%s also holds %s from an earlier export; delete them (they do not match this export)",
                      out, ", ".join(str(p) for p in stale))
    summary = {folder: len(frames) for folder, frames, _ in groups}
    C.log.info(
        "exported %s to %s in HFA-GP layout (%s mode%s): %s",
        subject,
        out,
        "audio" if audio is not None else "3DMM" if expressions is not None else "labels",
        ", with expressions" if expressions is not None and audio is not None else "",
        ", ".join(f"{k} {v} frames" for k, v in summary.items()),
    )
    return summary
