"""Stage ``invert``: W+ inversion of the selected frames (and optional pivotal tuning of EG3D).

Each frame of ``inversion/selection.json`` is inverted at its own camera
label (``cameras.parquet``): W+ latents (14 x 512) start at the generator's
``w_avg`` and are optimised with Adam (peak lr 0.01, linear ramp-up, cosine
ramp-down, decaying latent noise, as PTI's projector) against the crop
resampled to the generator's resolution, with MSE + LPIPS (MSE only, said
loudly, when the LPIPS backbone weights are absent; see ``hfagp.losses``).
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

TILE = 128
LATENTS_FORMAT = "hfagp-latents-1"


# ---------------------------------------------------------------------------
# generator.json: which generator goes with the latents


def generator_record(checkpoint: str | None, seed: int, tuned_name: str | None) -> dict:
    """The content of ``generator.json``."""
    kind = "tuned" if tuned_name else ("checkpoint" if checkpoint else "demo")
    return {"kind": kind, "checkpoint": checkpoint or None, "demo_seed": int(seed), "tuned": tuned_name}


def load_recorded_generator(path: str | Path, device="cpu"):
    """The generator that ``generator.json`` names (tuned file beside it, the checkpoint, or the demo one)."""
    import json

    from hfagp import eg3d

    path = Path(path)
    if not path.exists():
        raise HfagpError(f"generator record {path} not found; run `hfagp invert` first")
    try:
        record = json.loads(path.read_text())
        kind = record["kind"]
    except (ValueError, KeyError, TypeError) as err:
        raise HfagpError(f"{path} is not a generator record ({err}); delete it and rerun `hfagp invert`") from err
    if kind == "tuned":
        tuned = path.parent / record["tuned"]
        if not tuned.exists():
            raise HfagpError(f"{path} names the tuned generator {tuned}, which is missing; rerun `hfagp invert`")
        return eg3d.load_generator(tuned, device=device).eval()
    return eg3d.generator_from_config(record.get("checkpoint"), device, demo_seed=int(record.get("demo_seed", 0))).eval()


def describe_generator(G, checkpoint: str | None) -> dict:
    """A short description of the inverted generator, stored with the latents."""
    from hfagp.eg3d import DEMO_WARNING

    return {
        "kind": "checkpoint" if checkpoint else "demo",
        "checkpoint": checkpoint or None,
        "demo": not checkpoint,
        "note": None if checkpoint else DEMO_WARNING,
        "img_resolution": int(G.img_resolution),
        "num_ws": int(G.num_ws),
        "w_dim": int(G.w_dim),
        "neural_rendering_resolution": int(G.neural_rendering_resolution),
    }


# ---------------------------------------------------------------------------
# QC images


def _caption(tile, text: str):
    import cv2

    cv2.putText(tile, text, (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (0, 0, 0), 2, cv2.LINE_AA)
    cv2.putText(tile, text, (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def _tile(image):
    import cv2

    return cv2.resize(image, (TILE, TILE), interpolation=cv2.INTER_AREA if image.shape[0] > TILE else cv2.INTER_LINEAR)


def tile_grid(rows: list[list], groups_per_row: int = 2):
    """Lay out rows of equally sized tiles, ``groups_per_row`` rows side by side (uint8 RGB)."""
    import numpy as np

    width = max(len(r) for r in rows)
    lines = -(-len(rows) // groups_per_row)
    sheet = np.zeros((lines * TILE, groups_per_row * width * TILE + (groups_per_row - 1) * 4, 3), dtype=np.uint8)
    for i, row in enumerate(rows):
        line, group = divmod(i, groups_per_row)
        x0 = group * (width * TILE + 4)
        for j, tile in enumerate(row):
            sheet[line * TILE : (line + 1) * TILE, x0 + j * TILE : x0 + (j + 1) * TILE] = tile
    return sheet


def write_png(path: str | Path, rgb) -> None:
    import cv2

    from hfagp import atomic

    with atomic.atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
            raise HfagpError(f"could not write image {path}")


def inversion_sheet(G, crops: list, latents, labels, frames: list[int], final_losses: list[float], yaw: float):
    """crop | reconstruction | view at -yaw | view at +yaw for every frame."""
    import numpy as np
    import torch

    from hfagp.inversion_core import render, tensor_to_images, yaw_offset_label

    rows = []
    device = latents.device
    for i, frame in enumerate(frames):
        label = labels[i].cpu().numpy().astype(np.float64)
        cams = np.stack([label, yaw_offset_label(label, -yaw), yaw_offset_label(label, yaw)])
        with torch.no_grad():
            images = tensor_to_images(render(G, latents[i : i + 1].expand(3, -1, -1), torch.tensor(cams, dtype=torch.float32, device=device)))
        rows.append(
            [
                _caption(_tile(crops[i]).copy(), f"#{frame} crop"),
                _caption(_tile(images[0]).copy(), f"recon {final_losses[i]:.3f}"),
                _caption(_tile(images[1]).copy(), f"yaw {-yaw:+.0f}"),
                _caption(_tile(images[2]).copy(), f"yaw {yaw:+.0f}"),
            ]
        )
    return tile_grid(rows)


def loss_plot(history, width: int = 640, height: int = 320):
    """Per-frame loss curves (log scale) of the W+ stage, drawn with OpenCV (uint8 RGB)."""
    import cv2
    import numpy as np

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


# ---------------------------------------------------------------------------
# the stage


def load_targets(crops_dir: str | Path, cameras_path: str | Path, frames: list[int]):
    """Crops (uint8 list) and camera labels (K,25) of ``frames``, with clear errors for missing ones."""
    import numpy as np

    from hfagp.align import read_cameras
    from hfagp.frames import read_rgb

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

    from hfagp import atomic, eg3d
    from hfagp.inversion_core import InversionSettings, images_to_tensor, invert, pivotal_tuning, resolve_device, w_statistics
    from hfagp.losses import LossWeights, PhotometricLoss
    from hfagp.selection import read_selection

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
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

    path = Path(path)
    if not path.exists():
        raise HfagpError(f"latents {path} not found; run `hfagp invert` first")
    try:
        record = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises several types for damaged files
        raise HfagpError(f"cannot read {path} ({err}); delete it and rerun `hfagp invert`") from err
    latents = record.get("latents") if isinstance(record, dict) else record
    if not isinstance(latents, torch.Tensor) or latents.ndim != 3 or latents.shape[1:] != (14, 512):
        shape = tuple(latents.shape) if isinstance(latents, torch.Tensor) else type(latents).__name__
        raise HfagpError(f"{path} holds latents of shape {shape}, expected (K, 14, 512); rerun `hfagp invert`")
    if not isinstance(record, dict):
        record = {"latents": latents}
    record.setdefault("frames", list(range(len(latents))))
    return record


def _run(args: argparse.Namespace) -> None:
    run_invert(args)


def register(subparsers) -> None:
    """Add ``hfagp invert``."""
    parser = subparsers.add_command(
        "invert",
        help="W+ inversion of the selected frames (+ optional pivotal tuning) -> inversion/latents.pt",
        description=__doc__,
    )
    parser.add_argument("--crops", required=True, help="crops/ directory (stage align)")
    parser.add_argument("--cameras", required=True, help="cameras.parquet (stage align)")
    parser.add_argument("--selection", required=True, help="inversion/selection.json (hfagp select-frames)")
    parser.add_argument("--checkpoint", help="EG3D network pickle or hfagp checkpoint (omit: the random-init demo generator)")
    parser.add_argument("-o", "--output", required=True, help="output latents.pt")
    parser.add_argument("--losses", required=True, help="output losses.parquet (per frame and step)")
    parser.add_argument("--generator-json", required=True, help="output generator.json (which generator goes with the latents)")
    parser.add_argument("--loss-plot", help="output PNG of the per-frame loss curves")
    parser.add_argument("--qc", help="output QC PNG: crop | reconstruction | novel views")
    parser.add_argument("--tuned-generator", help="output tuned generator (needed with --pti-steps > 0)")
    parser.add_argument("--steps", type=int, default=500, help="W+ optimisation steps per frame")
    parser.add_argument("--lr", type=float, default=0.01, help="peak learning rate")
    parser.add_argument("--lr-rampup", type=float, default=0.05, help="fraction of steps of linear lr ramp-up")
    parser.add_argument("--lr-rampdown", type=float, default=0.25, help="fraction of steps of cosine lr ramp-down")
    parser.add_argument("--noise-scale", type=float, default=0.05, help="initial latent noise, in units of w_std")
    parser.add_argument("--mse-weight", type=float, default=1.0)
    parser.add_argument("--lpips-weight", type=float, default=1.0, help="ignored (with a warning) without LPIPS weights")
    parser.add_argument("--lpips-backbone", choices=["alex", "vgg"], default="alex")
    parser.add_argument("--lpips-weights", help="torchvision backbone .pth (default: the torch hub cache)")
    parser.add_argument("--batch-size", type=int, default=4, help="frames optimised together")
    parser.add_argument("--pti-steps", type=int, default=0, help="pivotal tuning steps (0 = off)")
    parser.add_argument("--pti-lr", type=float, default=3e-4)
    parser.add_argument("--qc-yaw", type=float, default=20.0, help="yaw offset (deg) of the QC novel views")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    parser.set_defaults(func=_run)
