"""The ``hfagp`` commands of the expressions phase (what workflow/rules/expressions.smk runs)."""

from __future__ import annotations

import argparse

from hfagp.errors import HfagpError
from hfagp.expressions import coefficients
from hfagp.expressions.coefficients import run_expressions
from hfagp.face3d.fit import FitSettings


def register(subparsers) -> None:
    """Add the expressions commands."""
    _register_coefficients(subparsers)


def _coefficients(args: argparse.Namespace) -> None:
    if (args.qc is None) != (args.crops_dir is None):
        raise HfagpError("--qc and --crops-dir go together (the QC image draws on the crops)")
    settings = FitSettings(
        identity_weight=args.identity_weight, expression_weight=args.expression_weight, iterations=args.iterations
    )
    run_expressions(args.cameras, args.output, settings, args.smoothing_sigma, args.qc, args.crops_dir, args.qc_frames)


def _register_coefficients(subparsers) -> None:
    """Add ``hfagp expressions``."""
    parser = subparsers.add_command(
        "expressions",
        help="fit a morphable model (shared identity, per-frame pose + expression) -> expressions.parquet",
        description=coefficients.__doc__,
    )
    parser.add_argument("--cameras", required=True, help="cameras.parquet (stage align; crop landmarks + cameras)")
    parser.add_argument("-o", "--output", required=True, help="output expressions.parquet")
    parser.add_argument("--identity-weight", type=float, default=1.0, help="prior weight of the identity coefficients")
    parser.add_argument("--expression-weight", type=float, default=1.0, help="prior weight of the expression coefficients")
    parser.add_argument("--iterations", type=int, default=8, help="Gauss-Newton iterations (at most)")
    parser.add_argument("--smoothing-sigma", type=float, default=1.0, help="temporal smoothing of the coefficients (frames)")
    parser.add_argument("--qc", help="output QC PNG (fitted shape over a few frames)")
    parser.add_argument("--crops-dir", help="crops/ (for --qc)")
    parser.add_argument("--qc-frames", type=int, default=8, help="frames shown on the QC image")
    parser.set_defaults(func=_coefficients)
