"""The settings of one training run (``hfagp train``): its numbers, its files, the driver's build arguments."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from hfagp.avatar.data import DRIVER_KINDS
from hfagp.errors import HfagpError

# Settings that must match for a resume to continue the same run.
RESUME_KEYS = (
    "kind", "seed", "batch_size", "resolution", "rgb_resolution", "driver_width", "smoothing_window", "tune_iter",
    "smoothing_start", "ema_decay", "warm_start_steps",
)


@dataclass
class TrainSettings:
    """Every number of the stage (config.yaml block ``training`` + lpips, device, seed)."""

    kind: str = "expression"
    steps: int = 100_000
    tune_iter: int = 50_000
    lr: float = 3e-4
    generator_lr: float | None = None  # None = lr
    batch_size: int = 1
    resolution: int | None = None  # None = min(256, generator size)
    rgb_resolution: int = 256
    driver_width: float = 1.0
    mse_weight: float = 1.0
    lpips_weight: float = 1.0
    ssim_weight: float = 0.0  # 1 - SSIM term (no downloaded weights); 0 = off, HFA-GP's MSE + LPIPS
    face_ssim_weight: float = 0.0  # 1 - SSIM averaged over the face (crop landmarks; hfagp.losses.regions); 0 = off
    distortion_weight: float = 0.0  # Mip-NeRF 360 ray distortion of the neural rendering (hfagp.losses.geometry); 0 = off, as HFA-GP
    distortion_from: float = 0.0  # fraction of the steps after which the distortion term is on (only while the generator is tuned)
    lpips_backbone: str = "alex"
    lpips_weights: str | None = None
    smoothing_start: int = 300_000
    smoothing_window: int = 8
    ema_decay: float = 0.999  # 0 = the avatar keeps the last iterate's weights
    warm_start_steps: int = 0  # driver regressed onto the inverted latents' weights first (hfagp.avatar.warm_start); 0 = off
    checkpoint_every: int = 1000
    sample_every: int = 1000
    log_every: int = 10
    device: str = "cpu"
    seed: int = 0

    def check(self) -> None:
        if self.kind not in DRIVER_KINDS:
            raise HfagpError(f"unknown driver {self.kind!r}; choose one of {', '.join(DRIVER_KINDS)}")
        for name in ("steps", "batch_size", "rgb_resolution", "smoothing_window", "checkpoint_every", "sample_every", "log_every"):
            if int(getattr(self, name)) < 1:
                raise HfagpError(f"training setting {name} must be >= 1, got {getattr(self, name)!r}; check config.yaml")
        for name in ("tune_iter", "smoothing_start", "warm_start_steps"):
            if int(getattr(self, name)) < 0:
                raise HfagpError(f"training setting {name} must be >= 0, got {getattr(self, name)!r}; check config.yaml")
        for name in ("lr", "driver_width"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise HfagpError(f"training setting {name} must be > 0, got {value!r}; check config.yaml")
        if not (math.isfinite(self.distortion_from) and 0.0 <= self.distortion_from <= 1.0):
            raise HfagpError(f"training setting distortion_from must be in [0, 1], got {self.distortion_from!r}; check config.yaml")
        if not (math.isfinite(self.distortion_weight) and self.distortion_weight >= 0):
            raise HfagpError(f"training setting distortion_weight must be >= 0, got {self.distortion_weight!r}; check config.yaml")
        if not (math.isfinite(self.ema_decay) and 0.0 <= self.ema_decay < 1.0):
            raise HfagpError(f"training setting ema_decay must be in [0, 1), got {self.ema_decay!r}; check config.yaml")
        if self.generator_lr is not None and not (math.isfinite(self.generator_lr) and self.generator_lr > 0):
            raise HfagpError(f"generator_lr must be > 0, got {self.generator_lr!r}")
        if self.resolution is not None and self.resolution < 16:
            raise HfagpError(f"training resolution must be >= 16, got {self.resolution}; check config.yaml")


@dataclass
class TrainPaths:
    """Inputs and the output of the stage."""

    crops: str
    cameras: str
    split: str
    prior: str
    generator_json: str
    output: str
    expressions: str | None = None
    audio_features: str | None = None
    latents: str | None = None  # inversion/latents.pt (or a person fit's latents.pt): the warm start's targets
    person_out: str | None = None  # folder for this avatar's person fit (hfagp.avatar.person), written at the end

    @property
    def out_dir(self) -> Path:
        return Path(self.output).parent

    @property
    def resume(self) -> Path:
        return self.out_dir / "resume.pt"


def driver_build_args(settings: TrainSettings, out_dim: int, input_dim: int | None) -> dict:
    """The arguments of :func:`hfagp.avatar.drivers.build_driver` (stored in the checkpoint to rebuild the driver)."""
    args = {"kind": settings.kind, "out_dim": int(out_dim)}
    if settings.kind == "rgb":
        args.update(resolution=int(settings.rgb_resolution), width=float(settings.driver_width))
    elif settings.kind == "expression":
        args.update(input_dim=int(input_dim))
    else:
        args.update(seq_len=int(settings.smoothing_window))
    return args
