"""Stage ``invert``: W+ inversion of the selected frames (and optional pivotal tuning of EG3D).

Each frame of ``inversion/selection.json`` is inverted at its own camera
label (``cameras.parquet``): W+ latents (14 x 512) start at the generator's
``w_avg`` and are optimised with Adam (peak lr 0.01, linear ramp-up, cosine
ramp-down, decaying latent noise, as PTI's projector) against the crop
resampled to the generator's resolution, with MSE + LPIPS (MSE only, said
loudly, when the LPIPS backbone weights are absent; see ``hfagp.losses.photometric``).
Rendering is deterministic, so a rerun gives the same latents.

With ``--pti-steps N > 0`` the generator is then tuned on the K frames with
the latents frozen as pivots (PTI, lr 3e-4) and saved.

Outputs:

* ``latents.pt``: a dict with ``latents`` (K,14,512) float32, ``frames``,
  ``labels`` (K,25), ``w_avg``, ``w_std``, ``loss`` (the loss description: whether
  LPIPS was used), ``generator`` (what was inverted: demo/checkpoint), ``settings``,
  ``final_losses`` (per frame, each term), ``pti_steps``.
* ``losses.parquet``: one row per frame and step (frame, step, lr, loss, mse,
  lpips..., stage = ``w`` or ``pti``); ``--loss-plot`` draws it.
* ``qc/inversion.png``: per frame, crop | reconstruction | novel views at -/+ qc-yaw.
* ``generator.json``: which generator later stages must use with these latents
  (``kind`` = demo, checkpoint or tuned; ``tuned`` names the tuned file beside it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hfagp.errors import HfagpError
from hfagp.logs import get_logger

log = get_logger("inversion")

LATENTS_FORMAT = "hfagp-latents-1"


def load_targets(crops_dir: str | Path, cameras_path: str | Path, frames: list[int]):
    """Crops (uint8 list) and camera labels (K,25) of ``frames``, with clear errors for missing ones."""
    import numpy as np

    from hfagp.io.images import read_rgb
    from hfagp.io.tables import read_cameras

    table, labels = read_cameras(cameras_path)
    row_of = {int(f): i for i, f in enumerate(table.frame)}
    missing = [f for f in frames if f not in row_of]
    if missing:
        raise HfagpError(
            f"selected frames {missing[:10]} have no camera in {cameras_path}; the selection is stale, rerun `hfagp select-frames`"
        )
    crops = []
    for f in frames:
        path = Path(crops_dir) / table.name.iloc[row_of[f]]
        if not path.exists():
            raise HfagpError(f"crop {path} of selected frame {f} is missing; rerun the align stage (hfagp align)")
        crops.append(read_rgb(path))
    return crops, np.stack([labels[row_of[f]] for f in frames])


def run_invert(args: argparse.Namespace) -> dict:
    """The whole stage (see the module docstring); returns the latents record."""
    import numpy as np
    import pandas as pd
    import torch

    from hfagp import eg3d
    from hfagp.io import atomic
    from hfagp.io.images import write_png
    from hfagp.losses.photometric import LossWeights, PhotometricLoss
    from hfagp.prior.generator import describe_generator, generator_record
    from hfagp.prior.inversion import InversionSettings, images_to_tensor, invert, pivotal_tuning, w_statistics
    from hfagp.prior.qc import inversion_sheet, loss_plot
    from hfagp.prior.selection import read_selection
    from hfagp.runtime import resolve_device, setup_torch

    setup_torch(args.threads, seed=args.seed)
    np.random.seed(args.seed % 2**32)
    device = resolve_device(args.device)
    selection = read_selection(args.selection)
    frames = selection["frames"]
    crops, labels_np = load_targets(args.crops, args.cameras, frames)
    if args.pti_steps > 0 and not args.tuned_generator:
        raise HfagpError("--pti-steps > 0 needs --tuned-generator (where the tuned generator is saved)")

    G = eg3d.generator_from_config(args.checkpoint, device, demo_seed=args.seed).eval()
    G.requires_grad_(False)
    generator_info = describe_generator(G, args.checkpoint)
    loss = PhotometricLoss(
        LossWeights(mse=args.mse_weight, lpips=args.lpips_weight),
        lpips_backbone=args.lpips_backbone,
        lpips_weights=args.lpips_weights,
        device=device,
    ).to(device)
    log.info("inverting %d frames with %s into %s", len(frames), loss.description, "the demo generator" if not args.checkpoint else args.checkpoint)

    targets = images_to_tensor(crops, G.img_resolution, device)
    labels = torch.tensor(labels_np, dtype=torch.float32, device=device)
    w_avg, w_std, w_source = w_statistics(G, device, seed=args.seed)
    log.info("start latent: %s (w_std %.3f)", w_source, w_std)
    settings = InversionSettings(
        steps=args.steps,
        lr=args.lr,
        lr_rampup=args.lr_rampup,
        lr_rampdown=args.lr_rampdown,
        noise_scale=args.noise_scale,
        batch_size=args.batch_size,
    )
    latents, history = invert(G, targets, labels, w_avg, w_std, loss, settings, frames=frames, seed=args.seed)
    history = [{**row, "stage": "w"} for row in history]
    last = {row["frame"]: row for row in history if row["step"] == settings.steps - 1}
    final = {f: {k: v for k, v in last[f].items() if k not in ("frame", "step", "lr", "stage")} for f in frames}
    log.info(
        "W+ inversion done: final loss median %.4f (min %.4f, max %.4f)",
        float(np.median([final[f]["loss"] for f in frames])),
        min(final[f]["loss"] for f in frames),
        max(final[f]["loss"] for f in frames),
    )

    tuned_name = None
    if args.pti_steps > 0:
        history += pivotal_tuning(
            G, targets, labels, latents, loss, args.pti_steps, args.pti_lr, args.batch_size, frames=frames, seed=args.seed
        )
        tuned_path = Path(args.tuned_generator)
        if tuned_path.resolve().parent != Path(args.generator_json).resolve().parent:
            raise HfagpError("--tuned-generator must sit in the same folder as --generator-json")
        eg3d.save_generator(G, tuned_path)
        tuned_name = tuned_path.name
        log.info("pivotal tuning: %d steps at lr %g, generator saved to %s", args.pti_steps, args.pti_lr, tuned_path)

    with torch.no_grad():
        recon = G.synthesis(latents, labels, noise_mode="const", deterministic=True)["image"]
        recon_loss, _ = loss(recon, targets, reduction="none")
    record = {
        "format": LATENTS_FORMAT,
        "latents": latents.cpu().float(),
        "frames": [int(f) for f in frames],
        "labels": labels.cpu().float(),
        "w_avg": w_avg.cpu().float(),
        "w_std": float(w_std),
        "w_avg_source": w_source,
        "loss": loss.description,
        "uses_lpips": bool(loss.uses_lpips),
        "generator": generator_info,
        "settings": {**settings.__dict__, "mse_weight": args.mse_weight, "lpips_weight": args.lpips_weight, "seed": args.seed},
        "steps": int(settings.steps),
        "pti_steps": int(args.pti_steps),
        "pti_lr": float(args.pti_lr),
        "final_losses": final,
        "reconstruction_loss": {int(f): float(v) for f, v in zip(frames, recon_loss.cpu())},
        "selection": {k: selection.get(k) for k in ("method", "features", "k")},
    }
    atomic.torch_save(args.output, record)
    history_table = pd.DataFrame(history)
    atomic.write_parquet(args.losses, history_table)
    if args.loss_plot:
        write_png(args.loss_plot, loss_plot(history_table))
    if args.qc:
        sheet = inversion_sheet(G, crops, latents, labels, frames, [float(v) for v in recon_loss.cpu()], args.qc_yaw)
        write_png(args.qc, sheet)
    atomic.write_json(args.generator_json, generator_record(args.checkpoint, args.seed, tuned_name))
    return record


def read_latents(path: str | Path) -> dict:
    """Read ``latents.pt`` with a clear error for a missing or malformed file."""
    import torch

    from hfagp.io.artifacts import load_torch_artifact

    record = load_torch_artifact(path, "latents file", "delete it and rerun `hfagp invert`")
    latents = record.get("latents") if isinstance(record, dict) else record
    if not isinstance(latents, torch.Tensor) or latents.ndim != 3 or latents.shape[1:] != (14, 512):
        shape = tuple(latents.shape) if isinstance(latents, torch.Tensor) else type(latents).__name__
        raise HfagpError(f"{path} holds latents of shape {shape}, expected (K, 14, 512); rerun `hfagp invert`")
    if not isinstance(record, dict):
        record = {"latents": latents}
    record.setdefault("frames", list(range(len(latents))))
    return record
