"""``hfagp eg3d-sample``: load a generator and render a grid of identities x viewpoints (and ``eg3d-snapshot``).

The quickest check that a checkpoint loads and renders sensibly: rows are
random identities (one seed each), columns are cameras at the given yaw
angles around EG3D's pivot (radius 2.7, frontal pitch), rendered without ray
jitter. With no ``--checkpoint`` it renders the random-init demo generator
(logged loudly as such).
"""

from __future__ import annotations

import argparse

import numpy as np


def render_grid(G, seeds: list[int], yaws: list[float], psi: float, device: str) -> np.ndarray:
    """Render ``len(seeds) x len(yaws)`` images and tile them into one uint8 RGB array."""
    import torch

    from hfagp.eg3d import camera

    labels = torch.tensor(
        np.stack([camera.camera_label(camera.look_at_cam2world(yaw_deg=yaw)) for yaw in yaws]), dtype=torch.float32
    ).to(device)
    frontal = labels[[len(yaws) // 2]]
    rows = []
    with torch.no_grad():
        for seed in seeds:
            z = torch.from_numpy(np.random.RandomState(seed).randn(1, G.z_dim)).float().to(device)
            ws = G.mapping(z, frontal, truncation_psi=psi)
            images = G.synthesis(ws.expand(len(yaws), -1, -1), labels, noise_mode="const", deterministic=True)["image"]
            tiles = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
            rows.append(np.concatenate(list(tiles), axis=1))
    return np.concatenate(rows, axis=0)


def _run(args: argparse.Namespace) -> None:
    from PIL import Image

    from hfagp.eg3d import generator_from_config
    from hfagp.io import atomic

    G = generator_from_config(args.checkpoint, device=args.device)
    grid = render_grid(G, args.seeds, args.yaws, args.psi, args.device)
    with atomic.atomic_path(args.output) as tmp:
        Image.fromarray(grid).save(tmp)


def register(subparsers) -> None:
    """Add ``hfagp eg3d-sample`` and ``hfagp eg3d-snapshot``."""
    from hfagp.eg3d import snapshot

    snapshot.register(subparsers)
    parser = subparsers.add_command(
        "eg3d-sample",
        help="render identities x yaw angles from an EG3D checkpoint (or the demo generator) to a PNG grid",
        description=__doc__,
    )
    parser.add_argument("--checkpoint", default=None, help="official EG3D .pkl or hfagp checkpoint (default: demo generator)")
    parser.add_argument("-o", "--output", required=True, help="output PNG")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--yaws", type=float, nargs="+", default=[-30.0, 0.0, 30.0], help="camera yaw angles, degrees")
    parser.add_argument("--psi", type=float, default=0.7, help="truncation psi")
    parser.add_argument("--device", default="cpu")
    parser.set_defaults(func=_run)
