"""Import an AD-NeRF dataset (``transforms_{train,val}.json``, ``head_imgs/``, ``aud.npy``).

Layout read (AD-NeRF ``process_data.py`` step 7, ``load_audface.py``)::

    DATASET/transforms_train.json  (required)   -> split train
    DATASET/transforms_val.json    (optional)   -> split test
    {"focal_len": f, "cx": W/2, "cy": H/2,
     "frames": [{"img_id": i, "aud_id": a, "transform_matrix": 4x4 c2w, "face_rect": [x, y, w, h]}, ...]}
    DATASET/head_imgs/<img_id>.jpg
    DATASET/aud.npy                 (M, 16, 29) DeepSpeech windows, 25 fps

The test-file variant spelling is accepted too: ``focal_length`` for
``focal_len`` and ``frame_id`` for ``img_id`` (then ``aud_id`` defaults to
the ``frame_id``); a missing ``aud_id`` always defaults to the image id.

Frame numbers are the image ids (``frames/%06d.png`` of ``img_id``);
timestamps are ``img_id / fps`` (default 25 fps, AD-NeRF's rate).
``audio_features.npy`` has one row per frame number up to the largest one:
row f = ``aud.npy[aud_id of frame f]`` (zeros for ids without an image);
its sidecar lists the ``aud_ids``. Without ``aud.npy`` no audio is imported
(a warning says so).

Writes ``frames/``, ``frames.parquet``, ``audio_features.npy`` (+ ``.json``),
``split.json``, ``source_cameras.parquet`` (+ ``face_rect`` column) and
``import.json``. Crops and EG3D cameras come from our landmarks + align stages.
"""

from __future__ import annotations

from pathlib import Path

from hfagp.datasets import common as C
from hfagp.errors import HfagpError

SPLITS = (("train", "transforms_train.json", "train"), ("val", "transforms_val.json", "test"))
FOCAL_KEYS = ("focal_len", "focal_length")
ID_KEYS = ("img_id", "frame_id")


def parse_entry(entry: dict, path: Path, where: str) -> tuple[int, int]:
    """(image id, audio id) of one AD-NeRF-style frame entry."""
    key, value = C.first_key(entry, ID_KEYS, path, where)
    img_id = C.as_int(value, path, where, key)
    aud_id = C.as_int(entry["aud_id"], path, where, "aud_id") if "aud_id" in entry else img_id
    return img_id, aud_id


def plan_adnerf(dataset: Path, fps: float | None = None) -> C.ImportPlan:
    """Read and check an AD-NeRF dataset; nothing is written."""
    dataset = Path(dataset)
    if not dataset.is_dir():
        raise HfagpError(f"dataset folder {dataset} not found; pass the folder holding transforms_train.json")
    rate, origin = C.resolve_fps(fps)
    records: list[C.FrameRecord] = []
    split: dict[str, list[int]] = {"train": [], "test": []}
    files = []
    for name, filename, ours in SPLITS:
        path = dataset / filename
        if not path.is_file():
            if name == "train":
                raise HfagpError(f"{path} not found; an AD-NeRF dataset has transforms_train.json at its root "
                                 f"(is --format right?)")
            C.log.warning("%s absent: the test split is empty", path)
            continue
        meta = C.load_json(path, "AD-NeRF transforms file")
        frames = C.frames_list(meta, path)
        files.append(filename)
        focal_key, focal = C.first_key(meta, FOCAL_KEYS, path, "top level")
        focal = float(C.as_vector([focal], path, "top level", focal_key)[0])
        cx = float(C.as_vector([C.require(meta, "cx", path)], path, "top level", "cx")[0])
        cy = float(C.as_vector([C.require(meta, "cy", path)], path, "top level", "cy")[0])
        size = None
        for position, entry in enumerate(frames):
            where = f"frames[{position}]"
            img_id, aud_id = parse_entry(entry, path, where)
            image = dataset / "head_imgs" / f"{img_id}.jpg"
            C.check_images([(image, str(path))])
            matrix = C.as_matrix(C.require(entry, "transform_matrix", path, where), path, where)
            rect = entry.get("face_rect")
            size = size or C.image_size(image)  # AD-NeRF frames of one video share one size
            record = C.FrameRecord(
                frame=img_id,
                image=image,
                source_name=C.relative(image, dataset),
                source_split=name,
                aud_id=aud_id,
                cam2world_opencv=C.opengl_to_opencv(matrix),
                intrinsics=C.normalised_intrinsics(focal, focal, cx, cy, *size),
                box=None if rect is None else C.as_vector(rect, path, where, "face_rect", size=4),
            )
            records.append(record)
            split[ours].append(img_id)
    audio, audio_path = None, dataset / "aud.npy"
    if records:
        if audio_path.is_file():
            audio = C.load_audio_array(audio_path, max(r.aud_id for r in records) + 1)
            files.append("aud.npy")
        else:
            C.log.warning("%s absent: no audio features imported (compute them with `hfagp audio-features`)",
                          audio_path)
    return C.ImportPlan(
        format="adnerf",
        dataset=dataset,
        records=records,
        split=split,
        split_source="adnerf dataset files: train = transforms_train.json, test = transforms_val.json",
        files=files,
        fps=rate,
        fps_origin=origin,
        audio=audio,
        audio_source=audio_path,
        box_name="face_rect",
        numbering="frame number = img_id (frame_id); images head_imgs/<img_id>.jpg",
    )
