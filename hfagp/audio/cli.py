"""``hfagp audio-extract`` and ``hfagp audio-features``.

Usage::

    hfagp audio-extract VIDEO -o results/S/audio.wav
    hfagp audio-features INPUT --deepspeech deepspeech-0_1_0-b90017e8.pb --fps 25 -o aud.npy
    hfagp audio-features results/S/audio.wav --frames-table results/S/frames.parquet \\
        [--deepspeech MODEL.pb] -o results/S/audio_features.npy [--logits-out logits.npy]

Without ``--deepspeech`` the offline MFCC fallback (not DeepSpeech) is written
and labelled as such. Every run writes ``<output>.json`` describing the array.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hfagp.errors import HfagpError
from hfagp.logs import get_logger

log = get_logger("audio")


def _resolve_model(value: str | None) -> Path | None:
    """The --deepspeech path (``package:`` allowed); a missing file gives the download instructions."""
    if value is None:
        return None
    from hfagp.audio.deepspeech import missing_model_message
    from hfagp.io.paths import resolve_input

    try:
        return resolve_input(value, what="DeepSpeech model")
    except HfagpError:
        raise HfagpError(missing_model_message(value)) from None


def cmd_audio_extract(args) -> None:
    """Write the first audio stream of a video as 16 kHz mono int16."""
    from hfagp.audio.extract import extract_audio
    from hfagp.io.paths import resolve_input

    extract_audio(resolve_input(args.input, what="video/audio input"), args.output)


def cmd_audio_features(args) -> None:
    """Compute per-video-frame audio feature windows and their sidecar JSON."""
    from hfagp.audio.features import compute_audio_features, resolve_timing
    from hfagp.io.atomic import save_npy, write_json
    from hfagp.io.paths import resolve_input

    source = resolve_input(args.input, what="audio input")
    model = _resolve_model(args.deepspeech)
    from hfagp.runtime import setup_torch

    setup_torch(args.threads)  # DeepSpeech's LSTM runs tanh, one of MKL's vector-math routines
    timing = resolve_timing(source, fps=args.fps, n_frames=args.n_frames, frames_table=args.frames_table)
    result = compute_audio_features(source, timing, model=model)
    result.meta["source"] = str(args.input)
    if args.logits_out:
        save_npy(args.logits_out, result.frames50)
    save_npy(args.output, result.windows)
    write_json(f"{args.output}.json", result.meta)
    log.info("wrote %s: %s %s windows (%s at %.3f fps; %s)", args.output, result.meta["feature"],
             tuple(result.windows.shape), "frame count" if timing.n_frames is not None else "all windows",
             timing.fps, timing.origin)


def register(subparsers) -> None:
    """Add the audio sub-commands to the ``hfagp`` parser."""
    p = subparsers.add_command(
        "audio-extract",
        formatter_class=argparse.HelpFormatter,  # one-paragraph descriptions: let argparse wrap them
        help="write a video's first audio stream as a 16 kHz mono int16 wav",
        description="Decode the first audio stream (PyAV, no system ffmpeg), resample to 16 kHz, keep "
                    "channel 0 (as AD-NeRF does) and write an int16 wav.",
    )
    p.add_argument("input", metavar="VIDEO", help="video or audio file (a package: path is allowed)")
    p.add_argument("-o", "--output", required=True, help="output wav path")
    p.set_defaults(func=cmd_audio_extract)

    p = subparsers.add_command(
        "audio-features",
        formatter_class=argparse.HelpFormatter,  # one-paragraph descriptions: let argparse wrap them
        help="DeepSpeech v0.1.0 windows (N,16,29) per video frame (AD-NeRF aud.npy)",
        description="DeepSpeech v0.1.0 logits computed in PyTorch from the frozen .pb, windowed per video "
                    "frame: window k is centred at k/fps s and holds the 16 50-fps rows round(50k/fps)-8 .. +7. "
                    "--fps 25 without a frame count reproduces AD-NeRF's aud.npy. Without --deepspeech the "
                    "offline MFCC fallback (not DeepSpeech) is used.",
    )
    p.add_argument("input", metavar="INPUT", help="wav or video/audio file (a package: path is allowed)")
    p.add_argument("--deepspeech", metavar="MODEL.pb",
                   help="frozen DeepSpeech v0.1.0 graph (deepspeech-0_1_0-b90017e8.pb); omit for the fallback")
    p.add_argument("--fps", type=float, help="video frame rate the windows are for")
    p.add_argument("--n-frames", type=int, help="number of windows (video frames); default: all windows "
                   "centred on the audio (for a video input: its frame count)")
    p.add_argument("--frames-table", metavar="PARQUET",
                   help="frames.parquet: its constant fps column and row count give --fps and --n-frames")
    p.add_argument("-o", "--output", required=True, help="output .npy (N,16,29) float64; <output>.json is "
                   "written beside it")
    p.add_argument("--logits-out", metavar="NPY", help="also save the 50 fps rows (T,29) float32")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p.set_defaults(func=cmd_audio_features)
