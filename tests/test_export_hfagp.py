"""``hfagp export --format hfagp``: our artifacts back into HFA-GP's layout; import -> export -> import is exact."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from dataset_layouts import opencv_pose, random_image, to_opengl, write_hfagp

from hfagp.cli import main
from hfagp.datasets.cli import run_import
from hfagp.datasets.export import export_hfagp
from hfagp.eg3d import camera
from hfagp.errors import HfagpError
from hfagp.io import atomic
from hfagp.io.images import read_rgb, write_rgb
from hfagp.io.tables import read_expressions, write_split

ARTIFACTS = ("frames.parquet", "cameras.parquet", "dataset.json", "split.json", "expressions.parquet",
             "audio_features.npy")


def assert_same_artifacts(a, b):
    """Every artifact of subject folder ``a`` equals ``b``'s (images pixel by pixel, tables cell by cell)."""
    for folder in ("frames", "crops"):
        names = sorted(p.name for p in (a / folder).iterdir())
        assert names == sorted(p.name for p in (b / folder).iterdir())
        for name in names:
            assert np.array_equal(read_rgb(a / folder / name), read_rgb(b / folder / name))
    for name in ARTIFACTS:
        assert (a / name).exists() == (b / name).exists(), name
        if not (a / name).exists():
            continue
        if name.endswith(".json"):
            assert json.loads((a / name).read_text()) == json.loads((b / name).read_text())
        elif name.endswith(".npy"):
            assert np.array_equal(np.load(a / name), np.load(b / name))
        elif name == "expressions.parquet":
            ta, ca, ma = read_expressions(a / name)
            tb, cb, mb = read_expressions(b / name)
            assert np.array_equal(ca, cb) and ta.frame.tolist() == tb.frame.tolist()
            assert ma["model"] == mb["model"] and ma["size"] == mb["size"]
        else:
            pd.testing.assert_frame_equal(pd.read_parquet(a / name), pd.read_parquet(b / name))


@pytest.mark.parametrize("mode", ["3dmm", "audio"])
def test_import_export_import_is_identical(tmp_path, mode):
    written = write_hfagp(tmp_path / "ds", mode=mode, counts={"train": 2, "test": 2, "test2": 1})
    first, exported, second = tmp_path / "S1", tmp_path / "export", tmp_path / "S2"
    run_import("hfagp", tmp_path / "ds", first)
    assert main(["export", "--format", "hfagp", str(first), "-o", str(exported)]) == 0
    run_import("hfagp", exported, second)
    assert_same_artifacts(first, second)

    # the exported folder is the original layout: same names, labels, ids/expressions
    for folder in ("train", "test", "test2"):
        original = json.loads((tmp_path / "ds" / folder / "cropped_images" / "test.json").read_text())["labels"]
        again = json.loads((exported / folder / "cropped_images" / "test.json").read_text())["labels"]
        assert sorted(original) == sorted(again)
    for k, name in enumerate(written.names):
        assert np.array_equal(read_rgb(exported / name), written.images[k])
    train = json.loads((exported / "transforms_train.json").read_text())
    val = json.loads((exported / "transforms_val.json").read_text())
    assert len(train["frames"]) == 2 and len(val["frames"]) == 2
    assert len(json.loads((exported / "transforms_test.json").read_text())["frames"]) == 1
    if mode == "3dmm":
        assert [f["file_path"] for f in train["frames"]] == [f"./train/img_{n:05d}" for n in (1000, 1003)]
        assert np.allclose([f["expression"] for f in train["frames"]], written.expressions[:2])
        assert not (exported / "aud.npy").exists()
    else:
        ids = [f["img_id"] for f in train["frames"]]
        assert ids == sorted(written.ids[:2]) and [f["aud_id"] for f in train["frames"]] == ids
        aud = np.load(exported / "aud.npy")
        for k, img_id in enumerate(written.ids):
            assert np.array_equal(aud[img_id], written.aud[written.aud_ids[k]])
    # transform_matrix: the label's pose in NeRF/OpenGL axes
    first_k = written.ids.index(train["frames"][0]["img_id"]) if mode == "audio" else 0
    assert np.allclose(train["frames"][0]["transform_matrix"], to_opengl(written.poses[first_k]))
    assert train["intrinsics"][0] == pytest.approx(camera.FOCAL_NORMALISED * 512) and train["cx"] == 256


def _pipeline_subject(root, frames=5):
    """A subject as the video pipeline leaves it: crops, cameras, split (no source names)."""
    rng = np.random.default_rng(3)
    rows = []
    with atomic.atomic_directory(root / "crops") as tmp:
        for f in range(frames):
            write_rgb(tmp / f"{f:06d}.png", random_image(rng, 512, 512))
            rows.append({"frame": f, "name": f"{f:06d}.png", "flag": "ok", "label": camera.camera_label(opencv_pose(f))})
    atomic.write_parquet(root / "cameras.parquet", pd.DataFrame(rows))
    write_split(root / "split.json", [0, 1, 2], [3, 4], "last 40% of frames")


def test_export_of_a_pipeline_subject(tmp_path):
    _pipeline_subject(tmp_path / "S")
    export_hfagp(tmp_path / "S", tmp_path / "out")
    labels = json.loads((tmp_path / "out" / "test" / "cropped_images" / "test.json").read_text())["labels"]
    assert [n for n, _ in labels] == ["000003.png", "000004.png"]
    assert np.allclose(labels[1][1], camera.camera_label(opencv_pose(4)))
    val = json.loads((tmp_path / "out" / "transforms_val.json").read_text())
    assert [f["file_path"] for f in val["frames"]] == ["./test/000003", "./test/000004"]
    assert "expression" not in val["frames"][0] and "img_id" not in val["frames"][0]
    assert json.loads((tmp_path / "out" / "transforms_test.json").read_text()) == val  # no test2: the test frames
    assert not (tmp_path / "out" / "test2").exists()
    # and it imports back with the same labels
    run_import("hfagp", tmp_path / "out", tmp_path / "S2")
    back = pd.read_parquet(tmp_path / "S2" / "cameras.parquet")
    assert np.allclose(np.stack(back.label), [camera.camera_label(opencv_pose(f)) for f in range(5)])


def test_export_errors(tmp_path):
    _pipeline_subject(tmp_path / "S")
    write_split(tmp_path / "S" / "split.json", [0, 1, 2], [3, 4, 7], "test")
    with pytest.raises(HfagpError, match=r"cameras.parquet has no camera for frames \[7\]"):
        export_hfagp(tmp_path / "S", tmp_path / "out")
    write_split(tmp_path / "S" / "split.json", [0, 1, 2], [3, 4], "test")
    (tmp_path / "S" / "crops" / "000001.png").unlink()
    with pytest.raises(HfagpError, match=r"crop .*000001.png is missing"):
        export_hfagp(tmp_path / "S", tmp_path / "out")
    np.save(tmp_path / "S" / "audio_features.npy", np.zeros((3, 16, 29)))
    (tmp_path / "S" / "split.json").unlink()
    with pytest.raises(HfagpError, match=r"split.json not found"):
        export_hfagp(tmp_path / "S", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert main(["export", "--format", "hfagp", str(tmp_path / "nope"), "-o", str(tmp_path / "out")]) == 2
