"""``hfagp import`` and ``hfagp export``: published dataset layouts <-> per-subject artifacts.

Usage::

    hfagp import --format nerface|adnerf|hfagp DATASET_DIR -o results/<subject> [--fps F] [--threads N]
    hfagp export --format hfagp results/<subject> -o OUT_DIR

``import`` writes, per format (each artifact atomically, after the whole
dataset has been read and checked):

* nerface: frames/, frames.parquet, expressions.parquet, split.json (+ "val"),
  source_cameras.parquet, import.json
* adnerf: frames/, frames.parquet, audio_features.npy (+ .json), split.json,
  source_cameras.parquet, import.json
* hfagp: frames/ and crops/ (the 512 crops), frames.parquet, cameras.parquet,
  dataset.json, split.json (+ "test2"), expressions.parquet (3DMM mode) or
  audio_features.npy (+ .json, audio mode), import.json

``frames.parquet`` gets two extra columns, ``source_name`` (image path
relative to the dataset) and ``source_split``; ``import.json`` lists the
files read, the frame numbering rule and the frame rate's origin. Other files
already in the subject folder are left alone (a warning names the ones that
the new frames make stale). ``source_cameras.parquet`` cameras are in the
dataset tracker's world, not EG3D's: for nerface/adnerf, run the landmarks
and align stages on the imported frames to get EG3D crops and labels.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hfagp.errors import HfagpError

FORMATS = ("nerface", "adnerf", "hfagp")


def run_import(fmt: str, dataset: str | Path, out: str | Path, fps: float | None = None, threads: int = 1) -> dict:
    """Import ``dataset`` (a folder in layout ``fmt``) into the subject folder ``out``; returns import.json."""
    from hfagp.datasets.writer import log, write_import

    dataset = Path(dataset)
    if fmt == "nerface":
        from hfagp.datasets.nerface import plan_nerface

        plan, convert = plan_nerface(dataset, fps), None
    elif fmt == "adnerf":
        from hfagp.datasets.adnerf import plan_adnerf

        plan, convert = plan_adnerf(dataset, fps), None
    elif fmt == "hfagp":
        from hfagp.datasets.hfagp_layout import plan_hfagp, read_crop

        plan, convert = plan_hfagp(dataset, fps), read_crop
    else:
        raise HfagpError(f"unknown dataset format {fmt!r}; use one of {', '.join(FORMATS)}")
    log.info("importing %s dataset %s: %s", fmt, dataset, plan.fps_origin)
    return write_import(plan, Path(out), threads=threads, convert=convert)


def _run_import(args: argparse.Namespace) -> None:
    if args.threads < 1:
        raise HfagpError(f"--threads must be >= 1, got {args.threads}")
    run_import(args.format, args.dataset, args.output, fps=args.fps, threads=args.threads)


def _run_export(args: argparse.Namespace) -> None:
    from hfagp.datasets.export import export_hfagp

    export_hfagp(args.subject, args.output)


def register(subparsers) -> None:
    """Add ``hfagp import`` and ``hfagp export``."""
    parser = subparsers.add_command(
        "import",
        help="import a NeRFace / AD-NeRF / HFA-GP dataset folder into results/<subject>",
        description=__doc__,
    )
    parser.add_argument("dataset", metavar="DATASET_DIR", help="the dataset folder (holding the transforms files)")
    parser.add_argument("--format", required=True, choices=FORMATS, help="layout of DATASET_DIR")
    parser.add_argument("-o", "--output", required=True, help="subject folder to write, e.g. results/<subject>")
    parser.add_argument("--fps", type=float, default=None,
                        help="frame rate of the dataset's frames (none of the layouts stores it; default 25)")
    parser.add_argument("--threads", type=int, default=1, help="images converted in parallel")
    parser.set_defaults(func=_run_import)

    parser = subparsers.add_command(
        "export",
        help="write results/<subject> as an HFA-GP dataset folder (crops, test.json, transforms, aud.npy)",
        description=__doc__,
    )
    parser.add_argument("subject", metavar="RESULTS_SUBJECT_DIR", help="results/<subject> with crops/, "
                        "cameras.parquet, split.json (+ expressions.parquet / audio_features.npy)")
    parser.add_argument("--format", required=True, choices=("hfagp",), help="layout to write")
    parser.add_argument("-o", "--output", required=True, help="output dataset folder")
    parser.set_defaults(func=_run_export)
