"""QC images of the prior phase: ``qc/inversion.png``, the loss plot and ``qc/prior.png``.

* :func:`inversion_sheet`: per selected frame, crop | reconstruction | the
  inverted latent seen from -/+ ``qc_yaw`` degrees (the 3D consistency of the fit).
* :func:`loss_plot`: the per-frame loss curves of the W+ optimisation.
* :func:`prior_sheet` / :func:`run_qc_prior` (``hfagp qc-prior``): the prior's
  mean and its first principal directions at -2..+2 standard deviations.

Every render is deterministic (no ray jitter).
"""

from __future__ import annotations

import numpy as np

from hfagp.errors import HfagpError
from hfagp.io.images import caption, fit_tile, tile_grid, write_png
from hfagp.prior.pca import read_prior


def inversion_sheet(G, crops: list, latents, labels, frames: list[int], final_losses: list[float], yaw: float):
    """crop | reconstruction | view at -yaw | view at +yaw for every frame."""
    import torch

    from hfagp.eg3d.camera import yaw_offset_label
    from hfagp.prior.inversion import render, tensor_to_images

    rows = []
    device = latents.device
    for i, frame in enumerate(frames):
        label = labels[i].cpu().numpy().astype(np.float64)
        cams = np.stack([label, yaw_offset_label(label, -yaw), yaw_offset_label(label, yaw)])
        with torch.no_grad():
            images = tensor_to_images(render(G, latents[i : i + 1].expand(3, -1, -1), torch.tensor(cams, dtype=torch.float32, device=device)))
        rows.append(
            [
                caption(fit_tile(crops[i]).copy(), f"#{frame} crop"),
                caption(fit_tile(images[0]).copy(), f"recon {final_losses[i]:.3f}"),
                caption(fit_tile(images[1]).copy(), f"yaw {-yaw:+.0f}"),
                caption(fit_tile(images[2]).copy(), f"yaw {yaw:+.0f}"),
            ]
        )
    return tile_grid(rows)


def loss_plot(history, width: int = 640, height: int = 320):
    """Per-frame loss curves (log scale) of the W+ stage, drawn with OpenCV (uint8 RGB)."""
    import cv2

    plot = np.full((height, width, 3), 255, dtype=np.uint8)
    curves = history[history.stage == "w"]
    if curves.empty:
        return plot
    values = np.log10(np.maximum(curves.loss.to_numpy(), 1e-6))
    lo, hi = float(values.min()), float(values.max())
    hi = hi if hi > lo else lo + 1.0
    steps = max(int(curves.step.max()), 1)
    margin = 40
    cv2.rectangle(plot, (margin, 10), (width - 10, height - margin), (0, 0, 0), 1)
    rng = np.random.default_rng(0)
    for frame, group in curves.groupby("frame"):
        x = margin + group.step.to_numpy() / steps * (width - margin - 10)
        y = 10 + (hi - np.log10(np.maximum(group.loss.to_numpy(), 1e-6))) / (hi - lo) * (height - margin - 10)
        colour = tuple(int(c) for c in rng.integers(0, 200, 3))
        cv2.polylines(plot, [np.stack([x, y], axis=1).round().astype(np.int32)], False, colour, 1, cv2.LINE_AA)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(plot, f"{10**hi:.3g}", (2, 20), font, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(plot, f"{10**lo:.3g}", (2, height - margin), font, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(plot, f"step 0 .. {steps}   loss per frame (log)", (margin, height - 15), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return plot


def prior_sheet(G, prior: dict, directions: int, sigma: float, device="cpu") -> np.ndarray:
    """Rows = principal directions, columns = mean + (-sigma .. +sigma) std along it, at the frontal camera."""
    import torch

    from hfagp.prior.inversion import frontal_labels, render, tensor_to_images

    mean = torch.as_tensor(prior["mean"], dtype=torch.float32, device=device).reshape(-1)
    basis = torch.as_tensor(prior["basis"], dtype=torch.float32, device=device)
    std = np.sqrt(np.maximum(prior["explained_variance"], 0.0))
    count = max(1, min(directions, int(prior["data_directions"]) or 1, len(basis)))
    steps = np.array([-1.0, -0.5, 0.0, 0.5, 1.0]) * sigma
    rows = []
    for i in range(count):
        ws = torch.stack([mean + float(s * std[i]) * basis[i] for s in steps]).reshape(len(steps), 14, -1)
        with torch.no_grad():
            images = tensor_to_images(render(G, ws, frontal_labels(len(steps), device)))
        rows.append(
            [caption(fit_tile(img).copy(), "mean" if s == 0 else f"pc{i + 1} {s:+.1f}s") for img, s in zip(images, steps)]
        )
    return tile_grid(rows, groups_per_row=1)


def run_qc_prior(prior_path, generator_json, output, directions: int = 3, sigma: float = 2.0, device: str = "cpu", threads: int = 0):
    """``hfagp qc-prior``: render the prior's mean and principal directions -> PNG."""
    from hfagp.prior.generator import load_recorded_generator
    from hfagp.runtime import resolve_device, setup_torch

    setup_torch(threads)
    prior = read_prior(prior_path)
    if prior["mean"].shape != (14, 512):
        raise HfagpError(f"{prior_path}: mean of shape {prior['mean'].shape}, expected (14, 512); rerun `hfagp prior`")
    dev = resolve_device(device)
    G = load_recorded_generator(generator_json, dev)
    G.requires_grad_(False)
    sheet = prior_sheet(G, prior, directions, sigma, dev)
    write_png(output, sheet)
    return sheet
