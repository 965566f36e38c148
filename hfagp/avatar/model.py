"""The trained avatar: a driver, the personal subspace and the EG3D generator, and reading one back.

:class:`Avatar` is the model :mod:`hfagp.avatar.training` trains (signal -> subspace
weights -> W+ latent -> image at a camera); :func:`load_trained_avatar`
rebuilds it from ``checkpoint.pt`` for rendering and evaluation, and
:func:`check_driving_signal` checks a new driving signal against what the
driver was trained on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hfagp.errors import HfagpError


class Avatar(nn.Module):
    """driver -> subspace weights -> W+ latent -> EG3D image (average-pooled to ``resolution``)."""

    def __init__(self, kind: str, driver: nn.Module, subspace: nn.Module, generator: nn.Module, resolution: int) -> None:
        super().__init__()
        self.kind = kind
        self.driver = driver
        self.subspace = subspace
        self.generator = generator
        self.resolution = int(resolution)

    def weights(self, signal: torch.Tensor, smooth: bool = False) -> torch.Tensor:
        if self.kind == "audio":
            return self.driver(signal, smooth=bool(smooth))
        return self.driver(signal)

    def latents(self, signal: torch.Tensor, smooth: bool = False) -> torch.Tensor:
        """(B,14,512) W+ latents of a batch of driving signals."""
        return self.subspace(self.weights(signal, smooth))

    def forward(  # type: ignore[override]
        self,
        signal: torch.Tensor,
        label: torch.Tensor,
        smooth: bool = False,
        deterministic: bool = False,
        full_resolution: bool = False,
        with_distortion: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """(B,3,R,R) images in about [-1,1] (the generator's own size with ``full_resolution``).

        ``with_distortion`` also returns each image's mean ray distortion (B,) (hfagp.losses.geometry).
        """
        ws = self.latents(signal, smooth)
        out = self.generator.synthesis(ws, label, noise_mode="const", deterministic=deterministic, ray_distortion=with_distortion)
        image = out["image"]
        if not full_resolution and image.shape[-1] != self.resolution:
            image = F.adaptive_avg_pool2d(image, self.resolution)
        if with_distortion:
            return image, out["ray_distortion"].mean(dim=(1, 2, 3))
        return image


def generator_trainable(G: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The generator parameters fine-tuned after ``tune_iter`` (all but the mapping network, unused with W+ latents)."""
    return [(n, p) for n, p in G.named_parameters() if not n.startswith("backbone.mapping.")]


def build_subspace(prior: str | Path):
    from hfagp.avatar.subspace import PersonalSubspace

    path = Path(prior)
    if not path.exists():
        raise HfagpError(f"prior {path} not found; run the prior stage (hfagp prior) first")
    try:
        return PersonalSubspace.from_prior(path)
    except HfagpError:
        raise
    except Exception as err:
        raise HfagpError(f"cannot build the personal subspace from {path} ({err}); delete it and rerun `hfagp prior`") from err


def build_driver_from_args(args: dict) -> nn.Module:
    from hfagp.avatar.drivers import build_driver

    kwargs = dict(args)
    return build_driver(kwargs.pop("kind"), kwargs.pop("out_dim"), **kwargs)


def check_driving_signal(info: dict, signal, source: str = "the driving signal") -> None:
    """Check a driving signal against a trained avatar's record (``load_trained_avatar``'s second value).

    Expression coefficients must be (F, E) with the E the driver was trained on;
    audio features (F, 16, 29) DeepSpeech windows. Raises :class:`HfagpError`.
    """
    shape = tuple(np.shape(signal))
    kind, sig = info["kind"], info.get("signal", {})
    if kind == "expression":
        size = int(sig["expression_size"])
        if len(shape) != 2 or shape[1] != size:
            raise HfagpError(
                f"{source} has expression vectors of shape {shape}, but this expression driver was trained on "
                f"{size} coefficients ({sig.get('expression_model')}); drive it with expressions of the same model "
                "(or train a driver on these)"
            )
    elif kind == "audio":
        if len(shape) != 3 or shape[1:] != (16, 29):
            raise HfagpError(f"{source} has shape {shape}; the audio driver expects (frames, 16, 29) DeepSpeech windows")
