"""Training data of the driver stage: crops, camera labels and the driving signal of one subject.

:func:`load_subject` reads the per-subject artifacts and checks them against
each other; :class:`DriverDataset` holds the usable frames of one split with
everything a training step needs, already at the training resolution:

* ``target``: the 512 crop area-downsampled to the training resolution,
  (3,R,R) float32 in [-1,1];
* ``label``: the frame's EG3D camera label (25,) float32;
* ``signal``: the driver's input, by kind

  - ``rgb``: the crop at the encoder's resolution, (3,Rr,Rr) in [-1,1];
  - ``expression``: the expression coefficients (E,) float32;
  - ``audio``: the DeepSpeech windows of ``seq_len`` neighbouring frames
    centred on the frame (index ``seq_len // 2``; clamped at the ends of the
    video), (seq_len,16,29) float32;
* ``frame``: the frame number;
* ``face`` (only with ``face_weights=True``): the soft face weights of the
  crop's 68 landmarks (``landmarks_crop`` of ``cameras.parquet``) at the
  training resolution, (1,R,R) float32 in [0,1]
  (:func:`hfagp.losses.regions.face_weights`), for the face SSIM term.

Usable frames are those with a camera (they have a crop), in the split and,
for the expression and audio drivers, with a signal row. A split frame that
has no camera is dropped with a warning (tracking lost it); a frame without a
signal row is an error, because the signal and the frames disagree.
Images are decoded once and kept as uint8 (about 200 KB per frame at 256 px).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hfagp.errors import HfagpError
from hfagp.io.artifacts import load_npy
from hfagp.logs import get_logger

log = get_logger("training")

DRIVER_KINDS = ("rgb", "expression", "audio")
AUDIO_WINDOW_SHAPE = (16, 29)


@dataclass
class SubjectData:
    """The artifacts of one subject, checked (frames are frame numbers)."""

    kind: str
    crops_dir: Path
    train: list[int]
    test: list[int]
    names: dict[int, str]
    labels: dict[int, np.ndarray]
    expressions: dict[int, np.ndarray] | None = None
    expression_model: str | None = None
    expression_size: int | None = None
    audio: np.ndarray | None = None
    split_source: str | None = None
    dropped: dict[str, list[int]] = field(default_factory=dict)
    landmarks_crop: dict[int, np.ndarray] = field(default_factory=dict)  # (68, 2) in crop pixels; NaN if unknown
    cameras_path: Path | None = None


def load_subject(
    kind: str,
    crops_dir: str | Path,
    cameras: str | Path,
    split: str | Path,
    expressions: str | Path | None = None,
    audio_features: str | Path | None = None,
) -> SubjectData:
    """Read and cross-check the inputs of driver ``kind`` (clear errors for anything missing)."""
    from hfagp.io.tables import read_cameras, read_expressions, read_split

    if kind not in DRIVER_KINDS:
        raise HfagpError(f"unknown driver {kind!r}; choose one of {', '.join(DRIVER_KINDS)}")
    crops_dir = Path(crops_dir)
    if not crops_dir.is_dir():
        raise HfagpError(f"crops directory {crops_dir} not found; run the align stage (hfagp align) first")
    table, labels = read_cameras(cameras)
    names = {int(f): str(n) for f, n in zip(table.frame, table.name)}
    label_of = {int(f): labels[i].astype(np.float32) for i, f in enumerate(table.frame)}
    parts = read_split(split)
    overlap = set(parts["train"]) & set(parts["test"])
    if overlap:
        raise HfagpError(f"{split}: frames {sorted(overlap)[:10]} are in both train and test; rerun the split stage")
    data = SubjectData(kind, crops_dir, [], [], names, label_of, split_source=parts.get("source"), cameras_path=Path(cameras))
    if "landmarks_crop" in table.columns:
        data.landmarks_crop = {int(f): np.asarray(points, dtype=np.float64).reshape(-1, 2)
                               for f, points in zip(table.frame, table.landmarks_crop)}

    usable = set(names)
    if kind == "expression":
        if expressions is None:
            raise HfagpError("the expression driver needs --expressions (expressions.parquet of stage expressions)")
        etable, coefficients, meta = read_expressions(expressions)
        if coefficients.ndim != 2 or coefficients.shape[0] == 0:
            raise HfagpError(f"{expressions} holds no expression vectors; rerun the expressions stage")
        size = int(meta.get("size", coefficients.shape[1]))
        if size != coefficients.shape[1]:
            raise HfagpError(
                f"{expressions}: metadata says expression size {size} but the vectors have {coefficients.shape[1]}; "
                "rerun the expressions stage"
            )
        if not np.isfinite(coefficients).all():
            raise HfagpError(f"{expressions} holds non-finite coefficients; rerun the expressions stage")
        data.expressions = {int(f): coefficients[i].astype(np.float32) for i, f in enumerate(etable.frame)}
        data.expression_model = str(meta.get("model"))
        data.expression_size = size
    elif kind == "audio":
        if audio_features is None:
            raise HfagpError("the audio driver needs --audio-features (audio_features.npy of stage audio)")
        path = Path(audio_features)
        audio = load_npy(path, "audio features", "run the audio stage (hfagp audio-features) first, or again")
        if audio.ndim != 3 or audio.shape[1:] != AUDIO_WINDOW_SHAPE:
            raise HfagpError(
                f"{path} has shape {audio.shape}, expected (frames, 16, 29) DeepSpeech windows; rerun the audio stage"
            )
        if not np.isfinite(audio).all():
            raise HfagpError(f"{path} holds non-finite values; rerun the audio stage")
        data.audio = audio.astype(np.float32)

    for part in ("train", "test"):
        frames = [int(f) for f in parts[part]]
        no_camera = [f for f in frames if f not in usable]
        if no_camera:
            log.warning("%s: %d %s frames have no camera/crop (untracked) and are skipped: %s", split, len(no_camera), part, no_camera[:10])
            data.dropped[part] = no_camera
        frames = [f for f in frames if f in usable]
        if kind == "expression":
            missing = [f for f in frames if f not in data.expressions]
            if missing:
                raise HfagpError(
                    f"{expressions} has no expression vector for {part} frames {missing[:10]} "
                    f"({len(missing)} in all) that have crops; the expressions and the crops disagree, rerun the expressions stage"
                )
        elif kind == "audio":
            missing = [f for f in frames if f < 0 or f >= len(data.audio)]
            if missing:
                raise HfagpError(
                    f"{audio_features} has {len(data.audio)} rows (one per video frame) but the {part} frames "
                    f"include {missing[:10]}; the audio features are shorter than the video: rerun the audio stage"
                )
        setattr(data, part, frames)
    if not data.train:
        raise HfagpError(f"{split} leaves no usable training frame (with a crop in {cameras}); check the split stage")
    if not data.test:
        log.warning("%s has no usable test frame: test PSNR will not be reported", split)
    return data


def audio_window_indices(frame: int, num_rows: int, seq_len: int) -> np.ndarray:
    """Rows of the ``seq_len`` frames around ``frame`` (centre at index ``seq_len // 2``), clamped to the video."""
    offsets = np.arange(seq_len) - seq_len // 2
    return np.clip(frame + offsets, 0, num_rows - 1)


def _resize_uint8(images: np.ndarray, size: int) -> np.ndarray:
    """(N,H,W,3) uint8 -> (N,3,size,size) uint8, area-downsampled (bilinear up)."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="area" if x.shape[-1] > size else "bilinear", align_corners=None)
    return x.round().clamp(0, 255).to(torch.uint8).numpy()


class DriverDataset:
    """The frames of one split with targets, labels and driver inputs (see the module docstring)."""

    def __init__(
        self,
        data: SubjectData,
        frames: list[int],
        resolution: int,
        rgb_resolution: int = 256,
        seq_len: int = 8,
        chunk: int = 64,
        face_weights: bool = False,
    ) -> None:
        import torch

        from hfagp.io.images import read_rgb
        from hfagp.losses.regions import face_weights as soft_face

        self.kind = data.kind
        self.frames = list(frames)
        self.resolution = int(resolution)
        self.rgb_resolution = int(rgb_resolution)
        self.seq_len = int(seq_len)
        if face_weights:
            _check_landmarks(data, self.frames)
        targets, inputs, faces = [], [], []
        for start in range(0, len(frames), chunk):
            batch = []
            for f in frames[start : start + chunk]:
                path = data.crops_dir / data.names[f]
                if not path.exists():
                    raise HfagpError(f"crop {path} of frame {f} is missing; rerun the align stage (hfagp align)")
                batch.append(read_rgb(path))
            images = np.stack(batch) if batch else np.zeros((0, 8, 8, 3), np.uint8)
            targets.append(_resize_uint8(images, self.resolution))
            if face_weights:
                faces += [soft_face(data.landmarks_crop[f], self.resolution, image.shape[1])
                          for f, image in zip(frames[start : start + chunk], batch)]
            if self.kind == "rgb":
                inputs.append(_resize_uint8(images, self.rgb_resolution))
        empty = np.zeros((0, 3, self.resolution, self.resolution), np.uint8)
        self.targets = torch.from_numpy(np.concatenate(targets) if targets else empty)
        self.face = torch.from_numpy(np.stack(faces)[:, None]) if faces else None
        self.labels = torch.from_numpy(np.stack([data.labels[f] for f in frames]).astype(np.float32)) if frames else torch.zeros(0, 25)
        if self.kind == "rgb":
            self.signals = torch.from_numpy(np.concatenate(inputs)) if inputs else torch.zeros(0, 3, self.rgb_resolution, self.rgb_resolution, dtype=torch.uint8)
        elif self.kind == "expression":
            self.signals = torch.from_numpy(np.stack([data.expressions[f] for f in frames])) if frames else torch.zeros(0, data.expression_size)
        else:
            rows = np.stack([audio_window_indices(f, len(data.audio), self.seq_len) for f in frames]) if frames else np.zeros((0, self.seq_len), int)
            self.signals = torch.from_numpy(data.audio[rows]) if frames else torch.zeros(0, self.seq_len, *AUDIO_WINDOW_SHAPE)

    def __len__(self) -> int:
        return len(self.frames)

    def batch(self, indices, device="cpu") -> dict:
        """The items at ``indices`` stacked: target (B,3,R,R), label (B,25), signal, frame (list)."""
        import torch

        idx = torch.as_tensor(indices, dtype=torch.long)
        signal = self.signals[idx]
        if self.kind == "rgb":
            signal = signal.float() / 127.5 - 1.0
        item = {
            "target": (self.targets[idx].float() / 127.5 - 1.0).to(device),
            "label": self.labels[idx].to(device),
            "signal": signal.to(device),
            "frame": [self.frames[int(i)] for i in idx],
        }
        if self.face is not None:
            item["face"] = self.face[idx].to(device)
        return item

    def __getitem__(self, index: int) -> dict:
        item = self.batch([index])
        return {k: (v[0] if k != "frame" else v[0]) for k, v in item.items()}

    def mean_target(self):
        """The mean training crop at the training resolution, (3,R,R) in [-1,1] (the trivial baseline)."""
        return self.targets.double().mean(dim=0).float() / 127.5 - 1.0


def _check_landmarks(data: SubjectData, frames: list[int]) -> None:
    """Every frame needs its 68 finite crop landmarks for the face weights (clear error naming the file and the fix)."""
    missing = [f for f in frames
               if f not in data.landmarks_crop or data.landmarks_crop[f].shape != (68, 2)
               or not np.isfinite(data.landmarks_crop[f]).all()]
    if missing:
        raise HfagpError(
            f"training.face_ssim_weight needs the 68 landmarks of every training crop, but {data.cameras_path} has none "
            f"for {len(missing)} of {len(frames)} frames (first: {missing[:5]}; "
            "a dataset imported in the HFA-GP layout has no landmarks); "
            "set training.face_ssim_weight: 0 in config.yaml, or preprocess the video with hfagp's own stages"
        )


def batch_indices(seed: int, step: int, n: int, size: int) -> list[int]:
    """Dataset indices of step ``step``'s global batch: position ``step*size+i`` of the epoch-wise permutation.

    A pure function of ``(seed, step)``, so a resumed run draws the same frames.
    """
    out, perms = [], {}
    for p in range(step * size, (step + 1) * size):
        epoch, pos = divmod(p, n)
        if epoch not in perms:
            perms[epoch] = np.random.default_rng([int(seed), int(epoch)]).permutation(n)
        out.append(int(perms[epoch][pos]))
    return out
