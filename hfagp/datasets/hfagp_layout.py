"""Import a dataset in HFA-GP's own layout (EG3D crops + labels, NeRFace- or AD-NeRF-style transforms).

Layout read (HFA-GP ``code/dataset.py``; one person's folder)::

    DATASET/train/cropped_images/*.png + test.json   (required)  <-> transforms_train.json -> split train
    DATASET/test/cropped_images/*.png  + test.json   (optional)  <-> transforms_val.json   -> split test
    DATASET/test2/cropped_images/*.png + test.json   (optional)  <-> transforms_test.json  -> split key test2
    DATASET/aud.npy                                  (audio mode)

``test.json`` is EG3D's ``{"labels": [[name, [25 floats]], ...]}`` with
OpenCV cam2world labels, used as they are. HFA-GP's val loader reads
``test/cropped_images`` with ``transforms_val.json``, so that pair is our
test split; a ``transforms_test.json`` without a ``test2`` folder is ignored.

Which frames, and their numbers:

* audio mode (the transforms frames carry ``img_id``/``frame_id`` and
  ``aud_id``, AD-NeRF style): the crops are ``<img_id>.png`` and the frame
  number is the ``img_id``; ``audio_features.npy`` row f = ``aud.npy[aud_id]``.
* 3DMM mode (``file_path``, NeRFace style): the crop is the basename of
  ``file_path`` + ``.png``; frames are numbered 0.. in the order train,
  test, test2, each in file order; ``expression`` goes to
  ``expressions.parquet`` (model ``nerface76``).
* no transforms files at all: every labelled crop of ``test.json``, numbered
  0.. in the order train, test, test2, each in ``test.json`` order.

``frames.parquet`` records ``source_name`` (``train/cropped_images/x.png``)
and ``source_split`` (the folder). The crops are both ``frames/`` and
``crops/`` (512x512); ``cameras.parquet`` has our columns with flag
``imported``, angles and radius from the label (HFA-GP labels are not
radius-normalised: ``radius_unnormalised`` = ``radius``) and NaN for what a
dataset does not know (``reprojection_error``, ``crop_affine``,
``landmarks_crop``); ``dataset.json`` uses our crop names.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hfagp.datasets import adnerf
from hfagp.datasets import common as C
from hfagp.datasets.writer import read_source_image
from hfagp.errors import HfagpError
from hfagp.face3d import geometry as geo

# (folder, transforms file, our split key)
SPLITS = (("train", "transforms_train.json", "train"), ("test", "transforms_val.json", "test"),
          ("test2", "transforms_test.json", "test2"))
LABELS = "test.json"
CROPS = "cropped_images"


def read_labels(path: Path) -> tuple[list[str], dict[str, np.ndarray]]:
    """Names in file order and their 25-float labels from an EG3D/HFA-GP ``test.json``."""
    data = C.load_json(path, "HFA-GP label file")
    labels = C.require(data, "labels", path)
    if not isinstance(labels, list):
        raise HfagpError(f"{path}: 'labels' must be a list of [name, [25 floats]]; fix the file")
    names, table = [], {}
    for position, item in enumerate(labels):
        if not (isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str)):
            raise HfagpError(f"{path} (labels[{position}]): each entry must be [name, [25 floats]]; fix the file")
        name = item[0]
        table[name] = C.as_vector(item[1], path, f"labels[{position}] {name}", "label", size=25)
        names.append(name)
    return names, table


def _style(entry: dict) -> str:
    if any(k in entry for k in adnerf.ID_KEYS):
        return "audio"
    if "file_path" in entry:
        return "3dmm"
    return "unknown"


def plan_hfagp(dataset: Path, fps: float | None = None) -> C.ImportPlan:
    """Read and check an HFA-GP person folder; nothing is written."""
    dataset = Path(dataset)
    if not dataset.is_dir():
        raise HfagpError(f"dataset folder {dataset} not found; pass the person folder holding train/cropped_images")
    rate, origin = C.resolve_fps(fps)
    if not (dataset / "train" / CROPS).is_dir():
        raise HfagpError(f"{dataset / 'train' / CROPS} not found; an HFA-GP person folder holds "
                         f"train/cropped_images/ (is --format right?)")

    # Read every transforms file present and decide the mode.
    transforms: dict[str, tuple[Path, list[dict]]] = {}
    styles = set()
    for folder, filename, _ in SPLITS:
        path = dataset / filename
        if not path.is_file():
            continue
        if not (dataset / folder / CROPS).is_dir():
            C.log.info("%s has no %s/%s folder beside it; ignored", path, folder, CROPS)
            continue
        frames = C.frames_list(C.load_json(path, "HFA-GP transforms file"), path)
        for position, entry in enumerate(frames):
            style = _style(entry)
            if style == "unknown":
                raise HfagpError(f"{path} (frames[{position}]) has neither 'file_path' (3DMM mode) nor 'img_id' "
                                 f"(audio mode); fix the file")
            styles.add((style, path.name))
        transforms[folder] = (path, frames)
    modes = {s for s, _ in styles}
    if len(modes) > 1:
        raise HfagpError(f"{dataset}: transforms files mix 3DMM-style (file_path) and audio-style (img_id) frames "
                         f"({sorted(styles)}); use one style for the whole person folder")
    mode = modes.pop() if modes else "labels"

    records: list[C.FrameRecord] = []
    split: dict[str, list[int]] = {"train": [], "test": []}
    files = []
    for folder, filename, ours in SPLITS:
        crops = dataset / folder / CROPS
        if not crops.is_dir():
            continue
        labels_path = crops / LABELS
        names, labels = read_labels(labels_path)
        files.append(C.relative(labels_path, dataset))
        if folder in transforms:
            path, frames = transforms[folder]
            files.append(filename)
            entries = []
            for position, entry in enumerate(frames):
                where = f"frames[{position}]"
                if mode == "audio":
                    img_id, aud_id = adnerf.parse_entry(entry, path, where)
                    entries.append((f"{img_id}.png", img_id, aud_id, entry.get("expression"), where))
                else:
                    file_path = entry["file_path"]
                    if not isinstance(file_path, str):
                        raise HfagpError(f"{path} ({where}): file_path must be a string; fix the file")
                    entries.append((f"{Path(file_path).name}.png", None, None, entry.get("expression"), where))
            source = path
        elif mode == "audio":
            C.log.warning("%s has no %s (audio mode needs img_id/aud_id): its crops are not imported",
                          crops, filename)
            continue
        else:
            entries = [(name, None, None, None, f"labels[{i}]") for i, name in enumerate(names)]
            source = labels_path
        key = ours
        split.setdefault(key, [])
        for name, img_id, aud_id, expression, where in entries:
            image = crops / name
            if name not in labels:
                raise HfagpError(f"{labels_path} has no label for {name} (listed in {source}, {where}); "
                                 f"add its camera label or remove the frame from {source}")
            C.check_images([(image, str(source))])
            record = C.FrameRecord(
                frame=img_id if mode == "audio" else len(records),
                image=image,
                source_name=C.relative(image, dataset),
                source_split=folder,
                aud_id=aud_id,
                expression=None if expression is None else C.as_vector(expression, source, where, "expression"),
                label=labels[name],
            )
            records.append(record)
            split[key].append(record.frame)

    audio, audio_path = None, dataset / "aud.npy"
    if mode == "audio" and records:
        if audio_path.is_file():
            audio = C.load_audio_array(audio_path, max(r.aud_id for r in records) + 1)
            files.append("aud.npy")
        else:
            C.log.warning("%s absent: no audio features imported", audio_path)
    numbering = {
        "audio": "frame number = img_id; crops <folder>/cropped_images/<img_id>.png",
        "3dmm": "0.. in order train, test, test2 folders, each in transforms file order",
        "labels": "0.. in order train, test, test2 folders, each in test.json order",
    }[mode]
    return C.ImportPlan(
        format="hfagp",
        dataset=dataset,
        records=records,
        split=split,
        split_source="hfagp dataset folders: train = train/, test = test/ (HFA-GP's val split)"
        + (", test2 = test2/" if "test2" in split else ""),
        files=files,
        fps=rate,
        fps_origin=origin,
        expression_model="nerface76",
        expression_source=", ".join(f for f in files if f.startswith("transforms_")),
        audio=audio,
        audio_source=audio_path,
        write_crops=True,
        numbering=numbering,
        notes=[f"mode: {mode}"],
    )


def read_crop(record: C.FrameRecord) -> np.ndarray:
    """A 512x512 crop; other sizes are refused (our crops/ are EG3D's 512)."""
    rgb = read_source_image(record)
    if rgb.shape[:2] != (geo.OUTPUT_SIZE, geo.OUTPUT_SIZE):
        raise HfagpError(f"crop {record.image} is {rgb.shape[1]}x{rgb.shape[0]}; HFA-GP crops are "
                         f"{geo.OUTPUT_SIZE}x{geo.OUTPUT_SIZE}: re-crop the dataset (or import the frames with "
                         f"another --format)")
    return rgb
