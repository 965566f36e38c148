"""``hfagp import --format nerface``: frames, expressions, split and source cameras from a NeRFace dataset."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from dataset_layouts import write_image, write_nerface

from hfagp.cli import main
from hfagp.datasets.cli import run_import
from hfagp.datasets.writer import read_parquet_metadata
from hfagp.errors import HfagpError
from hfagp.io.images import read_rgb
from hfagp.io.tables import read_expressions, read_split


def test_nerface_import_round_trips_every_field(tmp_path):
    written = write_nerface(tmp_path / "ds")
    out = tmp_path / "results" / "S"
    assert main(["import", "--format", "nerface", str(tmp_path / "ds"), "-o", str(out)]) == 0

    # frames: numbered in order train, val, test, each in file order; pixels unchanged
    frames = pd.read_parquet(out / "frames.parquet")
    assert frames["index"].tolist() == list(range(6))
    assert frames.source_name.tolist() == written.names
    assert frames.source_split.tolist() == ["train", "train", "train", "val", "test", "test"]
    assert np.allclose(frames.timestamp, np.arange(6) / 25.0) and set(frames.fps) == {25.0}
    assert set(frames.width) == {64} and set(frames.height) == {48}
    assert sorted(p.name for p in (out / "frames").iterdir()) == [f"{i:06d}.png" for i in range(6)]
    for i, image in enumerate(written.images):
        assert np.array_equal(read_rgb(out / "frames" / f"{i:06d}.png"), image)

    table, coefficients, meta = read_expressions(out / "expressions.parquet")
    assert table.frame.tolist() == list(range(6)) and set(table.flag) == {"imported"}
    assert meta["model"] == "nerface76" and meta["size"] == 76 and "transforms_train.json" in meta["source"]
    assert np.allclose(coefficients, np.stack(written.expressions))

    split = read_split(out / "split.json")
    assert split["train"] == [0, 1, 2] and split["test"] == [4, 5] and split["val"] == [3]
    assert "transforms_test.json" in split["source"]

    # cameras: the OpenGL c2w in the file comes back as the OpenCV pose it was made from
    cameras = pd.read_parquet(out / "source_cameras.parquet")
    assert cameras.frame.tolist() == list(range(6))
    for i, pose in enumerate(written.poses):
        assert np.allclose(np.asarray(cameras.cam2world_opencv[i]).reshape(4, 4), pose)
        assert np.allclose(cameras.intrinsics_normalised[i], [70 / 64, 0, 0.48, 0, 72 / 48, 0.52, 0, 0, 1])
        assert np.allclose(cameras.bbox[i], written.boxes[i])
    note = read_parquet_metadata(out / "source_cameras.parquet")
    assert "NOT EG3D" in note["note"] and note["format"] == "nerface"

    manifest = json.loads((out / "import.json").read_text())
    assert manifest["format"] == "nerface" and manifest["frames"] == 6
    assert manifest["fps"] == 25.0 and "default" in manifest["fps_origin"]
    assert not (out / "crops").exists() and not (out / "cameras.parquet").exists()


def test_fps_option_and_camera_angle_fallback(tmp_path):
    write_nerface(tmp_path / "ds", counts={"train": 2}, intrinsics=None, camera_angle_x=0.8)
    out = tmp_path / "S"
    manifest = run_import("nerface", tmp_path / "ds", out, fps=30.0)
    assert manifest["fps_origin"] == "--fps"
    frames = pd.read_parquet(out / "frames.parquet")
    assert np.allclose(frames.timestamp, [0, 1 / 30]) and set(frames.fps) == {30.0}
    focal = 0.5 * 64 / np.tan(0.4)
    intrinsics = pd.read_parquet(out / "source_cameras.parquet").intrinsics_normalised[0]
    assert np.allclose(intrinsics, [focal / 64, 0, 0.5, 0, focal / 48, 0.5, 0, 0, 1])
    assert read_split(out / "split.json")["test"] == []


def test_other_artifacts_in_the_output_folder_are_kept(tmp_path):
    write_nerface(tmp_path / "ds", counts={"train": 2})
    out = tmp_path / "S"
    (out / "frames").mkdir(parents=True)
    (out / "frames" / "000099.png").write_bytes(b"old")
    (out / "notes.txt").write_text("mine")
    run_import("nerface", tmp_path / "ds", out)
    assert (out / "notes.txt").read_text() == "mine"
    # frames/ is replaced as a whole
    assert sorted(p.name for p in (out / "frames").iterdir()) == ["000000.png", "000001.png"]
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []


def _edit(path, change):
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda ds: (ds / "transforms_val.json").write_text('{"frames": [}'), r"transforms_val.json is not valid JSON"),
        (lambda ds: _edit(ds / "transforms_train.json", lambda m: m["frames"][1].pop("transform_matrix")),
         r"transforms_train.json \(frames\[1\]\) lacks the key 'transform_matrix'"),
        (lambda ds: _edit(ds / "transforms_train.json", lambda m: m.pop("frames")),
         r"transforms_train.json lacks the key 'frames'"),
        (lambda ds: (ds / "test" / "f_0005.png").unlink(),
         r"image .*test/f_0005.png listed in .*transforms_test.json is missing; restore"),
        (lambda ds: _edit(ds / "transforms_test.json", lambda m: m["frames"][0].update(expression=[0.0] * 50)),
         r"expression vectors have different sizes \(\[50, 76\]\).*transforms files"),
        (lambda ds: _edit(ds / "transforms_val.json", lambda m: m["frames"][0].pop("expression")),
         r"val/f_0003.png \(val transforms file\) has no 'expression'"),
        (lambda ds: (ds / "transforms_train.json").unlink(), r"transforms_train.json not found"),
        (lambda ds: [_edit(ds / f"transforms_{s}.json", lambda m: m.update(frames=[])) for s in ("train", "val", "test")],
         r"holds no frames"),
        (lambda ds: _edit(ds / "transforms_train.json", lambda m: m.update(frames=[])), r"training split is empty"),
    ],
)
def test_errors_name_the_file_and_write_nothing(tmp_path, damage, message):
    write_nerface(tmp_path / "ds")
    damage(tmp_path / "ds")
    out = tmp_path / "S"
    with pytest.raises(HfagpError, match=message):
        run_import("nerface", tmp_path / "ds", out)
    assert not out.exists() or list(out.iterdir()) == []


def test_unreadable_image_leaves_previous_artifacts_intact(tmp_path):
    write_nerface(tmp_path / "ds", counts={"train": 2})
    out = tmp_path / "S"
    run_import("nerface", tmp_path / "ds", out)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    frames_before = sorted(p.name for p in (out / "frames").iterdir())
    write_nerface(tmp_path / "ds", counts={"train": 3}, seed=5)
    (tmp_path / "ds" / "train" / "f_0002.png").write_bytes(b"not a png")
    with pytest.raises(HfagpError, match=r"cannot read image .*f_0002.png"):
        run_import("nerface", tmp_path / "ds", out)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert sorted(p.name for p in (out / "frames").iterdir()) == frames_before
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []


def test_cli_reports_errors_with_status_2(tmp_path):
    (tmp_path / "ds").mkdir()
    assert main(["import", "--format", "nerface", str(tmp_path / "ds"), "-o", str(tmp_path / "S")]) == 2


def test_explicit_png_extension_in_file_path_is_accepted(tmp_path):
    root = tmp_path / "ds"
    image = write_image(root / "frames" / "a.png", np.full((8, 8, 3), 7, np.uint8))
    meta = {"camera_angle_x": 1.0, "frames": [{"file_path": "frames/a.png", "transform_matrix": np.eye(4).tolist()}]}
    (root / "transforms_train.json").write_text(json.dumps(meta))
    run_import("nerface", root, tmp_path / "S")
    assert np.array_equal(read_rgb(tmp_path / "S" / "frames" / "000000.png"), image)
    assert not (tmp_path / "S" / "expressions.parquet").exists()
