"""Imported subjects (`format: nerface | adnerf | hfagp` in config.yaml) through the Snakemake workflow."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from dataset_layouts import write_hfagp
from media import demo_frames
from PIL import Image
from test_workflow import run_snakemake

from hfagp.io.tables import read_expressions, read_split

N_FRAMES = 16


def write_demo_nerface(root, frames):
    """A NeRFace folder whose images are real demo frames (so our landmarks/align stages find the face)."""
    rng = np.random.default_rng(0)
    k = 0
    for split, count in (("train", 10), ("val", 2), ("test", 4)):
        entries = []
        for _ in range(count):
            (root / split).mkdir(parents=True, exist_ok=True)
            Image.fromarray(frames[k]).save(root / split / f"f_{k:04d}.png")
            entries.append(
                {"file_path": f"./{split}/f_{k:04d}", "bbox": [0, 0, 1, 1], "transform_matrix": np.eye(4).tolist(),
                 "expression": rng.normal(size=76).tolist()}
            )
            k += 1
        (root / f"transforms_{split}.json").write_text(
            json.dumps({"camera_angle_x": 0.5, "intrinsics": [300.0, 300.0, 0.5, 0.5], "frames": entries})
        )


def write_demo_adnerf(root, frames):
    """An AD-NeRF folder of demo frames: head_imgs/<id>.jpg, transforms_{train,val}.json, aud.npy."""
    (root / "head_imgs").mkdir(parents=True)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(root / "head_imgs" / f"{i}.jpg", quality=95)
    for split, ids in (("train", range(0, 12)), ("val", range(12, len(frames)))):
        entries = [{"img_id": i, "aud_id": i, "transform_matrix": np.eye(4).tolist(), "face_rect": [0, 0, 10, 10]} for i in ids]
        (root / f"transforms_{split}.json").write_text(json.dumps({"focal_len": 500.0, "cx": 88, "cy": 72, "frames": entries}))
    aud = np.random.default_rng(1).normal(size=(len(frames), 16, 29)).astype(np.float32)
    np.save(root / "aud.npy", aud)
    return aud


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("imported")
    frames = demo_frames(N_FRAMES)
    write_demo_nerface(workdir / "data" / "nerface", frames)
    aud = write_demo_adnerf(workdir / "data" / "adnerf", frames)
    written = write_hfagp(workdir / "data" / "hfagp", mode="3dmm")
    config = {
        "subjects": {
            "nf": {"format": "nerface", "dataset": str(workdir / "data" / "nerface")},
            "ad": {"format": "adnerf", "dataset": str(workdir / "data" / "adnerf")},
            "hf": {"format": "hfagp", "dataset": str(workdir / "data" / "hfagp"), "fps": 30},
        }
    }
    result = run_snakemake(workdir, config, targets=("preprocess", "expressions", "audio"))
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir, config, aud, written


@pytest.mark.slow
def test_nerface_subject_keeps_its_expressions_and_split_and_gets_our_cameras(imported):
    workdir, _, _, _ = imported
    subject = workdir / "results" / "nf"
    table, coefficients, metadata = read_expressions(subject / "expressions.parquet")
    assert metadata["model"] == "nerface76" and coefficients.shape == (N_FRAMES, 76)
    split = read_split(subject / "split.json")
    assert split["train"] == list(range(10)) and split["test"] == list(range(12, 16)) and split["val"] == [10, 11]
    # EG3D crops and cameras from our own landmarks + align stages.
    cameras = pd.read_parquet(subject / "cameras.parquet")
    assert len(cameras) >= N_FRAMES - 2 and (subject / "landmarks.parquet").exists()
    assert "import" in (subject / "logs" / "import.log").read_text()
    assert not (subject / "audio_features.npy").exists(), "NeRFace has no audio"


@pytest.mark.slow
def test_adnerf_subject_keeps_its_audio_features_and_fits_expressions(imported):
    workdir, _, aud, _ = imported
    subject = workdir / "results" / "ad"
    np.testing.assert_array_equal(np.load(subject / "audio_features.npy"), aud.astype(np.float64))
    assert json.loads((subject / "audio_features.npy.json").read_text())["feature"] == "imported-adnerf-aud.npy"
    assert not (subject / "audio.wav").exists(), "no audio extraction for an imported AD-NeRF subject"
    _, coefficients, metadata = read_expressions(subject / "expressions.parquet")
    assert metadata["model"] == "3ddfa-bfm68" and coefficients.shape[1] == 10
    assert read_split(subject / "split.json")["test"] == list(range(12, N_FRAMES))


@pytest.mark.slow
def test_hfagp_subject_uses_its_crops_and_labels_without_tracking(imported):
    workdir, _, _, written = imported
    subject = workdir / "results" / "hf"
    assert not (subject / "landmarks.parquet").exists(), "imported crops and labels need no tracking"
    cameras = pd.read_parquet(subject / "cameras.parquet")
    np.testing.assert_allclose(np.stack(cameras.label.to_numpy()), np.stack(written.labels))
    assert (subject / "qc" / "landmarks.png").exists() and (subject / "dataset.json").exists()
    _, coefficients, metadata = read_expressions(subject / "expressions.parquet")
    assert metadata["model"] == "nerface76"
    np.testing.assert_allclose(coefficients, np.stack(written.expressions))
    assert pd.read_parquet(subject / "frames.parquet").fps.iloc[0] == 30


@pytest.mark.slow
def test_imported_workflow_rerun_does_nothing(imported):
    workdir, config, _, _ = imported
    result = run_snakemake(workdir, config, "--dry-run", targets=("preprocess", "expressions", "audio"))
    assert result.returncode == 0 and "Nothing to be done" in result.stdout + result.stderr


def test_imported_subject_needs_its_dataset_key(tmp_path):
    result = run_snakemake(tmp_path, {"subjects": {"x": {"format": "nerface"}}})
    assert result.returncode != 0 and "dataset" in result.stdout + result.stderr


def test_missing_hfagp_dataset_folder_is_named(tmp_path):
    result = run_snakemake(tmp_path, {"subjects": {"x": {"format": "hfagp", "dataset": str(tmp_path / "nowhere")}}})
    assert result.returncode != 0 and "nowhere" in result.stdout + result.stderr
