"""The ``hfagp`` commands of the prior phase (what workflow/rules/prior.smk runs)."""

from __future__ import annotations

import argparse

from hfagp.prior import latents, pca, selection
from hfagp.prior.latents import run_invert
from hfagp.prior.pca import run_prior
from hfagp.prior.qc import run_qc_prior
from hfagp.prior.selection import select_frames


def register(subparsers) -> None:
    """Add the prior commands."""
    _register_selection(subparsers)
    _register_latents(subparsers)
    _register_pca(subparsers)


def _selection(args: argparse.Namespace) -> None:
    from hfagp.io import atomic

    record = select_frames(args.cameras, args.split, args.expressions, args.frames)
    atomic.write_json(args.output, record)


def _register_selection(subparsers) -> None:
    """Add ``hfagp select-frames``."""
    parser = subparsers.add_command(
        "select-frames",
        help="choose K train frames covering expressions and poses -> inversion/selection.json",
        description=selection.__doc__,
    )
    parser.add_argument("--cameras", required=True, help="cameras.parquet (stage align)")
    parser.add_argument("--split", required=True, help="split.json (train/test frames)")
    parser.add_argument("--expressions", help="expressions.parquet (omit to select by head pose only)")
    parser.add_argument("-k", "--frames", type=int, default=30, help="how many frames to select (K)")
    parser.add_argument("-o", "--output", required=True, help="output selection.json")
    parser.set_defaults(func=_selection)


def _latents(args: argparse.Namespace) -> None:
    run_invert(args)


def _register_latents(subparsers) -> None:
    """Add ``hfagp invert``."""
    parser = subparsers.add_command(
        "invert",
        help="W+ inversion of the selected frames (+ optional pivotal tuning) -> inversion/latents.pt",
        description=latents.__doc__,
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
    parser.set_defaults(func=_latents)


def _prior(args: argparse.Namespace) -> None:
    run_prior(args.latents, args.output, args.subspace_dim, args.seed)


def _qc_prior(args: argparse.Namespace) -> None:
    run_qc_prior(args.prior, args.generator_json, args.output, args.directions, args.sigma, args.device, args.threads)


def _register_pca(subparsers) -> None:
    """Add ``hfagp prior`` and ``hfagp qc-prior``."""
    parser = subparsers.add_command(
        "prior",
        help="PCA of the inverted latents -> prior.npz (mean, orthonormal basis, explained variance)",
        description=pca.__doc__,
    )
    parser.add_argument("latents", help="inversion/latents.pt (hfagp invert)")
    parser.add_argument("-o", "--output", required=True, help="output prior.npz")
    parser.add_argument("-d", "--subspace-dim", type=int, default=50, help="D, rows of the basis")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random orthogonal fill directions")
    parser.set_defaults(func=_prior)

    qc = subparsers.add_command(
        "qc-prior",
        help="render the prior's mean and +-sigma along its first directions -> qc/prior.png",
        description=pca.__doc__,
    )
    qc.add_argument("prior", help="prior.npz (hfagp prior)")
    qc.add_argument("--generator-json", required=True, help="inversion/generator.json (hfagp invert)")
    qc.add_argument("-o", "--output", required=True, help="output PNG")
    qc.add_argument("--directions", type=int, default=3, help="principal directions shown (rows)")
    qc.add_argument("--sigma", type=float, default=2.0, help="walk to +-sigma standard deviations")
    qc.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    qc.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    qc.set_defaults(func=_qc_prior)
