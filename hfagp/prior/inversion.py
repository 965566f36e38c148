"""The numerical core of W+ inversion and pivotal tuning (imports torch; the invert stage around it is :mod:`hfagp.prior.latents`).

* :func:`w_statistics`: the generator's mean latent and the spread of W
  (StyleGAN2/PTI projector: 10k random z mapped at the frontal camera).
* :func:`lr_at` / :func:`noise_at`: the projector's learning-rate schedule
  (linear ramp-up, cosine ramp-down) and the decaying latent noise.
* :func:`invert`: W+ optimisation of a batch of frames, each at its own
  camera, starting from ``w_avg``; Adam is element-wise, so frames optimised
  together in one forward pass give the same latents as one by one.
* :func:`pivotal_tuning`: PTI's second step, the generator tuned with the
  inverted latents frozen as pivots.

Rendering is deterministic (no ray jitter) and the latent noise is drawn from
a seeded generator, so a rerun gives the same latents.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from hfagp.eg3d import camera
from hfagp.logs import get_logger

log = get_logger("inversion")

W_SAMPLES = 10_000
NOISE_RAMP = 0.75  # fraction of the steps over which the latent noise decays to 0 (StyleGAN2 projector)


@dataclass(frozen=True)
class InversionSettings:
    """Hyper-parameters of the W+ optimisation (PTI-style defaults)."""

    steps: int = 500
    lr: float = 0.01
    lr_rampup: float = 0.05
    lr_rampdown: float = 0.25
    noise_scale: float = 0.05
    batch_size: int = 4


def frontal_labels(batch: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """SPEC's frontal camera label repeated ``batch`` times (float32)."""
    label = torch.as_tensor(camera.frontal_camera_label(), dtype=torch.float32, device=device)
    return label.expand(batch, -1).clone()


@torch.no_grad()
def w_statistics(G, device: torch.device | str = "cpu", samples: int = W_SAMPLES, seed: int = 0, chunk: int = 1000):
    """(w_avg (w_dim,), w_std (float), source): the start of the optimisation and the scale of its noise.

    ``w_avg`` is the generator's tracked average when it has one (a trained
    EG3D); the random-init demo generator's is zero, so the mean of the mapped
    samples is used instead, as PTI does. ``w_std`` is the RMS distance of the
    samples from ``w_avg``.
    """
    gen = torch.Generator(device="cpu").manual_seed(seed)
    ws = []
    for start in range(0, samples, chunk):
        n = min(chunk, samples - start)
        z = torch.randn(n, G.z_dim, generator=gen).to(device)
        ws.append(G.mapping(z, frontal_labels(n, device))[:, 0].float())
    ws = torch.cat(ws)
    tracked = getattr(G.backbone.mapping, "w_avg", None)
    if tracked is not None and float(tracked.abs().max()) > 0:
        w_avg, source = tracked.detach().float().to(device).clone(), "generator w_avg"
    else:
        w_avg, source = ws.mean(dim=0), f"mean of {samples} mapped samples"
    w_std = float(((ws - w_avg) ** 2).sum(dim=1).mean().sqrt())
    return w_avg, w_std, source


def lr_at(step: int, steps: int, lr: float, rampup: float, rampdown: float) -> float:
    """Learning rate of ``step`` (0-based): linear ramp-up over ``rampup``, cosine ramp-down over the last ``rampdown``."""
    t = step / max(steps, 1)
    factor = 1.0
    if rampdown > 0:
        down = min(1.0, (1.0 - t) / rampdown)
        factor = 0.5 - 0.5 * math.cos(down * math.pi)
    if rampup > 0:  # counted from the end of the step, so step 0 already moves
        factor *= min(1.0, (step + 1) / max(steps, 1) / rampup)
    return lr * factor


def noise_at(step: int, steps: int, w_std: float, noise_scale: float) -> float:
    """Standard deviation of the noise added to the latents at ``step`` (quadratic decay to 0 at 75% of the steps)."""
    t = step / max(steps, 1)
    return w_std * noise_scale * max(0.0, 1.0 - t / NOISE_RAMP) ** 2


def images_to_tensor(images: list[np.ndarray], resolution: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 RGB (H,W,3) images -> (B,3,R,R) float32 in [-1,1], area-resampled to ``resolution``."""
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    if x.shape[-1] != resolution or x.shape[-2] != resolution:
        x = F.interpolate(x, size=(resolution, resolution), mode="area" if x.shape[-1] > resolution else "bilinear")
    return x.to(device)


def tensor_to_images(x: torch.Tensor) -> np.ndarray:
    """(B,3,H,W) in about [-1,1] -> uint8 RGB (B,H,W,3)."""
    x = ((x.detach().float().cpu().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def render(G, ws: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """G's deterministic image for W+ latents at camera labels."""
    return G.synthesis(ws, labels, noise_mode="const", deterministic=True)["image"]


def _terms_rows(frames, step, lr, total, terms) -> list[dict]:
    rows = []
    for i, frame in enumerate(frames):
        row = {"frame": int(frame), "step": int(step), "lr": float(lr), "loss": float(total[i])}
        row.update({name: float(value[i]) for name, value in terms.items()})
        rows.append(row)
    return rows


def invert(
    G,
    targets: torch.Tensor,
    labels: torch.Tensor,
    w_avg: torch.Tensor,
    w_std: float,
    loss,
    settings: InversionSettings,
    frames: list[int] | None = None,
    seed: int = 0,
    callback: Callable[[int, torch.Tensor], None] | None = None,
    progress: bool = True,
) -> tuple[torch.Tensor, list[dict]]:
    """W+ inversion of ``targets`` (K,3,R,R) at ``labels`` (K,25), in batches of ``settings.batch_size``.

    Returns the latents (K, num_ws, w_dim) float32 and the loss history (one
    row per frame and step: frame, step, lr, loss, and each loss term).
    ``callback(step, ws)`` sees each batch's latents after every step.
    """
    device = targets.device
    frames = list(range(len(targets))) if frames is None else list(frames)
    G.requires_grad_(False)
    latents, history = [], []
    batch = max(1, int(settings.batch_size))
    bar = tqdm(total=settings.steps * len(targets), desc="W+ inversion", unit="frame-step", disable=not progress, leave=False)
    for start in range(0, len(targets), batch):
        sl = slice(start, start + batch)
        target, label = targets[sl], labels[sl]
        n = len(target)
        ws = w_avg.detach().to(device).reshape(1, 1, -1).repeat(n, G.num_ws, 1).clone().requires_grad_(True)
        optimizer = torch.optim.Adam([ws], lr=settings.lr, betas=(0.9, 0.999))
        noise_gen = torch.Generator(device="cpu").manual_seed(seed * 1_000_003 + start)
        for step in range(settings.steps):
            lr = lr_at(step, settings.steps, settings.lr, settings.lr_rampup, settings.lr_rampdown)
            for group in optimizer.param_groups:
                group["lr"] = lr
            sigma = noise_at(step, settings.steps, w_std, settings.noise_scale)
            noise = torch.randn(ws.shape, generator=noise_gen).to(device) * sigma if sigma > 0 else 0.0
            image = render(G, ws + noise, label)
            total, terms = loss(image, target, reduction="none")
            optimizer.zero_grad(set_to_none=True)
            total.sum().backward()
            optimizer.step()
            history += _terms_rows(frames[sl], step, lr, total.detach(), {k: v.detach() for k, v in terms.items()})
            if callback is not None:
                callback(step, ws.detach())
            bar.update(n)
            bar.set_postfix(loss=f"{float(total.detach().mean()):.4f}")
        latents.append(ws.detach().float())
    bar.close()
    return torch.cat(latents), history


def pivotal_tuning(
    G,
    targets: torch.Tensor,
    labels: torch.Tensor,
    pivots: torch.Tensor,
    loss,
    steps: int,
    lr: float = 3e-4,
    batch_size: int = 4,
    frames: list[int] | None = None,
    seed: int = 0,
    progress: bool = True,
) -> list[dict]:
    """Tune G's weights so that the frozen pivots reproduce their frames (PTI, without its locality regulariser).

    Each step uses ``batch_size`` frames, cycling through a seeded permutation.
    Returns the loss history (frame, step, lr, loss, terms; ``stage`` = pti).
    """
    frames = list(range(len(targets))) if frames is None else list(frames)
    G.requires_grad_(True)
    params = [p for p in G.parameters() if p.is_floating_point()]
    optimizer = torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999))
    gen = torch.Generator(device="cpu").manual_seed(seed + 7)
    order: list[int] = []
    history = []
    batch = max(1, min(int(batch_size), len(targets)))
    for step in tqdm(range(steps), desc="pivotal tuning", unit="step", disable=not progress, leave=False):
        if len(order) < batch:
            order += torch.randperm(len(targets), generator=gen).tolist()
        idx, order = order[:batch], order[batch:]
        image = render(G, pivots[idx].detach(), labels[idx])
        total, terms = loss(image, targets[idx], reduction="none")
        optimizer.zero_grad(set_to_none=True)
        total.sum().backward()
        optimizer.step()
        rows = _terms_rows([frames[i] for i in idx], step, lr, total.detach(), {k: v.detach() for k, v in terms.items()})
        history += [{**row, "stage": "pti"} for row in rows]
    G.requires_grad_(False)
    G.eval()
    return history
