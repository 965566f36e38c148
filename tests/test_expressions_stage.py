"""Stages ``split`` and ``expressions`` on the demo video, and the camera/expression pose agreement."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from media import DEMO_VIDEO
from PIL import Image

from hfagp.cli import main
from hfagp.io.tables import read_expressions, read_split, write_expressions
from hfagp.preprocess.split import tail_split


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """All 120 demo frames through frames -> landmarks -> align (both pose solvers), in process."""
    out = tmp_path_factory.mktemp("expr")
    assert main(["frames", DEMO_VIDEO, "-o", str(out / "frames"), "--table", str(out / "frames.parquet")]) == 0
    assert main(["landmarks", str(out / "frames"), "--frames-table", str(out / "frames.parquet"), "-o", str(out / "landmarks.parquet")]) == 0
    for solver in ("morphable", "rigid"):
        status = main(
            ["align", str(out / "frames"), "--landmarks", str(out / "landmarks.parquet"), "--crops-dir", str(out / f"crops_{solver}"),
             "--cameras", str(out / f"cameras_{solver}.parquet"), "--dataset-json", str(out / f"dataset_{solver}.json"),
             "--pose-solver", solver, "--threads", "2"]
        )
        assert status == 0
    status = main(
        ["expressions", "--cameras", str(out / "cameras_morphable.parquet"), "-o", str(out / "expressions.parquet"),
         "--qc", str(out / "qc.png"), "--crops-dir", str(out / "crops_morphable")]
    )
    assert status == 0
    return out


def test_expressions_follow_the_mouth(demo):
    table, coefficients, metadata = read_expressions(demo / "expressions.parquet")
    cameras = pd.read_parquet(demo / "cameras_morphable.parquet")
    assert table.frame.tolist() == cameras.frame.tolist()
    assert coefficients.shape == (len(cameras), 10)
    assert metadata["model"] == "3ddfa-bfm68" and len(metadata["identity"]) == 40 and metadata["size"] == 10
    landmarks = np.stack(cameras.landmarks_crop.to_numpy()).reshape(-1, 68, 2)
    inner_lip = np.linalg.norm(landmarks[:, 66] - landmarks[:, 62], axis=1)
    assert inner_lip.max() > 3 * inner_lip.min(), "the demo man opens his mouth"
    correlations = [abs(np.corrcoef(coefficients[:, k], inner_lip)[0, 1]) for k in range(10)]
    assert max(correlations) > 0.8, correlations
    design = np.c_[coefficients, np.ones(len(coefficients))]
    residual = inner_lip - design @ np.linalg.lstsq(design, inner_lip, rcond=None)[0]
    assert 1 - residual.var() / inner_lip.var() > 0.9, "the 10 coefficients explain the mouth opening"
    # A plausible face: identity within a few prior standard deviations (the per-frame identity
    # prior at work; without it the demo's identity reached 15 std), expressions up to the wide-open
    # mouth at the end of the clip (about 5 std).
    assert np.abs(metadata["identity"]).max() < 4 and np.abs(coefficients).max() < 8


def test_fit_residual_is_small_and_flags_bad_frames(demo):
    table, _, _ = read_expressions(demo / "expressions.parquet")
    rigid = pd.read_parquet(demo / "cameras_rigid.parquet")
    assert table.fit_residual.median() < 6.0
    # The morphable fit explains the landmarks better than the rigid mean face.
    assert table.fit_residual.median() < 0.7 * rigid.reprojection_error.median()


def test_one_pose_source_for_cameras_and_expressions(demo):
    table, _, _ = read_expressions(demo / "expressions.parquet")
    morphable = pd.read_parquet(demo / "cameras_morphable.parquet")
    rigid = pd.read_parquet(demo / "cameras_rigid.parquet")
    # Expressions and cameras come from one fit: only the temporal smoothing of the coefficients moves the pose.
    assert table.pose_difference.max() < 1.0
    np.testing.assert_allclose(table.yaw, morphable.yaw, atol=1.0)
    # The rigid solve (mean face only) agrees with the joint fit within a few degrees.
    labels_m = np.stack(morphable.label.to_numpy())[:, :16].reshape(-1, 4, 4)[:, :3, :3]
    labels_r = np.stack(rigid.label.to_numpy())[:, :16].reshape(-1, 4, 4)[:, :3, :3]
    trace = np.einsum("fij,fij->f", labels_m, labels_r)
    angle = np.degrees(np.arccos(np.clip((trace - 1) / 2, -1, 1)))
    assert np.median(angle) < 5.0 and angle.max() < 12.0
    # Crops do not depend on the pose solver.
    for name in morphable.name[:3]:
        a = np.asarray(Image.open(demo / "crops_morphable" / name))
        b = np.asarray(Image.open(demo / "crops_rigid" / name))
        np.testing.assert_array_equal(a, b)


def test_qc_image(demo):
    with Image.open(demo / "qc.png") as image:
        assert image.size[0] == 4 * 256 and image.size[1] == 2 * 256 + 160


def test_expression_table_round_trip_and_errors(tmp_path):
    table = pd.DataFrame({"frame": [0, 1], "flag": ["ok", "ok"], "expression": [np.arange(3.0), np.ones(3)]})
    write_expressions(tmp_path / "e.parquet", table, {"model": "test"})
    back, coefficients, metadata = read_expressions(tmp_path / "e.parquet")
    np.testing.assert_array_equal(coefficients, [[0, 1, 2], [1, 1, 1]])
    assert metadata == {"model": "test", "size": 3}
    with pytest.raises(ValueError, match="different lengths"):
        write_expressions(tmp_path / "f.parquet", table.assign(expression=[np.zeros(3), np.zeros(4)]), {"model": "x"})
    with pytest.raises(ValueError, match="model"):
        write_expressions(tmp_path / "f.parquet", table, {})
    assert not (tmp_path / "f.parquet").exists()
    from hfagp.errors import HfagpError

    with pytest.raises(HfagpError, match="not found.*hfagp expressions"):
        read_expressions(tmp_path / "missing.parquet")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(HfagpError, match="cannot read"):
        read_expressions(tmp_path / "bad.parquet")


def test_tail_split():
    train, test = tail_split(np.array([5, 1, 2, 3, 4, 6, 7, 8, 9, 10]), 0.2)
    assert train == [1, 2, 3, 4, 5, 6, 7, 8] and test == [9, 10]
    assert tail_split(np.array([0, 1]), 0.01) == ([0], [1])
    assert tail_split(np.array([0, 1, 2]), 0.99) == ([0], [1, 2])
    with pytest.raises(ValueError):
        tail_split(np.array([3]), 0.2)


def test_split_stage_on_demo(demo, tmp_path):
    assert main(["split", "--cameras", str(demo / "cameras_morphable.parquet"), "-o", str(tmp_path / "split.json")]) == 0
    split = read_split(tmp_path / "split.json")
    frames = pd.read_parquet(demo / "cameras_morphable.parquet").frame.tolist()
    assert split["train"] + split["test"] == frames
    assert len(split["test"]) == int(np.ceil(0.2 * len(frames)))
    assert "last 0.2" in json.loads((tmp_path / "split.json").read_text())["source"]
    # Too few frames: a clear error, no file.
    cameras = pd.read_parquet(demo / "cameras_morphable.parquet").iloc[:1]
    cameras.to_parquet(tmp_path / "one.parquet")
    assert main(["split", "--cameras", str(tmp_path / "one.parquet"), "-o", str(tmp_path / "s2.json")]) == 2
    assert not (tmp_path / "s2.json").exists()
