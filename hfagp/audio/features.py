"""Audio features per video frame: DeepSpeech v0.1.0 logits or the offline fallback, windowed.

:func:`compute_audio_features` runs the whole stage for one input (wav or
video): front end (:mod:`hfagp.audio.mfcc`), network
(:mod:`hfagp.audio.deepspeech`) or fallback (:mod:`hfagp.audio.fallback`), then
the windows of :mod:`hfagp.audio.windows`. :func:`resolve_timing` decides the
frame rate and the number of windows from the command's options.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hfagp import __version__
from hfagp.audio import windows as W
from hfagp.audio.extract import read_audio, video_timing
from hfagp.audio.fallback import FEATURE_NAME as FALLBACK_NAME
from hfagp.audio.fallback import fallback_features
from hfagp.audio.mfcc import mfcc_frames, network_input, to_int16_16k
from hfagp.errors import HfagpError
from hfagp.logs import get_logger

log = get_logger("audio")

DEEPSPEECH_NAME = "deepspeech-v0.1.0"
FALLBACK_WARNING = "DeepSpeech model not configured: using the offline MFCC fallback features, not DeepSpeech"


@dataclass
class Timing:
    """Video frame rate, number of windows (None = all windows centred on the audio) and where they came from."""

    fps: float
    n_frames: int | None
    origin: str


@dataclass
class AudioFeatures:
    """Result of :func:`compute_audio_features`."""

    windows: np.ndarray  # (N, 16, D) float64
    frames50: np.ndarray  # (T, D) float32: logits or fallback rows at 50 fps
    meta: dict = field(default_factory=dict)


def read_frames_table(path: str | Path) -> tuple[float, int]:
    """(fps, number of rows) of a ``frames.parquet``; its ``fps`` column must be constant."""
    from hfagp.io.tables import read_frames_table as read_table

    table = read_table(path, columns=["fps"])
    if len(table) == 0:
        raise HfagpError(f"frames table {path} has no rows; the frames stage extracted no frames")
    fps = table["fps"].to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(fps)) or fps.min() <= 0 or fps.max() - fps.min() > 1e-6 * fps.max():
        raise HfagpError(f"frames table {path}: the fps column must be one positive constant, "
                         f"found values {np.unique(fps)[:5]}")
    return float(fps[0]), int(len(table))


def resolve_timing(input_path: str | Path, fps: float | None = None, n_frames: int | None = None,
                   frames_table: str | Path | None = None) -> Timing:
    """Frame rate and window count: frames table > explicit --fps/--n-frames > the input video's own."""
    if frames_table is not None:
        if fps is not None or n_frames is not None:
            raise HfagpError("--frames-table gives both fps and the frame count; do not combine it with "
                             "--fps or --n-frames")
        table_fps, rows = read_frames_table(frames_table)
        return Timing(table_fps, rows, f"frames table {frames_table}")
    if n_frames is not None and n_frames < 0:
        raise HfagpError(f"--n-frames must be >= 0, got {n_frames}")
    if fps is not None and not fps > 0:
        raise HfagpError(f"--fps must be positive, got {fps}")
    video = video_timing(input_path)
    if video is None:
        if fps is None:
            raise HfagpError(f"{input_path} has no video stream: pass --fps (and optionally --n-frames) or "
                             f"--frames-table to say which video frames the windows are for")
        origin = "AD-NeRF recipe (25 fps, no frame count)" if fps == 25 and n_frames is None else "--fps"
        return Timing(float(fps), n_frames, origin)
    video_fps, count = video
    return Timing(float(fps) if fps is not None else video_fps,
                  n_frames if n_frames is not None else count,
                  f"video stream of {input_path}")


def compute_audio_features(input_path: str | Path, timing: Timing, model: str | Path | None = None,
                           network=None, model_info: dict | None = None) -> AudioFeatures:
    """Windows (N, 16, 29) for ``input_path`` (wav or media file) at ``timing``.

    ``model`` is a DeepSpeech v0.1.0 .pb (loaded here) unless an already loaded
    ``network`` (+ ``model_info``) is given; with neither, the offline MFCC
    fallback is used and a WARNING says so.
    """
    audio = read_audio(input_path)
    signal16 = to_int16_16k(audio.signal, audio.sample_rate)
    if audio.signal.size == 0:
        log.warning("the audio track of %s is empty (0 samples): the features are those of silence and every "
                    "window is zero", input_path)
    elif not np.any(signal16):
        log.warning("the audio track of %s is all silent (every sample is 0): features are still produced, "
                    "but they carry no speech", input_path)
    mfcc = mfcc_frames(signal16)
    if network is None and model is not None:
        from hfagp.audio.deepspeech import load_deepspeech

        network, model_info = load_deepspeech(model)
    if network is not None:
        frames50 = network(network_input(mfcc).astype(np.float32))
        feature = DEEPSPEECH_NAME
    else:
        log.warning(FALLBACK_WARNING)
        frames50 = fallback_features(mfcc)
        feature = FALLBACK_NAME
        model_info = None
    n50 = W.n_frames_50fps(audio.signal.shape[0], audio.sample_rate)
    track = W.track_50fps(frames50, n50)
    windows = W.frame_windows(track, timing.fps, timing.n_frames)
    if timing.n_frames is not None and audio.signal.size:
        video_s = timing.n_frames / timing.fps
        if abs(video_s - audio.seconds) > 0.5:
            log.warning("audio of %s lasts %.2f s but the %d video frames at %.3f fps last %.2f s: %s",
                        input_path, audio.seconds, timing.n_frames, timing.fps, video_s,
                        "windows past the audio are zeros" if video_s > audio.seconds else "the extra audio is unused")
    meta = {
        "feature": feature,
        "model": None if model_info is None else model_info.get("path"),
        "model_sha1": None if model_info is None else model_info.get("sha1"),
        "fps": timing.fps,
        "n_windows": int(windows.shape[0]),
        "window": W.WINDOW,
        "dim": int(windows.shape[2]),
        "source": str(input_path),
        "timing": timing.origin,
        "audio_seconds": audio.seconds,
        "audio_sample_rate": audio.sample_rate,
        "audio_channels": audio.channels,
        "network_frames": int(frames50.shape[0]),
        "track_rows_50fps": int(track.shape[0]),
        "dtype": str(windows.dtype),
        "hfagp_version": __version__,
    }
    if model_info is not None:
        meta["model_sizes"] = {k: model_info[k] for k in ("n_hidden", "n_hidden_3", "n_cell", "n_hidden_5")
                               if k in model_info}
    return AudioFeatures(windows=windows, frames50=np.asarray(frames50, dtype=np.float32), meta=meta)
