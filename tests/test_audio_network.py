"""DeepSpeech v0.1.0 network: conformance with TensorFlow's outputs and TF LSTM semantics."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import require_fixture

from hfagp.audio.deepspeech import DeepSpeechV010, DeepSpeechWeights, load_deepspeech

TOL = 1e-4  # fixture README: an independent float32 port should meet max abs <= 1e-4


def test_fixture_logits_and_intermediates_match_tensorflow():
    folder = require_fixture("deepspeech", "v010_h64")
    net, info = load_deepspeech(folder / "model.pb")
    assert info["sha1"] == "e200bd82d1fef80409cc527a5a1ee7f270c8efd6"
    x = np.load(folder / "inputs.npz")["mfcc_input"]
    ref = np.load(folder / "outputs.npz")
    for impl in ("loop", "torch"):
        net.rnn_impl = impl
        inter: dict = {}
        logits = net(x, inter)
        assert logits.shape == (153, 29) and logits.dtype == np.float32
        assert np.abs(logits - ref["logits"]).max() <= TOL, impl
        for key in ("layer_1", "layer_2", "layer_3", "rnn_fw", "rnn_bw", "layer_5"):
            assert np.abs(inter[key] - ref[f"tf_{key}"]).max() <= TOL, (impl, key)


def _numpy_reference(weights: DeepSpeechWeights, x: np.ndarray) -> np.ndarray:
    """Float64 forward pass written straight from the TF v0.1.0 description (gates i, j, f, o)."""
    d = {k: v.astype(np.float64) for k, v in weights.dense.items()}
    clip = lambda a: np.minimum(np.maximum(a, 0), 20.0)  # noqa: E731
    l3 = clip(clip(clip(x @ d["h1"] + d["b1"]) @ d["h2"] + d["b2"]) @ d["h3"] + d["b3"])
    outs = []
    for direction, order in (("fw", range(len(x))), ("bw", range(len(x) - 1, -1, -1))):
        kernel, bias = (a.astype(np.float64) for a in weights.lstm[direction])
        cell = kernel.shape[1] // 4
        h, c = np.zeros(cell), np.zeros(cell)
        out = np.zeros((len(x), cell))
        sig = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
        for t in order:
            z = np.concatenate([l3[t], h]) @ kernel + bias
            i, j, f, o = np.split(z, 4)
            c = c * sig(f + 1.0) + sig(i) * np.tanh(j)
            h = np.tanh(c) * sig(o)
            out[t] = h
        outs.append(out)
    l5 = clip(np.concatenate(outs, axis=1) @ d["h5"] + d["b5"])
    return l5 @ d["h6"] + d["b6"]


@pytest.mark.parametrize("impl", ["loop", "torch"])
def test_random_network_matches_numpy_reference(impl):
    rng = np.random.default_rng(3)
    net = DeepSpeechV010.random(n_hidden=16, n_cell=8, seed=5)
    # give the biases non-zero values so the gate order and forget bias matter
    h, c = 16, 8
    w = DeepSpeechWeights(
        dense={k: (rng.standard_normal(v.shape) * (3 if k.startswith("h") else 1)).astype(np.float32)
               for k, v in {"h1": np.zeros((494, h)), "b1": np.zeros(h), "h2": np.zeros((h, h)), "b2": np.zeros(h),
                            "h3": np.zeros((h, 2 * c)), "b3": np.zeros(2 * c), "h5": np.zeros((2 * c, h)),
                            "b5": np.zeros(h), "h6": np.zeros((h, 29)), "b6": np.zeros(29)}.items()},
        lstm={d: ((rng.standard_normal((3 * c, 4 * c)) * 0.3).astype(np.float32),
                  rng.standard_normal(4 * c).astype(np.float32)) for d in ("fw", "bw")},
    )
    w.dense["h1"] /= 20
    net = DeepSpeechV010(w)
    net.rnn_impl = impl
    x = rng.standard_normal((23, 494)).astype(np.float32)
    ref = _numpy_reference(w, x.astype(np.float64))
    out = net(x)
    assert np.abs(out - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())
    # reversing time must not give the same bw outputs (the direction matters)
    inter: dict = {}
    net(x[::-1].copy(), inter)
    assert not np.allclose(inter["rnn_bw"][::-1], inter["rnn_fw"])


def test_empty_and_single_step_input():
    net = DeepSpeechV010.random(n_hidden=8, n_cell=4)
    assert net(np.zeros((0, 494), np.float32)).shape == (0, 29)
    assert net(np.ones((1, 494), np.float32)).shape == (1, 29)
