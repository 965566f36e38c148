"""The DeepSpeech v0.1.0 front end as AD-NeRF runs it (spec A, "Audio input" to "Input windows").

1. :func:`to_int16_16k`: channel 0 of the audio; if the rate is not 16 kHz,
   ``resampy.resample(x.astype(float64), sr, 16000)`` (kaiser_best), then the
   cast to int16 by truncation toward zero (out-of-range values wrap as a C
   cast does; a warning counts them).
2. :func:`mfcc_frames`: ``python_speech_features.mfcc(signal, 16000, numcep=26)``
   with every other setting at its v0.6 default (25 ms rectangular frames every
   10 ms, nfft 512, 26 mel filters 0-8000 Hz, pre-emphasis 0.97, lifter 22,
   coefficient 0 replaced by the log frame energy). Frames of digital silence
   take the library's ``log(eps)`` path (zero energies become float64 eps).
3. :func:`network_input`: keep every 2nd frame (50 fps), pad 9 zero frames on
   each side, take 19-frame contexts flattened time-major (494 values), then
   whiten the whole (T, 494) array with one scalar mean and population std.
"""

from __future__ import annotations

import numpy as np

from hfagp.logs import get_logger

log = get_logger("audio")

SAMPLE_RATE = 16000
NUM_CEPSTRUM = 26
NUM_CONTEXT = 9


def to_int16_16k(signal: np.ndarray, sample_rate: int) -> np.ndarray:
    """Resample to 16 kHz with resampy (kaiser_best) when needed and cast to int16 (truncation).

    ``signal`` is 1-D and on the int16 scale (see :func:`hfagp.audio.extract.read_audio`).
    """
    signal = np.asarray(signal)
    if signal.ndim != 1:
        raise ValueError(f"expected a 1-D signal, got shape {signal.shape}")
    if sample_rate != SAMPLE_RATE and signal.size:
        import resampy

        signal = resampy.resample(signal.astype(np.float64), sample_rate, SAMPLE_RATE)
    if signal.dtype == np.int16:
        return signal.copy()
    values = np.asarray(signal, dtype=np.float64)
    truncated = np.trunc(values)
    out_of_range = int(np.count_nonzero((truncated > 32767) | (truncated < -32768)))
    if out_of_range:
        log.warning("%d samples exceed the int16 range after resampling; they wrap around as in AD-NeRF's "
                    "astype(int16)", out_of_range)
    # int64 then int16: truncation toward zero, then modulo-2**16 wrap-around (a C cast)
    return truncated.astype(np.int64).astype(np.int16)


def mfcc_frames(signal16: np.ndarray) -> np.ndarray:
    """python_speech_features MFCC (numcep 26, v0.6 defaults) of a 16 kHz int16 signal: (n_frames, 26) float64.

    An empty signal is treated as one sample of silence (the library needs at
    least one sample; it then yields one all-silent frame).
    """
    from python_speech_features import mfcc

    signal16 = np.asarray(signal16)
    if signal16.size == 0:
        signal16 = np.zeros(1, dtype=np.int16)
    return np.asarray(mfcc(signal=signal16, samplerate=SAMPLE_RATE, numcep=NUM_CEPSTRUM), dtype=np.float64)


def context_windows(frames: np.ndarray, num_context: int = NUM_CONTEXT) -> np.ndarray:
    """(T, F) -> (T, (2*num_context+1)*F): each row is frames t-9..t+9 (zeros outside), flattened time-major."""
    frames = np.asarray(frames, dtype=np.float64)
    steps, width = frames.shape
    span = 2 * num_context + 1
    padded = np.concatenate([np.zeros((num_context, width)), frames, np.zeros((num_context, width))])
    view = np.lib.stride_tricks.sliding_window_view(padded, (span, width))[:, 0]  # (T, span, F)
    return np.ascontiguousarray(view.reshape(steps, span * width))


def whiten(x: np.ndarray) -> np.ndarray:
    """Global scalar whitening ``(x - mean) / std`` (population std); a constant array is only centred."""
    mean = np.mean(x)
    std = np.std(x)
    centred = x - mean
    return centred / std if std > 0 else centred


def network_input(mfcc: np.ndarray) -> np.ndarray:
    """DeepSpeech input (T, 494) float64 from the 100 fps MFCC frames: ``::2``, 19-frame context, whitening."""
    return whiten(context_windows(np.asarray(mfcc)[::2]))


def deepspeech_input(signal: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full front end: returns (int16 16 kHz signal, MFCC frames (n, 26), network input (ceil(n/2), 494) float64)."""
    signal16 = to_int16_16k(signal, sample_rate)
    frames = mfcc_frames(signal16)
    return signal16, frames, network_input(frames)
