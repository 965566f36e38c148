"""Camera paths and bookkeeping of the render stage (hfagp.evaluate.render); end to end in test_pipeline_end_to_end."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hfagp.eg3d import camera
from hfagp.evaluate.render import audio_track, generator_description, novel_labels, orbit, to_uint8, yaw_sweep


def test_yaw_sweep_spans_plus_minus_30_degrees_at_pitch_0():
    angles = yaw_sweep(7)
    assert angles[0] == (-30.0, 0.0) and angles[-1] == (30.0, 0.0) and angles[3] == (0.0, 0.0)
    labels = novel_labels(angles)
    np.testing.assert_allclose(labels[3], camera.frontal_camera_label(), atol=1e-6)
    # Every camera sits at radius 2.7 and looks at the pivot; yaw moves it toward +x.
    centres = labels[:, :16].reshape(-1, 4, 4)[:, :3, 3]
    np.testing.assert_allclose(np.linalg.norm(centres, axis=1), 2.7, atol=1e-5)
    assert centres[0, 0] < 0 < centres[-1, 0]
    np.testing.assert_allclose(np.degrees(np.arctan2(centres[:, 0], centres[:, 2])), np.linspace(-30, 30, 7), atol=1e-4)


def test_orbit_is_one_slow_turn():
    angles = np.array(orbit(8))
    np.testing.assert_allclose(angles[0], [0.0, 10.0], atol=1e-12)
    np.testing.assert_allclose(angles[2], [30.0, 0.0], atol=1e-12)
    assert np.abs(angles[:, 0]).max() == pytest.approx(30.0) and np.abs(angles[:, 1]).max() == pytest.approx(10.0)


def test_to_uint8_maps_minus_one_to_one_onto_0_255():
    import torch

    images = torch.tensor([-1.0, 0.0, 1.0, 2.0]).reshape(1, 1, 2, 2).expand(1, 3, 2, 2)
    out = to_uint8(images)
    assert out.shape == (1, 2, 2, 3) and out.dtype == np.uint8
    assert out[0, :, :, 0].ravel().tolist() == [0, 128, 255, 255]


def test_generator_description_names_the_prior():
    demo = {"generator": {"source": "reference", "record": {"kind": "demo", "checkpoint": None}}}
    assert generator_description(demo) == {"kind": "demo", "demo": True, "checkpoint": None, "fine_tuned": False}
    tuned = {"generator": {"source": "tuned", "base": {"kind": "checkpoint", "checkpoint": "eg3d.pkl"}}}
    assert generator_description(tuned) == {"kind": "checkpoint", "demo": False, "checkpoint": "eg3d.pkl", "fine_tuned": True}


def test_audio_track_starts_at_the_first_rendered_frame(tmp_path):
    table = pd.DataFrame({"index": [0, 1, 2, 3], "source_index": [0, 1, 2, 3], "timestamp": [0.0, 0.04, 0.08, 0.12],
                          "fps": 25.0, "source_fps": 25.0, "width": 8, "height": 8})
    table.to_parquet(tmp_path / "frames.parquet")
    assert audio_track("audio", "a.wav", str(tmp_path / "frames.parquet"), 2) == ("a.wav", 0.08)
    assert audio_track("expression", "a.wav", str(tmp_path / "frames.parquet"), 2) is None
    assert audio_track("audio", None, None, 2) is None


def test_check_signal_rejects_expressions_of_another_model():
    from types import SimpleNamespace

    from hfagp.errors import HfagpError
    from hfagp.evaluate.render import check_signal

    info = {"kind": "expression", "signal": {"expression_size": 10, "expression_model": "3ddfa-bfm68"}}
    check_signal(info, SimpleNamespace(expressions={0: np.zeros(10), 1: np.ones(10)}), "e.parquet")
    with pytest.raises(HfagpError, match="e.parquet.*10 coefficients"):
        check_signal(info, SimpleNamespace(expressions={0: np.zeros(76)}), "e.parquet")
    check_signal({"kind": "rgb", "signal": {}}, SimpleNamespace(expressions=None), None)
