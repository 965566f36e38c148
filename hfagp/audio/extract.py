"""Reading audio from wav and media files, and writing 16 kHz mono int16 wavs.

- ``.wav`` files are read with ``scipy.io.wavfile`` (as AD-NeRF does). Integer
  PCM other than int16 and float wavs are first brought to the int16 scale
  (uint8: ``(x-128)*256``, int32: ``x/65536``, float: ``x*32768``); int16 is used
  unchanged, which is the case AD-NeRF's ffmpeg-made wavs are in.
- Any other file (video or audio container) is decoded with PyAV (no system
  ffmpeg): the **first audio stream**, resampled by libswresample to 16 kHz
  signed 16-bit (what ``ffmpeg -i VIDEO -f wav -ar 16000`` does in AD-NeRF's
  step 0).
- Multi-channel audio: channel 0 only, as AD-NeRF uses it, so ``audio.wav``
  and features computed straight from the video agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hfagp.errors import HfagpError
from hfagp.io.atomic import atomic_path
from hfagp.logs import get_logger

log = get_logger("audio")

TARGET_RATE = 16000
WAV_SUFFIXES = {".wav", ".wave"}


@dataclass
class Audio:
    """A decoded audio track: ``signal`` is channel 0 (1-D, int16 or on the int16 scale)."""

    signal: np.ndarray
    sample_rate: int
    channels: int
    source: str

    @property
    def seconds(self) -> float:
        return self.signal.shape[0] / float(self.sample_rate) if self.sample_rate else 0.0


def no_audio_message(path: str | Path) -> str:
    """Error text for a media file without an audio stream."""
    return (
        f"{path} has no audio stream. Set subjects.<name>.audio in config.yaml to a separate audio or video "
        f"file with the subject's speech (or pass a wav/video with audio to hfagp audio-features)."
    )


def _to_int16_scale(data: np.ndarray) -> np.ndarray:
    """Bring wav samples of any scipy dtype to int16 (int16 input) or the int16 scale (float64)."""
    if data.dtype == np.int16:
        return data
    if data.dtype == np.uint8:
        return (data.astype(np.float64) - 128.0) * 256.0
    if data.dtype == np.int32:
        return data.astype(np.float64) / 65536.0
    if data.dtype == np.int64:
        return data.astype(np.float64) / 2.0**48
    if data.dtype.kind == "f":
        return data.astype(np.float64) * 32768.0
    raise HfagpError(f"unsupported wav sample type {data.dtype}")


def read_wav(path: str | Path) -> Audio:
    """Read a wav with scipy: channel 0, int16 scale. Raises HfagpError when unreadable."""
    import warnings

    from scipy.io import wavfile

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", wavfile.WavFileWarning)
            rate, data = wavfile.read(str(path))
    except Exception as err:  # scipy raises ValueError, EOFError, OSError, even UnboundLocalError on bad headers
        raise HfagpError(f"cannot read wav file {path}: {type(err).__name__}: {err}; the file is corrupt or "
                         f"not a PCM/float wav") from None
    channels = 1 if data.ndim == 1 else int(data.shape[1])
    if data.ndim > 1:
        data = data[:, 0]
    return Audio(signal=_to_int16_scale(np.asarray(data)), sample_rate=int(rate), channels=channels, source=str(path))


def _open_container(path: str | Path):
    import av

    try:
        return av.open(str(path))
    except av.FFmpegError as err:
        raise HfagpError(f"cannot open {path} with PyAV/FFmpeg: {err}; the file is corrupt or its format is "
                         f"not supported") from None


def decode_audio(path: str | Path, rate: int = TARGET_RATE) -> Audio:
    """Decode the first audio stream of a media file with PyAV to ``rate`` Hz int16, channel 0."""
    import av

    container = _open_container(path)
    with container:
        if not container.streams.audio:
            raise HfagpError(no_audio_message(path))
        stream = container.streams.audio[0]
        channels = int(stream.codec_context.channels or 1)
        resampler = av.AudioResampler(format="s16p", layout=None, rate=rate)
        chunks: list[np.ndarray] = []

        def keep(frames) -> None:
            for frame in frames:
                if frame.samples:
                    chunks.append(frame.to_ndarray()[0].astype(np.int16, copy=True))

        try:
            for frame in container.decode(stream):
                keep(resampler.resample(frame))
            keep(resampler.resample(None))
        except av.FFmpegError as err:
            raise HfagpError(f"cannot decode the audio of {path}: {err}; the file is corrupt") from None
    signal = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
    return Audio(signal=signal, sample_rate=rate, channels=channels, source=str(path))


def is_wav(path: str | Path) -> bool:
    """True for files that start with a RIFF/WAVE header (or are named .wav)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
    except OSError as err:
        raise HfagpError(f"cannot read {path}: {err}") from None
    return (head[:4] in (b"RIFF", b"RIFX") and head[8:12] == b"WAVE") or path.suffix.lower() in WAV_SUFFIXES


def read_audio(path: str | Path) -> Audio:
    """Channel 0 of a wav (scipy, native rate) or of a media file's first audio stream (PyAV, 16 kHz)."""
    path = Path(path)
    if not path.is_file():
        raise HfagpError(f"audio input not found: {path}")
    if path.stat().st_size == 0:
        raise HfagpError(f"{path} is an empty file (0 bytes); it is corrupt or was not written completely")
    if is_wav(path):
        return read_wav(path)
    return decode_audio(path)


def video_timing(path: str | Path) -> tuple[float, int] | None:
    """(fps, number of decoded frames) of the first video stream, or None for a file without video."""
    path = Path(path)
    if is_wav(path):
        return None
    import av

    from hfagp.io.video import stream_frame_rate

    container = _open_container(path)
    with container:
        if not container.streams.video:
            return None
        stream = container.streams.video[0]
        rate = stream_frame_rate(stream)
        if not rate:
            raise HfagpError(f"{path}: the video stream has no frame rate; pass --fps")
        count = 0
        try:
            for _ in container.decode(stream):
                count += 1
        except av.FFmpegError as err:
            raise HfagpError(f"cannot decode the video of {path}: {err}; the file is corrupt") from None
    return rate, count


def write_wav(path: str | Path, signal: np.ndarray, rate: int = TARGET_RATE) -> None:
    """Atomically write a mono int16 wav."""
    from scipy.io import wavfile

    signal = np.asarray(signal)
    if signal.dtype != np.int16:
        raise ValueError(f"write_wav expects int16 samples, got {signal.dtype}")
    with atomic_path(path) as tmp:
        wavfile.write(str(tmp), rate, signal)


def extract_audio(source: str | Path, output: str | Path) -> Audio:
    """Write the first audio stream of ``source`` as a 16 kHz mono (channel 0) int16 wav at ``output``.

    A wav input at another rate is resampled with resampy (kaiser_best) as the
    feature front end does; a media file is decoded and resampled by PyAV.
    """
    from hfagp.audio.mfcc import to_int16_16k

    audio = read_audio(source)
    signal = to_int16_16k(audio.signal, audio.sample_rate)
    if signal.size == 0:
        log.warning("the audio track of %s is empty (0 samples); writing an empty wav", source)
    elif not np.any(signal):
        log.warning("the audio track of %s is all silent (every sample is 0)", source)
    write_wav(output, signal, TARGET_RATE)
    log.info("wrote %s: %.2f s at %d Hz mono (channel 0 of %d) from %s",
             output, signal.size / TARGET_RATE, TARGET_RATE, audio.channels, source)
    return Audio(signal=signal, sample_rate=TARGET_RATE, channels=1, source=str(source))
