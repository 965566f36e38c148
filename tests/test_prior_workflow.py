"""The prior stages under Snakemake on small synthetic inputs: outputs, caching, targeted reruns."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from media import DEMO_VIDEO
from PIL import Image

from hfagp.eg3d import camera
from hfagp.io.tables import write_expressions, write_split

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "workflow" / "Snakefile"
PRIOR_RULES = ["select_frames", "invert", "pca_prior", "qc_prior", "prior"]


def snakemake(workdir: Path, config: dict, *extra: str) -> subprocess.CompletedProcess:
    """Run only the prior stages (upstream files are given) towards the `prior` target."""
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--directory", str(workdir)]
    command += ["--configfile", str(workdir / "config.yaml"), "--cores", "2", "prior", *extra]
    command += ["--allowed-rules", *PRIOR_RULES]  # last: it takes several values
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=workdir, timeout=600)


def planned_jobs(result: subprocess.CompletedProcess) -> set[str]:
    """Rule names of the jobs a dry run plans (from its job-stats table)."""
    text = result.stdout + result.stderr
    return {m.group(1) for m in re.finditer(r"^(\w+)\s+\d+\s*$", text, re.MULTILINE) if m.group(1) != "total"}


def write_upstream(subject_dir: Path, n: int = 5) -> None:
    """Crops, cameras.parquet, split.json and expressions.parquet of n synthetic frames (last one = test)."""
    rng = np.random.default_rng(0)
    (subject_dir / "crops").mkdir(parents=True)
    rows = []
    yy, xx = np.mgrid[0:512, 0:512] / 512.0
    for f in range(n):
        colour = rng.uniform(0, 1, 3)
        image = (255 * np.clip(colour * (0.5 + 0.5 * np.sin(6 * xx + f)[..., None] * yy[..., None]), 0, 1)).astype(np.uint8)
        Image.fromarray(image).save(subject_dir / "crops" / f"{f:06d}.png")
        yaw, pitch = rng.normal(0, 8), rng.normal(0, 4)
        rows.append({"frame": f, "name": f"{f:06d}.png", "yaw": yaw, "pitch": pitch, "roll": 0.0,
                     "label": camera.camera_label(camera.look_at_cam2world(yaw, pitch))})
    pd.DataFrame(rows).to_parquet(subject_dir / "cameras.parquet")
    write_split(subject_dir / "split.json", list(range(n - 1)), [n - 1], "synthetic")
    table = pd.DataFrame({"frame": range(n), "flag": "ok", "expression": list(rng.normal(size=(n, 4)))})
    write_expressions(subject_dir / "expressions.parquet", table, {"model": "synthetic"})
    old = time.time() - 3600
    for path in [*subject_dir.rglob("*")]:
        os.utime(path, (old, old))


def config(**overrides) -> dict:
    base = {
        "subjects": {"s1": {"video": DEMO_VIDEO}},
        "inversion": {"frames": 3, "steps": 2, "batch_size": 3, "pti_steps": 0},
        "prior": {"subspace_dim": 4, "qc_directions": 2},
        "lpips": {"weights": "/nonexistent/alexnet.pth"},
    }
    for block, values in overrides.items():
        base[block] = {**base[block], **values}
    return base


@pytest.fixture(scope="module")
def prior_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("prior")
    write_upstream(workdir / "results" / "s1")
    result = snakemake(workdir, config())
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return workdir


@pytest.mark.slow
def test_prior_stages_write_their_artifacts(prior_run):
    s1 = prior_run / "results" / "s1"
    latents = torch.load(s1 / "inversion" / "latents.pt", weights_only=False)
    assert latents["latents"].shape == (3, 14, 512) and latents["latents"].dtype == torch.float32
    assert max(latents["frames"]) < 4, "the test frame is never inverted"
    assert "mse only" in latents["loss"] and latents["generator"]["demo"]
    losses = pd.read_parquet(s1 / "inversion" / "losses.parquet")
    assert len(losses) == 3 * 2 and {"frame", "step", "loss", "mse"} <= set(losses.columns)
    prior = np.load(s1 / "prior.npz")
    assert prior["mean"].shape == (14, 512) and prior["basis"].shape == (4, 7168)
    assert int(prior["data_directions"]) == 2  # K - 1 = 2, the other 2 are random orthogonal
    np.testing.assert_allclose(prior["basis"] @ prior["basis"].T, np.eye(4), atol=1e-5)
    for png in ("qc/inversion.png", "qc/prior.png", "inversion/losses.png"):
        with Image.open(s1 / png) as image:
            assert image.size[0] > 0
    assert "finished" in (s1 / "logs" / "invert.log").read_text()
    assert (s1 / "benchmarks" / "qc_prior.tsv").exists()
    assert not (s1 / "inversion" / "generator_tuned.pt").exists()


@pytest.mark.slow
def test_rerun_does_nothing_and_parameter_changes_rerun_only_dependents(prior_run):
    result = snakemake(prior_run, config(), "--dry-run")
    assert result.returncode == 0 and "Nothing to be done" in result.stdout + result.stderr
    result = snakemake(prior_run, config(prior={"subspace_dim": 5}), "--dry-run")
    assert planned_jobs(result) == {"pca_prior", "qc_prior", "prior"}, result.stdout
    result = snakemake(prior_run, config(inversion={"steps": 3}), "--dry-run")
    assert planned_jobs(result) == {"invert", "pca_prior", "qc_prior", "prior"}, result.stdout
    result = snakemake(prior_run, config(inversion={"frames": 2}), "--dry-run")
    assert planned_jobs(result) == {"select_frames", "invert", "pca_prior", "qc_prior", "prior"}, result.stdout
