"""hfagp evaluate on a tiny fake subject: renders, crops, split, avatar info (and novel views)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from skimage import data

from hfagp import cli
from hfagp.errors import HfagpError
from hfagp.evaluate.scoring import DEMO_PRIOR, generator_prior, run_evaluate
from hfagp.io.images import write_rgb
from hfagp.io.tables import write_split
from hfagp.losses.lpips import seeded_backbone_state

TEST_FRAMES = [3, 4, 5]


def face_crop() -> np.ndarray:
    """A 512x512 'aligned crop' around the astronaut's face (a real face dlib finds)."""
    return cv2.resize(data.astronaut()[26:226, 122:322], (512, 512), interpolation=cv2.INTER_CUBIC)


@pytest.fixture(scope="module")
def subject(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("subject")
    crops, renders, novel, small = (root / name for name in ("crops", "renders", "novel", "small"))
    for folder in (crops, renders, novel, small):
        folder.mkdir()
    rng = np.random.default_rng(0)
    base = face_crop()
    for frame in range(6):
        write_rgb(crops / f"{frame:06d}.png", base)
    for frame in TEST_FRAMES:
        render = cv2.resize(base, (256, 256), interpolation=cv2.INTER_AREA).astype(np.float64)
        render = np.clip(render + rng.normal(0, 4 * frame, render.shape), 0, 255).astype(np.uint8)
        write_rgb(renders / f"{frame:06d}.png", render)
    for k in range(2):
        write_rgb(novel / f"yaw_{k:02d}.png", cv2.resize(base, (256, 256), interpolation=cv2.INTER_AREA))
        write_rgb(small / f"yaw_{k:02d}.png", cv2.resize(base, (128, 128), interpolation=cv2.INTER_AREA))
    write_split(root / "split.json", [0, 1, 2], TEST_FRAMES, "test split")
    avatar = {"subject": "astro", "driver": "rgb", "generator": {"kind": "demo", "demo": True, "checkpoint": None}}
    (root / "avatar.json").write_text(json.dumps(avatar))
    weights = root / "alexnet-owt-7be5be79.pth"
    torch.save(seeded_backbone_state("alex", 0), weights)
    return {"root": root, "crops": crops, "renders": renders, "novel": novel, "small": small, "weights": weights,
            "split": root / "split.json", "avatar": root / "avatar.json"}


def evaluate(subject, out: Path, **kwargs) -> dict:
    return run_evaluate(subject["renders"], subject["crops"], subject["split"], subject["avatar"], out, **kwargs)


def test_without_lpips_weights(subject, tmp_path):
    out = tmp_path / "metrics.parquet"
    summary = evaluate(subject, out, lpips_weights=tmp_path / "absent.pth", novel=subject["novel"])
    table = pd.read_parquet(out)
    assert json.loads(out.with_suffix(".json").read_text()) == summary
    test = table[table.set == "test"]
    assert test.frame.tolist() == TEST_FRAMES
    assert test.lpips.isna().all()
    assert summary["lpips_backbone"] == "n/a: backbone weights absent"
    assert summary["metrics"]["lpips"]["mean"] is None and "absent.pth" in summary["metrics"]["lpips"]["na"]
    psnr = test.psnr.to_numpy()
    assert psnr[0] > psnr[1] > psnr[2] > 20  # more noise on later frames
    assert (test.ssim < 1).all() and (test.l1 > 0).all()
    assert summary["metrics"]["psnr"]["mean"] == pytest.approx(psnr.mean())
    assert summary["frames"] == 3 and summary["resolution"] == [256, 256]
    assert summary["akd_faces"] == {"render": 3, "ground_truth": 3, "both": 3}
    assert (test.akd < 3.0).all()  # same face, pixels at 256
    assert summary["generator_prior"] == DEMO_PRIOR and summary["demo_generator"]
    novel = table[table.set == "novel"]
    assert len(novel) == 2 and novel.niqe.between(2, 30).all() and novel.psnr.isna().all()
    assert summary["niqe"]["count"] == 2 and summary["niqe"]["reason"] is None


def test_with_seeded_lpips_backbone(subject, tmp_path):
    out = tmp_path / "m.parquet"
    summary = evaluate(subject, out, lpips_weights=subject["weights"], novel=subject["small"])
    table = pd.read_parquet(out)
    assert table.lpips.notna().all() and (table.lpips > 0).all()
    assert summary["lpips_backbone"] == "alex" and summary["metrics"]["lpips"]["count"] == 3
    assert summary["niqe"]["mean"] is None and "192x192" in summary["niqe"]["reason"]


def test_missing_inputs(subject, tmp_path):
    renders = tmp_path / "renders"
    renders.mkdir()
    with pytest.raises(HfagpError, match="none of the 3 test frames"):
        run_evaluate(renders, subject["crops"], subject["split"], subject["avatar"], tmp_path / "m.parquet",
                     lpips_weights=tmp_path / "absent.pth")
    write_rgb(renders / "000003.png", np.zeros((64, 64, 3), np.uint8))
    summary = run_evaluate(renders, subject["crops"], subject["split"], subject["avatar"], tmp_path / "m.parquet",
                           lpips_weights=tmp_path / "absent.pth")
    assert summary["frames"] == 1 and summary["frames_without_render"] == 2
    assert summary["akd_faces"]["render"] == 0 and summary["metrics"]["akd"]["mean"] is None
    with pytest.raises(HfagpError, match="crop"):
        run_evaluate(subject["renders"], renders, subject["split"], subject["avatar"], tmp_path / "m.parquet")
    bad = tmp_path / "avatar.json"
    bad.write_text(json.dumps({"subject": "a", "driver": "rgb", "generator": {"kind": "huge"}}))
    with pytest.raises(HfagpError, match="kind"):
        run_evaluate(subject["renders"], subject["crops"], subject["split"], bad, tmp_path / "m.parquet")


def test_generator_prior_descriptions():
    assert generator_prior({"kind": "checkpoint", "demo": False, "checkpoint": "/w/ffhqrebalanced512-128.pkl"}) == \
        "EG3D ffhqrebalanced512-128.pkl"
    assert generator_prior({"kind": "tuned", "demo": False, "checkpoint": "out/G_tuned.pkl",
                            "base_checkpoint": "/w/ffhqrebalanced512-128.pkl"}) == "PTI-tuned EG3D ffhqrebalanced512-128.pkl"
    assert generator_prior({"kind": "checkpoint", "demo": True, "checkpoint": None}) == DEMO_PRIOR


def test_cli(subject, tmp_path, monkeypatch):
    assert "hfagp.evaluate.cli" in cli._COMMAND_MODULES
    out = tmp_path / "metrics.parquet"
    argv = ["evaluate", "--renders", str(subject["renders"]), "--crops", str(subject["crops"]), "--split",
            str(subject["split"]), "--avatar-info", str(subject["avatar"]), "--lpips-weights", "None", "-o", str(out)]
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # empty hub cache: weights absent
    assert cli.main(argv) == 0
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["niqe"] is None and summary["lpips_backbone"].startswith("n/a")
    md = tmp_path / "table.md"
    assert cli.main(["paper-table", str(out.with_suffix(".json")), "-o", str(md), "--csv", str(tmp_path / "t.csv")]) == 0
    assert "| astro | rgb |" in md.read_text()
    assert cli.main(["evaluate", "--renders", "x", "--crops", "y", "--split", str(tmp_path / "none.json"),
                     "--avatar-info", str(subject["avatar"]), "-o", str(out)]) == 2


def test_modules_do_not_import_torch():
    code = ("import sys, hfagp.evaluate.scoring, hfagp.evaluate.paper_table, hfagp.evaluate.metrics, hfagp.evaluate.niqe, hfagp.io.video; "
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
