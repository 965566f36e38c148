"""``hfagp import --format hfagp``: crops, labels, cameras, split, expressions / audio from HFA-GP's layout."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from dataset_layouts import random_image, write_hfagp, write_image

from hfagp.cli import main
from hfagp.datasets.cli import run_import
from hfagp.eg3d import camera
from hfagp.errors import HfagpError
from hfagp.face3d import geometry as geo
from hfagp.io.images import read_rgb
from hfagp.io.tables import read_cameras, read_expressions, read_split


def test_3dmm_mode_imports_crops_labels_expressions(tmp_path):
    written = write_hfagp(tmp_path / "ds", counts={"train": 3, "test": 2, "test2": 1})
    out = tmp_path / "S"
    assert main(["import", "--format", "hfagp", str(tmp_path / "ds"), "-o", str(out)]) == 0

    frames = pd.read_parquet(out / "frames.parquet")
    assert frames["index"].tolist() == list(range(6))
    assert frames.source_name.tolist() == written.names
    assert frames.source_split.tolist() == ["train"] * 3 + ["test"] * 2 + ["test2"]
    assert set(frames.width) == {512} and set(frames.height) == {512}
    for i, image in enumerate(written.images):
        assert np.array_equal(read_rgb(out / "crops" / f"{i:06d}.png"), image)
        assert np.array_equal(read_rgb(out / "frames" / f"{i:06d}.png"), image)

    cameras, labels = read_cameras(out / "cameras.parquet")
    assert cameras.frame.tolist() == list(range(6)) and set(cameras.flag) == {"imported"}
    assert cameras.name.tolist() == [f"{i:06d}.png" for i in range(6)]
    assert np.array_equal(labels, np.stack(written.labels))  # test.json labels used as they are
    for i, pose in enumerate(written.poses):
        pitch, yaw, roll = geo.euler_from_rotation(pose[:3, :3].T)
        assert np.allclose([cameras.pitch[i], cameras.yaw[i], cameras.roll[i]], [pitch, yaw, roll])
        assert cameras.radius[i] == pytest.approx(2.7 + 0.05 * i)
        assert np.isnan(cameras.reprojection_error[i])
        assert len(cameras.crop_affine[i]) == 6 and np.isnan(cameras.crop_affine[i]).all()
        assert len(cameras.landmarks_crop[i]) == 136 and np.isnan(cameras.landmarks_crop[i]).all()
    assert cameras.yaw.min() < -5 < 5 < cameras.yaw.max()  # the poses really differ
    dataset = json.loads((out / "dataset.json").read_text())
    assert [n for n, _ in dataset["labels"]] == cameras.name.tolist()
    assert np.allclose([v for _, v in dataset["labels"]], labels)

    table, coefficients, meta = read_expressions(out / "expressions.parquet")
    assert np.allclose(coefficients, np.stack(written.expressions)) and meta["model"] == "nerface76"
    split = read_split(out / "split.json")
    assert split["train"] == [0, 1, 2] and split["test"] == [3, 4] and split["test2"] == [5]
    assert not (out / "source_cameras.parquet").exists() and not (out / "audio_features.npy").exists()


def test_frontal_label_gives_zero_angles(tmp_path):
    root = tmp_path / "ds" / "train" / "cropped_images"
    write_image(root / "a.png", random_image(np.random.default_rng(0), 512, 512))
    (root / "test.json").write_text(json.dumps({"labels": [["a.png", camera.frontal_camera_label().tolist()]]}))
    run_import("hfagp", tmp_path / "ds", tmp_path / "S")
    cameras, _ = read_cameras(tmp_path / "S" / "cameras.parquet")
    assert np.allclose([cameras.pitch[0], cameras.yaw[0], cameras.roll[0]], 0) and cameras.radius[0] == 2.7


def test_audio_mode_numbers_frames_by_img_id(tmp_path):
    written = write_hfagp(tmp_path / "ds", mode="audio")
    # a transforms_test.json without a test2 folder is ignored
    (tmp_path / "ds" / "transforms_test.json").write_text(json.dumps({"frames": [{"img_id": 99}]}))
    out = tmp_path / "S"
    run_import("hfagp", tmp_path / "ds", out)
    assert written.ids != sorted(written.ids)  # the fixture shuffles ids against file order
    frames = pd.read_parquet(out / "frames.parquet")
    assert frames["index"].tolist() == sorted(written.ids)
    features = np.load(out / "audio_features.npy")
    cameras, labels = read_cameras(out / "cameras.parquet")
    label_of = dict(zip(cameras.frame, labels))
    for k, img_id in enumerate(written.ids):
        assert np.array_equal(read_rgb(out / "crops" / f"{img_id:06d}.png"), written.images[k])
        assert np.array_equal(features[img_id], written.aud[written.aud_ids[k]])
        assert np.array_equal(label_of[img_id], written.labels[k])
    split = read_split(out / "split.json")
    assert split["train"] == sorted(written.ids[:3]) and split["test"] == sorted(written.ids[3:])
    assert "test2" not in split and not (out / "expressions.parquet").exists()


def test_labels_only_folder(tmp_path):
    written = write_hfagp(tmp_path / "ds", mode="labels")
    out = tmp_path / "S"
    run_import("hfagp", tmp_path / "ds", out)
    _, labels = read_cameras(out / "cameras.parquet")
    assert np.array_equal(labels, np.stack(written.labels))
    assert read_split(out / "split.json")["test"] == [3, 4]
    assert not (out / "expressions.parquet").exists()


def _edit(path, change):
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda ds: _edit(ds / "test" / "cropped_images" / "test.json", lambda m: m["labels"].pop(0)),
         r"test/cropped_images/test.json has no label for img_01012.png \(listed in .*transforms_val.json"),
        (lambda ds: (ds / "train" / "cropped_images" / "img_01003.png").unlink(),
         r"image .*train/cropped_images/img_01003.png listed in .*transforms_train.json is missing"),
        (lambda ds: write_image(ds / "train" / "cropped_images" / "img_01003.png", np.zeros((256, 256, 3), np.uint8)),
         r"crop .*img_01003.png is 256x256; HFA-GP crops are 512x512"),
        (lambda ds: _edit(ds / "transforms_val.json", lambda m: m["frames"][0].update(img_id=3)),
         r"mix 3DMM-style \(file_path\) and audio-style \(img_id\)"),
        (lambda ds: (ds / "train" / "cropped_images" / "test.json").write_text('{"labels": [["a.png", [1, 2]]]}'),
         r"train/cropped_images/test.json \(labels\[0\] a.png\): 'label' must be a list of 25"),
        (lambda ds: (ds / "train" / "cropped_images" / "test.json").write_text("{"),
         r"train/cropped_images/test.json is not valid JSON"),
        (lambda ds: _edit(ds / "transforms_val.json", lambda m: m["frames"][1].update(expression=[1.0] * 10)),
         r"expression vectors have different sizes \(\[10, 76\]\)"),
        (lambda ds: [p.unlink() for p in (ds / "train" / "cropped_images").iterdir()]
         and (ds / "train" / "cropped_images").rmdir(), r"train/cropped_images not found"),
    ],
)
def test_errors_name_the_file_and_write_nothing(tmp_path, damage, message):
    write_hfagp(tmp_path / "ds")
    damage(tmp_path / "ds")
    with pytest.raises(HfagpError, match=message):
        run_import("hfagp", tmp_path / "ds", tmp_path / "S")
    left = [] if not (tmp_path / "S").exists() else list((tmp_path / "S").iterdir())
    assert left == []


def test_audio_mode_checks_aud_npy(tmp_path):
    write_hfagp(tmp_path / "ds", mode="audio", aud_rows=8)
    np.save(tmp_path / "ds" / "aud.npy", np.zeros((3, 16, 29)))
    with pytest.raises(HfagpError, match=r"aud.npy has 3 windows but the transforms files use aud_id up to"):
        run_import("hfagp", tmp_path / "ds", tmp_path / "S")


def test_a_failure_while_converting_crops_keeps_the_previous_import(tmp_path):
    write_hfagp(tmp_path / "ds")
    out = tmp_path / "S"
    run_import("hfagp", tmp_path / "ds", out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    write_image(tmp_path / "ds" / "test" / "cropped_images" / "img_01009.png", np.zeros((500, 512, 3), np.uint8))
    with pytest.raises(HfagpError, match=r"is 512x500"):
        run_import("hfagp", tmp_path / "ds", out)
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
