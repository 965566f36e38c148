"""The ``hfagp`` commands of the evaluate phase (what workflow/rules/evaluate.smk runs)."""

from __future__ import annotations

import argparse

from hfagp.evaluate import paper_table, render, scoring
from hfagp.evaluate.paper_table import run_paper_table
from hfagp.evaluate.render import run_cross, run_render
from hfagp.evaluate.scoring import run_evaluate


def register(subparsers) -> None:
    """Add the evaluate commands."""
    _register_render(subparsers)
    _register_scoring(subparsers)
    _register_paper_table(subparsers)
    _register_view(subparsers)


def _add_avatar_inputs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--avatar", required=True, help="driver/<kind>/checkpoint.pt (stage train)")
    parser.add_argument("--crops", required=True, help="crops/ of the avatar's subject")
    parser.add_argument("--cameras", required=True, help="cameras.parquet of the avatar's subject")
    parser.add_argument("--split", required=True, help="split.json (the test split is rendered)")
    parser.add_argument("--expressions", help="expressions.parquet (expression avatar)")
    parser.add_argument("--audio-features", help="audio_features.npy (audio avatar)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto")


def _register_render(subparsers) -> None:
    """Add ``hfagp render`` and ``hfagp render-cross``."""
    parser = subparsers.add_command(
        "render", help="re-drive a trained avatar: test-split reenactment, yaw sweep, orbit -> frames + mp4", description=render.__doc__
    )
    _add_avatar_inputs(parser)
    parser.add_argument("--subject", required=True, help="subject name (recorded in avatar.json)")
    parser.add_argument("--frames-table", help="frames.parquet (frame rate, audio timing)")
    parser.add_argument("--audio", help="audio.wav muxed into the audio avatar's videos")
    parser.add_argument("--outdir", required=True, help="output folder render/<kind>")
    parser.set_defaults(func=run_render)

    cross = subparsers.add_command(
        "render-cross", help="drive a trained avatar with another subject's signal -> frames + mp4", description=render.__doc__
    )
    _add_avatar_inputs(cross)
    cross.add_argument("--source-crops", required=True)
    cross.add_argument("--source-cameras", required=True)
    cross.add_argument("--source-split", required=True)
    cross.add_argument("--source-expressions")
    cross.add_argument("--source-audio-features")
    cross.add_argument("--source-frames-table")
    cross.add_argument("--source-audio")
    cross.add_argument("-o", "--output", required=True, help="output mp4 (frames go beside it, in a folder of its name)")
    cross.set_defaults(func=run_cross)


def _optional_path(text: str | None) -> str | None:
    """CLI value of an optional path: ``None``/``null``/empty mean absent (Snakemake passes ``None`` literally)."""
    return None if text is None or text.strip().lower() in ("", "none", "null") else text


def _resolution(text: str) -> int | str:
    """``--resolution``: a pixel count or ``render``."""
    if text == "render":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a pixel count or 'render'") from None


def _scoring(args: argparse.Namespace) -> None:
    from hfagp.errors import HfagpError
    from hfagp.evaluate.protocol import Protocol

    try:
        protocol = Protocol(resolution=args.resolution, region=args.region, color=args.color)
    except ValueError as err:
        raise HfagpError(f"{err}; fix `evaluation:` in config.yaml (or the hfagp evaluate flags)") from err
    run_evaluate(
        args.renders, args.crops, args.split, args.avatar_info, args.output, novel=args.novel,
        lpips_backbone=args.lpips_backbone, lpips_weights=_optional_path(args.lpips_weights),
        niqe_model=_optional_path(args.niqe_model), upsample=args.upsample, protocol=protocol,
    )


def _register_scoring(subparsers) -> None:
    """Add ``hfagp evaluate``."""
    parser = subparsers.add_command(
        "evaluate",
        help="PSNR/face PSNR/SSIM/L1/LPIPS/AKD/LMD/CSIM/lip-opening correlation on the test frames under one "
        "protocol, a still-image baseline (+ NIQE and face detection of novel views) -> metrics.parquet + metrics.json",
        description=scoring.__doc__,
    )
    parser.add_argument("--renders", required=True, help="reenactment frames %%06d.png (render stage)")
    parser.add_argument("--crops", required=True, help="ground-truth crops %%06d.png (align stage)")
    parser.add_argument("--split", required=True, help="split.json; its test frames are evaluated")
    parser.add_argument("--avatar-info", required=True, help="avatar.json written by the render stage")
    parser.add_argument("-o", "--output", required=True, help="metrics.parquet (metrics.json is written beside it)")
    parser.add_argument("--novel", default=None, help="novel-view frames (PNG) for NIQE and face detection")
    parser.add_argument("--lpips-backbone", default="alex", help="LPIPS backbone: alex (default) or vgg")
    parser.add_argument("--lpips-weights", default=None,
                        help="backbone weight file (default: torch hub cache); absent -> LPIPS n/a")
    parser.add_argument("--resolution", type=_resolution, default=512,
                        help="size both images are compared at (default 512; 'render' = the render's own size)")
    parser.add_argument("--region", choices=("full", "head", "face"), default="full",
                        help="full frame (default); head: ground truth pasted outside the head; face: both white "
                        "outside the face hull")
    parser.add_argument("--color", choices=("rgb", "y"), default="rgb",
                        help="PSNR/SSIM/L1 on RGB (default) or on BT.601 luma (basicsr's test_y_channel)")
    parser.add_argument("--niqe-model", default=None,
                        help="NIQE pristine model .npz (mu_pris_param, cov_pris_param[, gaussian_window]); "
                        "default: MATLAB's, from basicsr-fixed")
    parser.add_argument("--upsample", type=int, default=None,
                        help="dlib upsampling for the landmarks (AKD, face PSNR, lip opening) and the novel-view "
                        "faces (default 0, or 1 for frames under 256 px)")
    parser.set_defaults(func=_scoring)


def _paper_table(args: argparse.Namespace) -> None:
    run_paper_table(args.metrics, args.output, args.csv)


def _register_paper_table(subparsers) -> None:
    """Add ``hfagp paper-table``."""
    parser = subparsers.add_command(
        "paper-table",
        help="results table (mean ± std per subject and driver) from metrics.json files -> .md + .csv",
        description=paper_table.__doc__,
    )
    parser.add_argument("metrics", nargs="+", metavar="METRICS_JSON", help="metrics.json files of `hfagp evaluate`")
    parser.add_argument("-o", "--output", required=True, help="Markdown table, e.g. results/paper_table.md")
    parser.add_argument("--csv", default=None, help="CSV table, e.g. results/paper_table.csv")
    parser.set_defaults(func=_paper_table)


def _register_view(subparsers) -> None:
    """Add ``hfagp view`` (not a pipeline rule: an interactive server)."""
    from hfagp.evaluate import view

    parser = subparsers.add_command(
        "view", help="live browser viewer of a trained avatar: orbit it, drive it by sliders, frames or audio",
        description=view.__doc__,
    )
    parser.add_argument("checkpoint", help="results/<subject>/driver/<kind>/checkpoint.pt")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default localhost only; 0.0.0.0 for all)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--crops", help="the subject's crops/ (default: beside the checkpoint's driver/ folder)")
    parser.add_argument("--cameras", help="cameras.parquet (default: beside driver/)")
    parser.add_argument("--split", help="split.json (default: beside driver/)")
    parser.add_argument("--expressions", help="expressions.parquet (expression avatars)")
    parser.add_argument("--audio", help="audio avatars: the wav to play (default: the subject's audio.wav)")
    parser.add_argument("--audio-features", help="audio avatars: its DeepSpeech windows (hfagp audio-features; "
                        "default: the subject's audio_features.npy)")
    parser.add_argument("--frames-table", help="frames.parquet (frame rate; default: beside driver/)")
    parser.set_defaults(func=view.run_view)
