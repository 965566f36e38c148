"""What does a subject's test split measure? Constant-image references and an audio-as-clock probe.

Usage::

    .venv/bin/python bench/probe_split.py results/demo
    .venv/bin/python bench/probe_split.py results/demo --audio-checkpoint results/demo/driver/audio/checkpoint.pt

Prints the test PSNR (at the training resolution) of constant images: the
mean training crop (the baseline of ``metrics.json``), the mean of the last
and of the first ``--frames`` training crops, and the mean test crop (the best
any constant image can do). When the last training crops score far above the
mean training crop, the test frames differ from the training frames mostly by
a slow drift, and a driver gains on the baseline by telling "late in the clip"
apart, whatever its signal means.

With ``--audio-checkpoint``, the trained audio avatar renders the test frames
driven by their own audio, by the audio of the last and of the first
``len(test)`` training frames, and by zeros. If the last training frames'
audio does about as well as the frames' own, the avatar reads the audio as a
clock rather than as speech.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("subject", type=Path, help="results/<subject> (crops/, cameras.parquet, split.json)")
    parser.add_argument("--resolution", type=int, default=128, help="PSNR resolution (the training resolution; demo 128)")
    parser.add_argument("--frames", type=int, default=10, help="training crops in the first/last constant images")
    parser.add_argument("--audio-checkpoint", type=Path, help="a trained audio avatar's checkpoint.pt")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch

    from hfagp.avatar.data import DriverDataset, load_subject
    from hfagp.avatar.monitor import psnr

    torch.set_num_threads(args.threads)
    s = args.subject
    kind = "audio" if args.audio_checkpoint else "rgb"
    data = load_subject(kind, s / "crops", s / "cameras.parquet", s / "split.json", None, s / "audio_features.npy")
    resolution = args.resolution
    if args.audio_checkpoint:
        from hfagp.avatar.checkpoint import load_trained_avatar

        avatar, info = load_trained_avatar(args.audio_checkpoint)
        resolution = avatar.resolution
    train = DriverDataset(data, data.train, resolution, 16)
    test = DriverDataset(data, data.test, resolution, 16)
    train_images = train.targets.float() / 127.5 - 1.0
    test_images = test.targets.float() / 127.5 - 1.0
    k = min(args.frames, len(train))

    def constant(image: torch.Tensor) -> float:
        return float(psnr(image.expand_as(test_images), test_images).mean())

    print(f"{len(train)} training and {len(test)} test frames, PSNR at {resolution} px")
    rows = [
        ("mean training crop (the baseline)", train_images.mean(0, keepdim=True)),
        (f"mean of the last {k} training crops", train_images[-k:].mean(0, keepdim=True)),
        (f"mean of the first {k} training crops", train_images[:k].mean(0, keepdim=True)),
        ("mean test crop (the best constant)", test_images.mean(0, keepdim=True)),
    ]
    for label, image in rows:
        print(f"{label:<42} {constant(image):6.2f} dB")
    if not args.audio_checkpoint:
        return
    n = len(test)
    if len(train) < n:
        raise SystemExit(f"need at least {n} training frames for the audio probe, have {len(train)}")
    smooth = bool(info["signal"].get("smoothing", False))

    def driven(signal: torch.Tensor) -> float:
        with torch.no_grad():
            render = avatar(signal.float(), test.labels, smooth=smooth, deterministic=True)
        return float(psnr(render, test_images).mean())

    print(f"audio avatar {args.audio_checkpoint}:")
    for label, signal in (
        ("own audio", test.signals),
        (f"audio of the last {n} training frames", train.signals[-n:]),
        (f"audio of the first {n} training frames", train.signals[:n]),
        ("zeros", torch.zeros_like(test.signals)),
    ):
        print(f"  {label:<40} {driven(signal):6.2f} dB")


if __name__ == "__main__":
    main()
