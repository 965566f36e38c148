"""`make rehearsal`'s configuration (config/rehearsal.yaml), run end to end at a smaller size so it cannot rot.

The real rehearsal uses the released ffhq512 architecture (about 14 minutes on 2 cores, README "Full-size
rehearsal"); here the same overlay runs with a random-weight snapshot of the demo architecture written by
``hfagp eg3d-snapshot`` (a checkpoint file, so every stage takes the checkpoint path, not the built-in demo
generator), fewer frames and one step less, with everything else as in the overlay: D = 50, the 256 px
full-width RGB encoder at batch 2, the generator tuned after one step, checkpoints written every step and
re-loaded by the render stage, evaluation at 512 px; then the per-stage table of bench/rehearsal_table.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from test_workflow import run_snakemake

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("rehearsal")
    config = yaml.safe_load((REPO / "config" / "rehearsal.yaml").read_text())
    config["subjects"]["rehearsal"].update(max_frames=12, test_fraction=0.25)
    config["models"]["eg3d_checkpoint"] = "models/demo_random.pt"
    config["inversion"]["steps"] = 1
    (workdir / "models").mkdir()
    from hfagp.losses.lpips import seeded_backbone_state

    torch.save(seeded_backbone_state("alex", 0), workdir / "models" / "alexnet-random.pth")  # as make rehearsal does
    hfagp = Path(sys.executable).parent / "hfagp"
    subprocess.run([str(hfagp), "eg3d-snapshot", "--arch", "demo", "-o", str(workdir / "models" / "demo_random.pt")],
                   check=True, capture_output=True)
    result = run_snakemake(workdir, config, targets=("all",))
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    return workdir, config


@pytest.mark.slow
def test_the_overlay_runs_with_real_shapes(rehearsal):
    workdir, config = rehearsal
    subject = workdir / "results" / "rehearsal"
    prior = subject / "prior.npz"
    assert prior.exists()
    for driver in ("rgb", "expression", "audio"):
        checkpoint = torch.load(subject / "driver" / driver / "checkpoint.pt", weights_only=True)
        assert checkpoint["config"]["steps"] == config["training"]["steps"] and checkpoint["step"] == 2
        assert checkpoint["subspace"]["dim"] == 50 and checkpoint["subspace"]["num_ws"] == 14  # the demo arch has 14 ws too
        assert checkpoint["generator"]["source"] == "tuned"
        assert (subject / "render" / driver / "reenact.mp4").exists()
        summary = pd.read_json(subject / "render" / driver / "metrics.json", typ="series")
        assert summary["resolution"] == [512, 512] and summary["generator_prior"] == "PTI-tuned EG3D demo_random.pt"
    rgb = torch.load(subject / "driver" / "rgb" / "checkpoint.pt", weights_only=True)["config"]
    assert rgb["rgb_resolution"] == 256 and rgb["driver_width"] == 1.0 and rgb["batch_size"] == 2  # training.rgb_batch_size
    table = pd.read_csv(workdir / "results" / "paper_table.csv")
    assert sorted(table.driver) == ["audio", "expression", "rgb"] and not table.demo_generator.any()


@pytest.mark.slow
def test_stage_table(rehearsal):
    workdir, _ = rehearsal
    result = subprocess.run([sys.executable, str(REPO / "bench" / "rehearsal_table.py"), str(workdir)],
                            capture_output=True, text=True, check=True)
    lines = result.stdout.splitlines()
    assert lines[0] == "| job | subject | seconds | peak RSS (MB) |"
    jobs = {line.split(" | ")[0].lstrip("| ") for line in lines[2:-1]}
    assert {"invert", "prior", "train_rgb", "train_expression", "train_audio", "render_rgb", "evaluate_rgb",
            "paper_table"} <= jobs
    assert lines[-1].startswith("| **all jobs** |") and (workdir / "stages.md").read_text() == result.stdout
