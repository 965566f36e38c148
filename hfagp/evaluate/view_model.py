"""What the live viewer renders: a trained avatar with its subject's frames, rendered on demand.

:class:`ViewerModel` loads ``checkpoint.pt`` through the safe artifact reader (a crafted file is refused
before anything else happens) and the subject's frames (all of them, train and test, in frame order) with
their driving signals, tracked cameras and ground-truth crops. It renders deterministically (no ray jitter,
constant noise) from subspace weights and an EG3D label at a chosen neural rendering resolution, under one
lock, so that several browser tabs share one model without interleaving its calls.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hfagp.errors import HfagpError


@dataclass
class SubjectFiles:
    """The subject artifacts the viewer reads (defaults: the pipeline's names under ``results/<subject>/``)."""

    crops: Path
    cameras: Path
    split: Path
    expressions: Path | None = None
    audio_features: Path | None = None
    audio: Path | None = None
    frames_table: Path | None = None

    @classmethod
    def beside(cls, checkpoint: str | Path) -> "SubjectFiles":
        """The subject of ``results/<subject>/driver/<kind>/checkpoint.pt``."""
        root = Path(checkpoint).resolve().parents[2]
        optional = lambda name: root / name if (root / name).exists() else None  # noqa: E731
        return cls(root / "crops", root / "cameras.parquet", root / "split.json", optional("expressions.parquet"),
                   optional("audio_features.npy"), optional("audio.wav"), optional("frames.parquet"))


def nrr_choices(full: int) -> list[int]:
    """Neural rendering resolutions offered: the avatar's own and its halvings down to 16 (fastest first)."""
    choices, value = [], int(full)
    while value >= 16:
        choices.append(value)
        value //= 2
    return sorted(choices) or [int(full)]


class ViewerModel:
    """A trained avatar and its subject's frames (see the module docstring)."""

    def __init__(self, checkpoint: str | Path, files: SubjectFiles, device: str = "cpu") -> None:
        import torch

        from hfagp.avatar.checkpoint import load_trained_avatar
        from hfagp.avatar.data import DriverDataset, load_subject
        from hfagp.evaluate.render import check_signal, frame_rate, to_uint8

        self.avatar, self.info = load_trained_avatar(checkpoint, device)
        self.device = device
        self.kind = self.info["kind"]
        signal_info = self.info.get("signal", {})
        self.smooth = bool(signal_info.get("smoothing", False))
        self.generator = self.avatar.generator
        self.generator.deterministic_rendering = True
        self.resolution = int(self.generator.img_resolution)
        self.full_nrr = int(self.generator.neural_rendering_resolution)
        data = load_subject(self.kind, files.crops, files.cameras, files.split, files.expressions, files.audio_features)
        check_signal(self.info, data, files.expressions)
        frames = sorted(set(data.train) | set(data.test))
        dataset = DriverDataset(data, frames, self.resolution, rgb_resolution=int(signal_info.get("rgb_resolution", 256)),
                                seq_len=int(signal_info.get("seq_len", 8)))
        if len(dataset) == 0:
            raise HfagpError(f"{files.split} lists no usable frame of this subject; rerun the split stage")
        items = dataset.batch(list(range(len(dataset))))
        self.frames: list[int] = list(items["frame"])
        self.test_frames = set(int(f) for f in data.test)
        self.signals = items["signal"]
        self.labels = items["label"].numpy().astype(np.float64)
        self.truth = to_uint8(items["target"])
        self.expressions = None if self.kind != "expression" else self.signals.numpy().astype(np.float64)
        self.lock = threading.Lock()
        with torch.no_grad():
            self.frame_weights = torch.cat([self.avatar.weights(self.signals[i : i + 32].to(device), self.smooth).cpu()
                                            for i in range(0, len(self.frames), 32)]).numpy().astype(np.float64)
        self.weight_std = self.frame_weights.std(axis=0) + 1e-6
        self.fps = frame_rate(str(files.frames_table) if files.frames_table else None)

    @property
    def dim(self) -> int:
        return int(self.frame_weights.shape[1])

    def weights_of_expression(self, coefficients: np.ndarray) -> np.ndarray:
        """The expression driver's subspace weights for one coefficient vector."""
        import torch

        with self.lock, torch.no_grad():
            signal = torch.as_tensor(np.asarray(coefficients, np.float32)[None], device=self.device)
            return self.avatar.weights(signal).cpu().numpy()[0].astype(np.float64)

    def render(self, weights: np.ndarray, label: np.ndarray, nrr: int | None = None) -> np.ndarray:
        """(R, R, 3) uint8: the generator's volume rendering + super-resolution of ``weights`` at ``label``."""
        import torch

        from hfagp.evaluate.render import to_uint8

        nrr = int(nrr or self.full_nrr)
        with self.lock, torch.no_grad():
            w = torch.as_tensor(np.asarray(weights, np.float32)[None], device=self.device)
            c = torch.as_tensor(np.asarray(label, np.float32)[None], device=self.device)
            ws = self.avatar.subspace(w)
            image = self.generator.synthesis(ws, c, neural_rendering_resolution=nrr, noise_mode="const", deterministic=True)["image"]
            self.generator.neural_rendering_resolution = self.full_nrr  # synthesis keeps what it was given
            return to_uint8(image)[0]

    def playback_weights(self, features: np.ndarray) -> np.ndarray:
        """Audio avatars: the subspace weights of every row of a DeepSpeech feature array (N, 16, 29), one
        row per video frame as the audio stage writes them, each with the driver's neighbouring windows."""
        import torch

        from hfagp.avatar.data import audio_window_indices

        if self.kind != "audio":
            raise HfagpError("only an audio avatar is driven by audio")
        features = np.asarray(features, np.float32)
        if features.ndim != 3 or features.shape[1:] != (16, 29):
            raise HfagpError(f"audio features must have shape (N, 16, 29), got {features.shape}; make them with `hfagp audio-features`")
        seq_len = int(self.signals.shape[1])
        rows = np.stack([audio_window_indices(k, len(features), seq_len) for k in range(len(features))])
        out = []
        with self.lock, torch.no_grad():
            for start in range(0, len(rows), 64):
                signal = torch.from_numpy(features[rows[start : start + 64]]).to(self.device)
                out.append(self.avatar.weights(signal, self.smooth).cpu().numpy())
        return np.concatenate(out).astype(np.float64)

