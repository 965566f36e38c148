"""DeepSpeech front end: resampling, int16 truncation, MFCC semantics, context windows, whitening."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import require_fixture

from hfagp.audio.mfcc import context_windows, deepspeech_input, mfcc_frames, network_input, to_int16_16k, whiten

EPS_LOG = float(np.log(np.finfo(np.float64).eps))  # -36.0436533891


def test_fixture_front_end_matches_reference():
    folder = require_fixture("deepspeech", "v010_h64")
    from scipy.io import wavfile

    rate, data = wavfile.read(folder / "speech.wav")
    ref = np.load(folder / "inputs.npz")
    signal16, frames, x = deepspeech_input(data, rate)
    assert np.array_equal(signal16, ref["audio_16k_int16"])
    assert frames.shape == (305, 26)
    assert np.abs(frames - ref["mfcc_frames"]).max() <= 1e-9
    assert x.shape == (153, 494)
    assert np.abs(x - ref["mfcc_input_f64"]).max() <= 1e-9
    assert np.abs(x.astype(np.float32) - ref["mfcc_input"]).max() <= 1e-6
    # the 31 digital-silence frames take the log(eps) path
    assert np.sum(np.isclose(frames[:, 0], EPS_LOG, atol=1e-9)) == 31


def test_int16_truncation_and_wrap():
    out = to_int16_16k(np.array([1.9, -1.9, 32767.7, -32768.9, 32768.0, 0.49]), 16000)
    assert out.dtype == np.int16
    assert out.tolist() == [1, -1, 32767, -32768, -32768, 0]
    ints = np.array([5, -3], dtype=np.int16)
    assert to_int16_16k(ints, 16000).tolist() == [5, -3]


def test_resampling_length_and_content():
    rate = 22050
    t = np.arange(rate) / rate
    x = 8000 * np.sin(2 * np.pi * 440 * t)
    y = to_int16_16k(x, rate)
    assert y.shape == (16000,) and y.dtype == np.int16
    spectrum = np.abs(np.fft.rfft(y[1000:-1000].astype(float)))
    freqs = np.fft.rfftfreq(y.size - 2000, 1 / 16000)
    assert abs(freqs[np.argmax(spectrum)] - 440) < 2


def test_mfcc_frame_count_and_silence_path():
    # 1 + ceil((L - 400) / 160) frames
    assert mfcc_frames(np.zeros(16000, np.int16)).shape == (99, 26)
    assert mfcc_frames(np.zeros(401, np.int16)).shape == (2, 26)
    assert mfcc_frames(np.zeros(0, np.int16)).shape == (1, 26)
    silent = mfcc_frames(np.zeros(4000, np.int16))
    assert np.allclose(silent[:, 0], EPS_LOG, atol=1e-9)
    assert np.abs(silent[:, 1:]).max() < 1e-9  # DCT of a constant log-energy vector


def test_mfcc_energy_column_is_log_frame_power():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(4000) * 3000).astype(np.int16)
    frames = mfcc_frames(x)
    sig = x.astype(np.float64)
    emph = np.concatenate([sig[:1], sig[1:] - 0.97 * sig[:-1]])
    frame3 = emph[3 * 160: 3 * 160 + 400]
    power = np.abs(np.fft.rfft(frame3, 512)) ** 2 / 512
    assert frames[3, 0] == pytest.approx(np.log(power.sum()), rel=1e-12)


def test_context_windows_layout():
    frames = np.arange(4 * 2, dtype=float).reshape(4, 2) + 1  # T=4, F=2
    w = context_windows(frames, num_context=1)  # 3 frames per row, time-major
    assert w.shape == (4, 6)
    assert w[0].tolist() == [0, 0, 1, 2, 3, 4]
    assert w[3].tolist() == [5, 6, 7, 8, 0, 0]


def test_whitening_global_population_std():
    x = np.array([[1.0, 2.0], [3.0, 10.0]])
    y = whiten(x)
    assert y.mean() == pytest.approx(0, abs=1e-15)
    assert y.std(ddof=0) == pytest.approx(1, abs=1e-12)
    assert np.array_equal(whiten(np.full((2, 2), 3.0)), np.zeros((2, 2)))


def test_network_input_stride_two():
    rng = np.random.default_rng(1)
    mfcc = rng.standard_normal((7, 26))
    x = network_input(mfcc)
    assert x.shape == (4, 494)  # ceil(7 / 2)
    raw = context_windows(mfcc[::2])
    assert np.allclose(x, (raw - raw.mean()) / raw.std())
    # the centre frame of row 1 is MFCC frame 2
    centre = raw[1, 9 * 26: 10 * 26]
    assert np.array_equal(centre, mfcc[2])
