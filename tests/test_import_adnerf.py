"""``hfagp import --format adnerf``: frames by img_id, audio windows by aud_id, split and source cameras."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from dataset_layouts import write_adnerf

from hfagp.cli import main
from hfagp.datasets.cli import run_import
from hfagp.errors import HfagpError
from hfagp.io.images import read_rgb
from hfagp.io.tables import read_split


def test_adnerf_import_maps_ids_audio_and_cameras(tmp_path):
    written = write_adnerf(tmp_path / "ds")  # ids 0,1,2,4 train, 5,3 val; aud_id = 8 - img_id
    out = tmp_path / "S"
    assert main(["import", "--format", "adnerf", str(tmp_path / "ds"), "-o", str(out)]) == 0

    frames = pd.read_parquet(out / "frames.parquet")
    assert frames["index"].tolist() == [0, 1, 2, 3, 4, 5]
    by_id = dict(zip(written.ids, range(len(written.ids))))
    assert frames.source_name.tolist() == [f"head_imgs/{i}.jpg" for i in range(6)]
    assert frames.source_split.tolist() == ["train", "train", "train", "val", "train", "val"]
    assert np.allclose(frames.timestamp, np.arange(6) / 25.0)
    for img_id, k in by_id.items():
        assert np.array_equal(read_rgb(out / "frames" / f"{img_id:06d}.png"), written.images[k])

    # row f of audio_features = aud[aud_id of frame f]; the permutation is respected
    features = np.load(out / "audio_features.npy")
    assert features.shape == (6, 16, 29) and features.dtype == np.float64
    for img_id, k in by_id.items():
        assert np.array_equal(features[img_id], written.aud[written.aud_ids[k]].astype(np.float64))
    assert not np.array_equal(features[0], written.aud[0])  # aud_id 8 for img 0, not 0
    sidecar = json.loads((out / "audio_features.npy.json").read_text())
    assert sidecar["feature"] == "imported-adnerf-aud.npy" and sidecar["source"].endswith("aud.npy")
    assert sidecar["fps"] == 25.0 and sidecar["n_windows"] == 6 and sidecar["aud_ids"] == [8, 7, 6, 5, 4, 3]

    split = read_split(out / "split.json")
    assert split["train"] == [0, 1, 2, 4] and split["test"] == [3, 5]
    assert "transforms_val.json" in split["source"]

    cameras = pd.read_parquet(out / "source_cameras.parquet").set_index("frame")
    for img_id, k in by_id.items():
        assert np.allclose(np.asarray(cameras.cam2world_opencv[img_id]).reshape(4, 4), written.poses[k])
        assert np.allclose(cameras.intrinsics_normalised[img_id], [1200 / 48, 0, 0.5, 0, 1200 / 40, 0.5, 0, 0, 1])
        assert np.allclose(cameras.face_rect[img_id], written.boxes[k])
    assert json.loads((out / "import.json").read_text())["format"] == "adnerf"


def test_test_file_variant_and_gaps(tmp_path):
    write_adnerf(tmp_path / "ds", train_ids=[0, 2], val_ids=[5], test_variant=True)
    out = tmp_path / "S"
    run_import("adnerf", tmp_path / "ds", out, fps=30)
    aud = np.load(tmp_path / "ds" / "aud.npy")
    features = np.load(out / "audio_features.npy")
    assert features.shape == (6, 16, 29)
    for f in (0, 2, 5):  # no aud_id: aud_id = frame_id
        assert np.array_equal(features[f], aud[f])
    for f in (1, 3, 4):  # ids without an image: zero rows
        assert not features[f].any()
    assert json.loads((out / "audio_features.npy.json").read_text())["aud_ids"] == [0, -1, 2, -1, -1, 5]
    frames = pd.read_parquet(out / "frames.parquet")
    assert frames["index"].tolist() == [0, 2, 5] and np.allclose(frames.timestamp, [0, 2 / 30, 5 / 30])


def test_missing_aud_npy_imports_without_audio(tmp_path):
    write_adnerf(tmp_path / "ds")
    (tmp_path / "ds" / "aud.npy").unlink()
    (tmp_path / "S").mkdir()
    np.save(tmp_path / "S" / "audio_features.npy", np.zeros((2, 16, 29)))  # an earlier run's file is left alone
    manifest = run_import("adnerf", tmp_path / "ds", tmp_path / "S")
    assert "audio_features.npy" not in manifest["artifacts"]
    assert np.load(tmp_path / "S" / "audio_features.npy").shape == (2, 16, 29)


def _edit(path, change):
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda ds: np.save(ds / "aud.npy", np.zeros((8, 16, 29))),
         r"aud.npy has 8 windows but the transforms files use aud_id up to 8; .*recompute"),
        (lambda ds: np.save(ds / "aud.npy", np.zeros((9, 29))), r"aud.npy has shape \(9, 29\).*\(M, 16, 29\)"),
        (lambda ds: (ds / "aud.npy").write_bytes(b"garbage"), r"cannot read .*aud.npy"),
        (lambda ds: (ds / "head_imgs" / "4.jpg").unlink(), r"image .*head_imgs/4.jpg listed in .*transforms_train.json"),
        (lambda ds: _edit(ds / "transforms_val.json", lambda m: m.pop("focal_len")),
         r"transforms_val.json \(top level\) has none of the keys \['focal_len', 'focal_length'\]"),
        (lambda ds: _edit(ds / "transforms_train.json", lambda m: m["frames"][2].pop("img_id")),
         r"transforms_train.json \(frames\[2\]\) has none of the keys \['img_id', 'frame_id'\]"),
        (lambda ds: _edit(ds / "transforms_val.json", lambda m: m["frames"][0].update(img_id=1)),
         r"frame id 1 is listed twice \(train and val\)"),
        (lambda ds: _edit(ds / "transforms_train.json", lambda m: m["frames"][0].update(aud_id=-3)),
         r"'aud_id' must be a non-negative integer"),
        (lambda ds: (ds / "transforms_train.json").write_text("{'single': quotes}"), r"transforms_train.json is not valid JSON"),
        (lambda ds: [_edit(ds / f"transforms_{s}.json", lambda m: m.update(frames=[])) for s in ("train", "val")],
         r"holds no frames"),
    ],
)
def test_errors_name_the_file_and_write_nothing(tmp_path, damage, message):
    write_adnerf(tmp_path / "ds")
    damage(tmp_path / "ds")
    with pytest.raises(HfagpError, match=message):
        run_import("adnerf", tmp_path / "ds", tmp_path / "S")
    assert not (tmp_path / "S").exists() or list((tmp_path / "S").iterdir()) == []
