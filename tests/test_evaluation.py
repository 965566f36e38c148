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
from media import demo_frames
from scipy.stats import pearsonr
from skimage import data
from skimage.metrics import peak_signal_noise_ratio

from hfagp import cli
from hfagp.errors import HfagpError
from hfagp.evaluate import face_region, metrics, protocol
from hfagp.evaluate.protocol import Protocol
from hfagp.evaluate.frame_scoring import LandmarkPair
from hfagp.evaluate.scoring import DEMO_PRIOR, generator_prior, run_evaluate
from hfagp.io.images import read_rgb, write_rgb
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
    write_rgb(small / "yaw_02.png", np.full((128, 128, 3), 128, np.uint8))  # a view without a face
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
    assert summary["frames"] == 3 and summary["resolution"] == [512, 512] and summary["render_resolution"] == [256, 256]
    assert summary["protocol"] == {"resolution": 512, "region": "full", "color": "rgb",
                                   "text": "512 px, RGB [0,1], full frame"}
    assert summary["akd_faces"] == {"render": 3, "ground_truth": 3, "both": 3, "face_fraction": 1.0}
    assert (test.akd < 6.0).all() and (test.lmd < test.akd + 1).all()  # same face, pixels at 512
    assert (test.csim > 0.95).all() and summary["metrics"]["csim"]["count"] == 3  # the same person
    assert (test.missing == "lpips: LPIPS backbone weights absent").all()
    assert summary["metrics"]["lpips"]["missing"] == {"LPIPS backbone weights absent": 3}
    assert summary["metrics"]["akd"]["frames"] == 3 and summary["metrics"]["akd"]["missing"] == {}
    assert set(summary["methods"]) == {"psnr", "psnr_face", "ssim", "l1", "lpips", "akd", "lmd", "csim", "niqe"}
    assert "renders 256x256 resized (bicubic)" in summary["methods"]["psnr"]["protocol"]
    assert summary["methods"]["ssim"]["version"].startswith("scikit-image==")
    assert "basicsr-fixed" in summary["methods"]["niqe"]["version"]
    face = test.psnr_face.to_numpy()
    assert face[0] > face[1] > face[2] > 20 and np.isfinite(face).all()
    assert summary["metrics"]["psnr_face"]["mean"] == pytest.approx(face.mean())
    assert summary["metrics"]["psnr_face"]["count"] == 3
    assert test.lip_render.between(0, 0.5).all() and test.lip_gt.between(0, 0.5).all()
    lip = summary["lip_opening_correlation"]  # the three ground truths are the same image
    assert lip["value"] is None and lip["frames"] == 3 and "ground truth lip opening does not vary" in lip["reason"]
    assert summary["baselines"]["last10_train_mean"]["frames"] == [0, 1, 2]
    assert summary["generator_prior"] == DEMO_PRIOR and summary["demo_generator"]
    novel = table[table.set == "novel"]
    assert len(novel) == 2 and novel.niqe.between(2, 30).all() and novel.psnr.isna().all()
    assert novel.face_render.all() and not novel.face_gt.any() and novel.lip_render.isna().all()
    assert summary["niqe"]["count"] == 2 and summary["niqe"]["reason"] is None
    assert summary["novel_faces"] == {"detected": 2, "frames": 2, "fraction": 1.0}


def test_with_seeded_lpips_backbone(subject, tmp_path):
    out = tmp_path / "m.parquet"
    summary = evaluate(subject, out, lpips_weights=subject["weights"], novel=subject["small"])
    table = pd.read_parquet(out)
    test = table[table.set == "test"]
    assert test.lpips.notna().all() and (test.lpips > 0).all()
    assert summary["lpips_backbone"] == "alex" and summary["metrics"]["lpips"]["count"] == 3
    assert summary["niqe"]["mean"] is None and "192x192" in summary["niqe"]["reason"]
    # too small for NIQE, still one row per novel frame with its face detection (the grey view has none)
    novel = table[table.set == "novel"]
    assert novel.frame.tolist() == [0, 1, 2] and novel.niqe.isna().all()
    assert novel.face_render.tolist() == [True, True, False]
    assert summary["novel_faces"] == {"detected": 2, "frames": 3, "fraction": pytest.approx(2 / 3)}
    assert summary["niqe"]["frames"] == 3


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
    assert summary["akd_faces"]["face_fraction"] == 0.0 and summary["novel_faces"] is None
    lip = summary["lip_opening_correlation"]
    assert lip["value"] is None and lip["frames"] == 0 and "only 0" in lip["reason"]
    with pytest.raises(HfagpError, match="crop"):
        run_evaluate(subject["renders"], renders, subject["split"], subject["avatar"], tmp_path / "m.parquet")
    bad = tmp_path / "avatar.json"
    bad.write_text(json.dumps({"subject": "a", "driver": "rgb", "generator": {"kind": "huge"}}))
    with pytest.raises(HfagpError, match="kind"):
        run_evaluate(subject["renders"], subject["crops"], subject["split"], bad, tmp_path / "m.parquet")


TALKING_TRAIN, TALKING_TEST = list(range(12)), list(range(12, 22))


@pytest.fixture(scope="module")
def talking(tmp_path_factory) -> dict:
    """A real talking face (the carphone clip, cropped around the face): 512 px crops, noisy 128 px renders."""
    root = tmp_path_factory.mktemp("talking")
    crops, renders, novel = (root / name for name in ("crops", "renders", "novel"))
    for folder in (crops, renders, novel):
        folder.mkdir()
    rng = np.random.default_rng(1)
    clip = demo_frames(120)
    for frame in TALKING_TRAIN + TALKING_TEST:
        crop = cv2.resize(clip[min(5 * frame + 10, 119)][12:116, 34:138], (512, 512), interpolation=cv2.INTER_CUBIC)
        write_rgb(crops / f"{frame:06d}.png", crop)
        if frame in TALKING_TEST:
            render = cv2.resize(crop, (128, 128), interpolation=cv2.INTER_AREA).astype(np.float64)
            render = np.clip(render + rng.normal(0, 6, render.shape), 0, 255).astype(np.uint8)
            write_rgb(renders / f"{frame:06d}.png", render)
            write_rgb(novel / f"yaw_{frame:02d}.png", render)
    write_rgb(novel / "yaw_99.png", np.full((128, 128, 3), 90, np.uint8))
    write_split(root / "split.json", TALKING_TRAIN, TALKING_TEST, "test split")
    avatar = {"subject": "carphone", "driver": "audio", "generator": {"kind": "demo", "demo": True, "checkpoint": None}}
    (root / "avatar.json").write_text(json.dumps(avatar))
    return {"root": root, "crops": crops, "renders": renders, "novel": novel, "split": root / "split.json",
            "avatar": root / "avatar.json"}


def test_talking_face_lips_baseline_and_novel_faces(talking, tmp_path):
    out = tmp_path / "metrics.parquet"
    summary = evaluate(talking, out, lpips_weights=tmp_path / "absent.pth", novel=talking["novel"],
                       protocol=Protocol(resolution="render"))
    table = pd.read_parquet(out)
    test = table[table.set == "test"].reset_index(drop=True)
    assert test.frame.tolist() == TALKING_TEST and summary["resolution"] == [128, 128]
    assert list(table.columns) == ["frame", "set", "psnr", "psnr_face", "ssim", "l1", "lpips", "akd", "lmd", "csim",
                                   "niqe", "lip_render", "lip_gt", "face_render", "face_gt", "missing"]

    # face PSNR: skimage's PSNR over the hull of the ground truth's landmarks (recomputed here)
    landmarks = LandmarkPair(128, 128)
    baseline_psnr, baseline_face = [], []
    last10 = [talking["crops"] / f"{frame:06d}.png" for frame in TALKING_TRAIN[-10:]]
    mean = np.mean([protocol.resize_to(read_rgb(path) / 255.0, 128, 128) for path in last10], axis=0)
    for frame, row in zip(TALKING_TEST, test.itertuples()):
        render = read_rgb(talking["renders"] / f"{frame:06d}.png").astype(np.float64) / 255.0
        truth = protocol.resize_to(read_rgb(talking["crops"] / f"{frame:06d}.png") / 255.0, 128, 128)
        _, found = landmarks(np.zeros((128, 128, 3), np.uint8), np.round(truth * 255).astype(np.uint8))
        points = None if found is None else found[1]
        assert (points is not None) == row.face_gt
        baseline_psnr.append(peak_signal_noise_ratio(truth, mean, data_range=1.0))
        if points is None:
            assert np.isnan(row.psnr_face)
            continue
        mask = face_region.face_mask(points, 128, 128)
        assert row.psnr_face == pytest.approx(peak_signal_noise_ratio(truth[mask], render[mask], data_range=1.0))
        baseline_face.append(peak_signal_noise_ratio(truth[mask], mean[mask], data_range=1.0))
    assert test.face_gt.sum() >= 8 and summary["metrics"]["psnr_face"]["count"] == test.face_gt.sum()

    # the still-image baseline: the mean of the last ten training crops
    base = summary["baselines"]["last10_train_mean"]
    assert base["frames"] == TALKING_TRAIN[-10:] and base["face_frames"] == len(baseline_face)
    assert base["psnr"] == pytest.approx(np.mean(baseline_psnr), abs=1e-9)
    assert base["psnr_face"] == pytest.approx(np.mean(baseline_face), abs=1e-9)
    assert base["psnr"] < summary["metrics"]["psnr"]["mean"] - 3  # a still image misses the talking mouth

    # inner-lip opening: the noisy render follows the ground truth's mouth
    both = test.lip_render.notna() & test.lip_gt.notna()
    assert (both == (test.face_render & test.face_gt)).all()
    lip = summary["lip_opening_correlation"]
    assert lip["frames"] == both.sum() >= 8 and lip["reason"] is None
    assert lip["value"] == pytest.approx(pearsonr(test.lip_render[both], test.lip_gt[both]).statistic, abs=1e-12)
    assert lip["value"] > 0.9

    # novel views too small for NIQE: one row each, faces detected except on the grey view
    novel = table[table.set == "novel"]
    assert len(novel) == 11 and novel.niqe.isna().all() and "192x192" in summary["niqe"]["reason"]
    assert not novel.face_render.iloc[-1]
    assert summary["novel_faces"]["frames"] == 11 and summary["novel_faces"]["detected"] == novel.face_render.sum() >= 9
    assert summary["akd_faces"]["face_fraction"] == pytest.approx(test.face_render.mean())


@pytest.mark.parametrize("region,color", [("head", "rgb"), ("face", "y")])
def test_regions_colours_and_missing_frames(talking, tmp_path, region, color):
    """Region metrics recomputed from the protocol's own pieces; frames without a face are counted, never zero-filled."""
    out = tmp_path / "m.parquet"
    chosen = Protocol(resolution=256, region=region, color=color)
    summary = evaluate(talking, out, lpips_weights=tmp_path / "absent.pth", protocol=chosen)
    test = pd.read_parquet(out).reset_index(drop=True)
    assert summary["resolution"] == [256, 256] and summary["protocol"]["region"] == region
    landmarks = LandmarkPair(256, 256)
    for frame, row in zip(TALKING_TEST, test.itertuples()):
        render = protocol.resize_to(read_rgb(talking["renders"] / f"{frame:06d}.png") / 255.0, 256, 256)
        truth = protocol.resize_to(read_rgb(talking["crops"] / f"{frame:06d}.png") / 255.0, 256, 256)
        found_render, found = landmarks(np.round(render * 255).astype(np.uint8), np.round(truth * 255).astype(np.uint8))
        if found is None:
            assert np.isnan(row.psnr) and np.isnan(row.ssim) and f"the {region} mask needs" in row.missing
            continue
        mask = protocol.region_mask(found[1], region, 256, 256)
        a, b = (protocol.to_color(image, color) for image in protocol.apply_region(render, truth, region, mask))
        assert row.psnr == pytest.approx(peak_signal_noise_ratio(b, a, data_range=1.0), abs=1e-9)
        assert row.l1 == pytest.approx(np.abs(a - b).mean(), abs=1e-12)
        if found_render is not None:
            assert row.lmd == pytest.approx(metrics.lmd(found_render[1], found[1]), abs=1e-9)
        else:
            assert np.isnan(row.lmd) and np.isnan(row.csim) and "no face found in the render" in row.missing
    stats = summary["metrics"]["psnr"]
    assert stats["frames"] == 10 and stats["count"] == test.psnr.notna().sum()
    assert sum(stats["missing"].values()) == 10 - stats["count"]
    assert summary["metrics"]["csim"]["count"] == (test.face_render & test.face_gt).sum() >= 8
    if region == "head":  # pasting the ground truth outside the head raises PSNR
        full = evaluate(talking, tmp_path / "full.parquet", lpips_weights=tmp_path / "absent.pth",
                        protocol=Protocol(resolution=256, color=color))
        assert summary["metrics"]["psnr"]["mean"] > full["metrics"]["psnr"]["mean"] + 1


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
    text = md.read_text()
    assert "| astro | rgb |" in text and "| Face PSNR ↑ |" in text and "| Lip corr. ↑ |" in text
    row = next(line for line in text.splitlines() if line.startswith("| astro |")).split(" | ")
    assert row[10:13] == ["n/a", "-", "-"]  # lip corr. (constant ground truth); NIQE and novel faces: no --novel
    assert cli.main(["evaluate", "--renders", "x", "--crops", "y", "--split", str(tmp_path / "none.json"),
                     "--avatar-info", str(subject["avatar"]), "-o", str(out)]) == 2


def test_modules_do_not_import_torch():
    code = ("import sys, hfagp.evaluate.scoring, hfagp.evaluate.face_region, hfagp.evaluate.paper_table, "
            "hfagp.evaluate.metrics, hfagp.evaluate.niqe, hfagp.evaluate.identity, hfagp.evaluate.protocol, "
            "hfagp.evaluate.methods, hfagp.evaluate.frame_scoring, hfagp.io.video; "
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
