"""The trained avatar: a driver, the personal subspace and the EG3D generator, and reading one back.

:class:`Avatar` is the model :mod:`hfagp.training` trains (signal -> subspace
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

CHECKPOINT_FORMAT = "hfagp-driver-1"


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
    ) -> torch.Tensor:
        """(B,3,R,R) images in about [-1,1] (the generator's own size with ``full_resolution``)."""
        ws = self.latents(signal, smooth)
        image = self.generator.synthesis(ws, label, noise_mode="const", deterministic=deterministic)["image"]
        if not full_resolution and image.shape[-1] != self.resolution:
            image = F.adaptive_avg_pool2d(image, self.resolution)
        return image


def generator_trainable(G: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The generator parameters fine-tuned after ``tune_iter`` (all but the mapping network, unused with W+ latents)."""
    return [(n, p) for n, p in G.named_parameters() if not n.startswith("backbone.mapping.")]


def build_subspace(prior: str | Path):
    from hfagp.subspace import PersonalSubspace

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
    from hfagp.drivers import build_driver

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


def load_trained_avatar(path: str | Path, device: str | torch.device = "cpu") -> tuple[Avatar, dict]:
    """Rebuild the trained avatar of ``checkpoint.pt`` (eval mode) and return it with the checkpoint's record.

    ``avatar(signal, label, smooth=record["signal"].get("smoothing", False), deterministic=True)``
    renders at the training resolution; ``full_resolution=True`` keeps the generator's size.
    """
    from hfagp import eg3d
    from hfagp.subspace import PersonalSubspace

    path = Path(path)
    if not path.exists():
        raise HfagpError(f"trained avatar {path} not found; run `hfagp train` first")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise HfagpError(f"cannot read {path} ({err}); delete it and rerun `hfagp train`") from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise HfagpError(f"{path} is not an hfagp driver checkpoint ({CHECKPOINT_FORMAT}); rerun `hfagp train`")
    driver = build_driver_from_args(ckpt["driver"]["build"])
    driver.load_state_dict(ckpt["driver"]["state_dict"])
    sub = ckpt["subspace"]
    subspace = PersonalSubspace(
        sub["delta"].float(), sub["bases"].float().reshape(int(sub["dim"]), -1),
        num_ws=int(sub.get("num_ws", 14)), w_dim=int(sub.get("w_dim", 512)),
    )
    gen = ckpt["generator"]
    if gen["source"] == "tuned":
        G = eg3d.TriPlaneGenerator(**dict(gen["init_kwargs"]))
        G.load_state_dict(gen["state_dict"])
        G.neural_rendering_resolution = int(gen["neural_rendering_resolution"])
    else:
        record = gen["record"]
        if record.get("kind") == "tuned":
            from hfagp.inversion import load_recorded_generator

            G = load_recorded_generator(gen["record_path"], "cpu")
        else:
            G = eg3d.generator_from_config(record.get("checkpoint"), "cpu", demo_seed=int(record.get("demo_seed", 0)))
    G.requires_grad_(False)
    avatar = Avatar(ckpt["kind"], driver, subspace, G.eval(), int(ckpt["resolution"])).to(device).eval()
    avatar.requires_grad_(False)
    info = {k: v for k, v in ckpt.items() if k not in ("driver", "subspace", "generator")}
    info["generator"] = {k: v for k, v in gen.items() if k != "state_dict"}
    return avatar, info
