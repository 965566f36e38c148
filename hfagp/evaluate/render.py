"""Stage ``render``: re-drive a trained avatar and re-render it, as frames and H.264 videos.

For one trained driver (``driver/<kind>/checkpoint.pt``) it writes, under
``render/<kind>/``:

* ``reenact/frames/%06d.png`` + ``reenact.mp4``: the test split driven by its
  own signal (crop, expression coefficients or audio features) at the tracked
  cameras; the video shows ground truth | render.
* ``novel_yaw/`` + ``novel_yaw.mp4``: the same signals with the camera swept
  from -30 to +30 degrees of yaw around EG3D's pivot (radius 2.7, pitch 0).
* ``orbit/`` + ``orbit.mp4``: a slow orbit (one turn over the sequence, yaw
  +-30 degrees, pitch +-10 degrees).
* ``avatar.json``: what rendered it (subject, driver, generator prior, loss,
  resolution), read by the evaluation stage.

Cross-driving (``--source-*`` options) writes ``cross_<name>/`` +
``cross_<name>.mp4``: the avatar driven by another subject's test-split
signal (source crop | render), at the avatar's own test cameras in turn.

Renders are deterministic (no ray jitter) at the generator's own resolution.
The audio avatar's videos carry the matching stretch of ``audio.wav``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from hfagp.errors import HfagpError
from hfagp.io import atomic
from hfagp.io.images import FRAME_NAME
from hfagp.logs import get_logger

log = get_logger("render")

NOVEL_YAW = 30.0
ORBIT_PITCH = 10.0
BATCH = 4


def yaw_sweep(count: int, yaw: float = NOVEL_YAW) -> list[tuple[float, float]]:
    """(yaw, pitch) in degrees from -yaw to +yaw at pitch 0, ``count`` steps."""
    return [(float(v), 0.0) for v in np.linspace(-yaw, yaw, count)]


def orbit(count: int, yaw: float = NOVEL_YAW, pitch: float = ORBIT_PITCH) -> list[tuple[float, float]]:
    """(yaw, pitch) of one slow turn: yaw = yaw sin(t), pitch = pitch cos(t), t over [0, 2 pi)."""
    t = 2.0 * np.pi * np.arange(count) / max(count, 1)
    return [(float(yaw * np.sin(a)), float(pitch * np.cos(a))) for a in t]


def novel_labels(angles: list[tuple[float, float]]) -> np.ndarray:
    """EG3D labels (N, 25) of cameras looking at the pivot from (yaw, pitch)."""
    from hfagp.eg3d import camera

    return np.stack([camera.camera_label(camera.look_at_cam2world(y, p)) for y, p in angles]).astype(np.float32)


def to_uint8(images) -> np.ndarray:
    """(B,3,H,W) tensor in [-1,1] -> (B,H,W,3) uint8."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def render_frames(avatar, signals, labels, smooth: bool, device) -> np.ndarray:
    """Render (N, R, R, 3) uint8 images for N driving signals and N labels (deterministic, batched)."""
    import torch

    out = []
    with torch.no_grad():
        for start in range(0, len(labels), BATCH):
            signal = signals[start : start + BATCH].to(device)
            label = torch.as_tensor(labels[start : start + BATCH], dtype=torch.float32, device=device)
            out.append(to_uint8(avatar(signal, label, smooth=smooth, deterministic=True, full_resolution=True)))
    return np.concatenate(out) if out else np.zeros((0, 1, 1, 3), np.uint8)


def write_frames(folder: str | Path, frames: list[int], images: np.ndarray) -> None:
    """Write ``images`` as ``folder/%06d.png`` named by frame number (the folder atomically)."""
    from hfagp.io.images import write_rgb

    with atomic.atomic_directory(folder) as tmp:
        for frame, image in zip(frames, images):
            write_rgb(tmp / FRAME_NAME.format(frame), image)


def generator_description(info: dict) -> dict:
    """Which generator prior rendered the avatar: kind, demo flag, checkpoint, fine-tuned or not."""
    gen = info.get("generator", {})
    record = gen.get("record") or gen.get("base") or {}
    kind = record.get("kind", "unknown")
    return {
        "kind": kind,
        "demo": kind == "demo" or bool(record.get("demo")),  # a person fit made from the demo generator says so
        "checkpoint": record.get("checkpoint"),
        "fine_tuned": gen.get("source") == "tuned",
    }


def check_signal(info: dict, data, expressions_path) -> None:
    """The subject's expression coefficients must have the size the avatar was trained on (clear error otherwise)."""
    from hfagp.avatar.model import check_driving_signal

    if data.expressions is not None:
        check_driving_signal(info, np.stack(list(data.expressions.values())), str(expressions_path))


class AvatarInputs:
    """A trained avatar and the driving data of one subject's test split."""

    def __init__(self, checkpoint, crops, cameras, split, expressions=None, audio_features=None, device: str = "cpu"):
        from hfagp.avatar.checkpoint import load_trained_avatar
        from hfagp.avatar.data import DriverDataset, load_subject

        self.avatar, self.info = load_trained_avatar(checkpoint, device)
        self.device = device
        self.kind = self.info["kind"]
        signal = self.info.get("signal", {})
        self.smooth = bool(signal.get("smoothing", False))
        self.resolution = int(self.avatar.generator.img_resolution)
        data = load_subject(self.kind, crops, cameras, split, expressions, audio_features)
        check_signal(self.info, data, expressions)
        self.dataset = DriverDataset(
            data, data.test, self.resolution, rgb_resolution=int(signal.get("rgb_resolution", 256)),
            seq_len=int(signal.get("seq_len", 8)),
        )
        if len(self.dataset) == 0:
            raise HfagpError(f"{split} has no usable test frame to render; check the split stage")

    def all_items(self) -> dict:
        return self.dataset.batch(list(range(len(self.dataset))))

    def render(self, signals, labels) -> np.ndarray:
        return render_frames(self.avatar, signals, labels, self.smooth, self.device)


def _video(path, left: np.ndarray | None, right: np.ndarray, fps: float, audio) -> None:
    from hfagp.io.video import side_by_side, write_video

    frames = right if left is None else (side_by_side(a, b) for a, b in zip(left, right))
    write_video(path, frames, fps, audio=audio)


def audio_track(kind: str, audio: str | None, frames_table: str | None, first_frame: int):
    """(wav, start seconds) for the audio avatar's videos, else None."""
    if kind != "audio" or audio is None:
        return None
    start = 0.0
    if frames_table is not None:
        from hfagp.io.tables import read_frames_table

        table = read_frames_table(frames_table)
        row = table[table["index"] == first_frame]
        start = float(row.timestamp.iloc[0]) if len(row) else 0.0
    return (str(audio), start)


def frame_rate(frames_table: str | None, default: float = 25.0) -> float:
    """The frame rate of the rendered videos: that of frames.parquet, else ``default``."""
    if frames_table is None:
        return default
    from hfagp.io.tables import read_frames_table

    return float(read_frames_table(frames_table, columns=["fps"]).fps.iloc[0])


def run_render(args: argparse.Namespace) -> dict:
    """Reenactment + novel views (+ cross-driving) of one trained avatar."""
    from hfagp.runtime import resolve_device

    device = resolve_device(args.device)
    outdir = Path(args.outdir)
    target = AvatarInputs(args.avatar, args.crops, args.cameras, args.split, args.expressions, args.audio_features, device)
    items = target.all_items()
    frames, labels = items["frame"], items["label"].numpy()
    truth = to_uint8(items["target"])
    fps = frame_rate(args.frames_table)
    audio = audio_track(target.kind, args.audio, args.frames_table, frames[0])
    outdir.mkdir(parents=True, exist_ok=True)

    reenact = target.render(items["signal"], labels)
    write_frames(outdir / "reenact" / "frames", frames, reenact)
    _video(outdir / "reenact.mp4", truth, reenact, fps, audio)
    for name, angles in (("novel_yaw", yaw_sweep(len(frames))), ("orbit", orbit(len(frames)))):
        images = target.render(items["signal"], novel_labels(angles))
        write_frames(outdir / name / "frames", frames, images)
        _video(outdir / f"{name}.mp4", truth, images, fps, audio)
    log.info("rendered %d test frames of the %s avatar (reenactment, yaw sweep, orbit) at %d px", len(frames), target.kind, target.resolution)

    info = {
        "subject": args.subject,
        "driver": target.kind,
        "generator": generator_description(target.info),
        "loss": target.info.get("loss"),
        "resolution": target.resolution,
        "frames": [int(f) for f in frames],
        "checkpoint": str(args.avatar),
        "training_metrics": target.info.get("metrics"),
    }
    atomic.write_json(outdir / "avatar.json", info)
    return info


def run_cross(args: argparse.Namespace) -> None:
    """Drive the avatar with another subject's test-split signal."""
    from hfagp.avatar.data import DriverDataset, load_subject
    from hfagp.runtime import resolve_device

    device = resolve_device(args.device)
    target = AvatarInputs(args.avatar, args.crops, args.cameras, args.split, args.expressions, args.audio_features, device)
    signal = target.info.get("signal", {})
    source = load_subject(target.kind, args.source_crops, args.source_cameras, args.source_split,
                          args.source_expressions, args.source_audio_features)
    check_signal(target.info, source, args.source_expressions)
    dataset = DriverDataset(source, source.test, target.resolution, rgb_resolution=int(signal.get("rgb_resolution", 256)),
                            seq_len=int(signal.get("seq_len", 8)))
    if len(dataset) == 0:
        raise HfagpError(f"{args.source_split} has no usable test frame to drive with")
    items = dataset.batch(list(range(len(dataset))))
    own = target.all_items()["label"].numpy()
    labels = own[np.arange(len(dataset)) % len(own)]
    images = target.render(items["signal"], labels)
    out = Path(args.output)
    write_frames(out.with_suffix("") / "frames", items["frame"], images)
    audio = audio_track(target.kind, args.source_audio, args.source_frames_table, items["frame"][0])
    _video(out, to_uint8(items["target"]), images, frame_rate(args.source_frames_table), audio)
    log.info("cross-driving: %d frames of %s drive the %s avatar -> %s", len(images), args.source_split, target.kind, out)
