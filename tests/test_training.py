"""Stage ``train`` (hfagp.avatar.training, hfagp.avatar.data, hfagp.avatar.cli): drivers, subspace, data, a short training, errors.

The tiny subjects are built here (``make_subject``; the resume and DDP tests
import it): a few synthetic 512 crops with cameras, a split, expressions,
audio features, a prior and a demo generator record.
"""

from __future__ import annotations

import argparse
import functools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hfagp.eg3d import camera
from hfagp.errors import HfagpError
from hfagp.io import atomic

N_FRAMES = 8
D = 4
EXPRESSION_SIZE = 10


def make_subject(root: Path, frames: int = N_FRAMES, dim: int = D, expression_size: int = EXPRESSION_SIZE, audio_rows: int | None = None, seed: int = 0) -> dict:
    """Write a tiny subject under ``root``; returns the paths (keys as :class:`hfagp.avatar.settings.TrainPaths`)."""
    import cv2
    import pandas as pd

    from hfagp.io.images import write_rgb
    from hfagp.io.tables import write_expressions, write_split

    rng = np.random.default_rng(seed)
    root = Path(root)
    crops = root / "crops"
    crops.mkdir(parents=True, exist_ok=True)
    rows = []
    yy, xx = np.mgrid[0:64, 0:64] / 63.0
    for f in range(frames):
        # a smooth coloured blob that moves from frame to frame, on a gradient
        cx, cy = 0.3 + 0.4 * f / max(frames - 1, 1), 0.5
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 0.03)
        small = np.stack([0.2 + 0.6 * blob, 0.3 + 0.3 * xx, 0.5 * yy + 0.3 * blob], axis=-1)
        small = small + 0.02 * rng.standard_normal(small.shape)
        image = cv2.resize((np.clip(small, 0, 1) * 255).astype(np.uint8), (512, 512), interpolation=cv2.INTER_LINEAR)
        name = f"{f:06d}.png"
        write_rgb(crops / name, image)
        label = camera.camera_label(camera.look_at_cam2world(yaw_deg=-10 + 20 * f / max(frames - 1, 1), pitch_deg=2.0))
        angles = np.linspace(0, 2 * np.pi, 68, endpoint=False)  # a stand-in for the 68 landmarks: a ring on the blob
        ring = np.stack([512 * cx + 90 * np.cos(angles), 512 * cy + 110 * np.sin(angles)], axis=1)
        rows.append({"frame": f, "name": name, "flag": "ok", "label": label.tolist(), "landmarks_crop": ring.ravel().tolist()})
    atomic.write_parquet(root / "cameras.parquet", pd.DataFrame(rows))
    test = [frames - 2, frames - 1]
    write_split(root / "split.json", [f for f in range(frames) if f not in test], test, source="test: last 2 frames")
    coefficients = rng.standard_normal((frames, expression_size))
    table = pd.DataFrame({"frame": np.arange(frames), "flag": "ok", "expression": list(coefficients)})
    write_expressions(root / "expressions.parquet", table, {"model": "test"})
    np.save(root / "audio_features.npy", rng.standard_normal((audio_rows or frames, 16, 29)))
    q, _ = np.linalg.qr(rng.standard_normal((14 * 512, dim)))
    atomic.save_npz(
        root / "prior.npz",
        mean=(0.1 * rng.standard_normal((14, 512))).astype(np.float32),
        basis=q.T.astype(np.float32),
        explained_variance=np.linspace(2.0, 1.0, dim),
        explained_variance_ratio=np.linspace(2.0, 1.0, dim) / 10,
        data_directions=np.array(dim),
        total_variance=np.array(10.0),
        seed=np.array(0),
        frames=np.arange(dim + 1),
    )
    (root / "inversion").mkdir(exist_ok=True)
    atomic.write_json(root / "inversion" / "generator.json", {"kind": "demo", "checkpoint": None, "demo_seed": 0, "tuned": None})
    return {
        "crops": str(crops),
        "cameras": str(root / "cameras.parquet"),
        "split": str(root / "split.json"),
        "prior": str(root / "prior.npz"),
        "generator_json": str(root / "inversion" / "generator.json"),
        "expressions": str(root / "expressions.parquet"),
        "audio_features": str(root / "audio_features.npy"),
    }


def tiny_settings(kind: str = "expression", **overrides):
    """Small, fast settings: 32 px training images (the 128 px demo render average-pooled), 32 px RGB input."""
    from hfagp.avatar.settings import TrainSettings

    values = dict(
        kind=kind, steps=6, tune_iter=3, lr=1e-3, batch_size=2, resolution=32, rgb_resolution=32, driver_width=0.25,
        lpips_weight=0.0, smoothing_start=3, smoothing_window=4, checkpoint_every=100, sample_every=100, log_every=1, seed=0,
    )
    values.update(overrides)
    return TrainSettings(**values)


def paths_for(subject: dict, out: Path):
    from hfagp.avatar.settings import TrainPaths

    return TrainPaths(output=str(Path(out) / "checkpoint.pt"), **subject)


@pytest.fixture(scope="module")
def subject(tmp_path_factory) -> dict:
    return make_subject(tmp_path_factory.mktemp("subject"))


def test_batch_indices_are_a_function_of_seed_and_step():
    from hfagp.avatar.data import batch_indices

    a = [batch_indices(0, s, 7, 3) for s in range(7)]
    assert a == [batch_indices(0, s, 7, 3) for s in range(7)]
    assert a != [batch_indices(1, s, 7, 3) for s in range(7)]
    flat = sum(a, [])
    for epoch in range(3):  # every epoch visits every frame once
        assert sorted(flat[epoch * 7 : (epoch + 1) * 7]) == list(range(7))


@pytest.mark.parametrize("kind", ["rgb", "expression", "audio"])
def test_driver_shapes_and_gradients(kind):
    from hfagp.avatar.model import build_driver_from_args
    from hfagp.avatar.settings import driver_build_args

    settings = tiny_settings(kind)
    driver = build_driver_from_args(driver_build_args(settings, D, EXPRESSION_SIZE))
    B = 3
    if kind == "rgb":
        x = torch.rand(B, 3, 32, 32) * 2 - 1
    elif kind == "expression":
        x = torch.randn(B, EXPRESSION_SIZE)
    else:
        x = torch.randn(B, settings.smoothing_window, 16, 29)
    for smooth in ([False, True] if kind == "audio" else [False]):
        driver.zero_grad()
        out = driver(x, smooth=smooth) if kind == "audio" else driver(x)
        assert out.shape == (B, D)
        assert torch.isfinite(out).all()
        out.square().sum().backward()
        grads = [p.grad for p in driver.parameters()]
        with_grad = [g for g in grads if g is not None and g.abs().sum() > 0]
        if smooth or kind != "audio":
            assert len(with_grad) == len(grads), "every driver parameter should receive a gradient"
        else:
            assert with_grad, "the audio driver without smoothing still trains its encoder"


def test_subspace_latent_is_mean_plus_weights_times_orthonormal_basis(subject):
    from hfagp.avatar.model import build_subspace

    sub = build_subspace(subject["prior"])
    assert sub.dim == D
    with torch.no_grad():
        sub.bases.add_(0.05 * torch.randn_like(sub.bases))  # no longer orthonormal: the QR must fix it
    Q = sub.orthonormal_basis()
    if Q.shape[0] != D:
        Q = Q.T
    assert Q.shape == (D, 14 * 512)
    assert torch.allclose(Q @ Q.T, torch.eye(D), atol=1e-5)
    w = torch.randn(5, D)
    latents = sub(w)
    assert latents.shape == (5, 14, 512)
    expected = (sub.delta.reshape(1, -1) + w @ Q).reshape(5, 14, 512)
    assert torch.allclose(latents, expected, atol=1e-5)
    latents.sum().backward()
    assert sub.delta.grad is not None and sub.bases.grad is not None


def test_dataset_targets_signals_and_audio_windows(subject):
    from hfagp.avatar.data import DriverDataset, audio_window_indices, load_subject

    assert audio_window_indices(0, 10, 8).tolist() == [0, 0, 0, 0, 0, 1, 2, 3]
    assert audio_window_indices(9, 10, 4).tolist() == [7, 8, 9, 9]
    data = load_subject("audio", subject["crops"], subject["cameras"], subject["split"], audio_features=subject["audio_features"])
    assert data.train == list(range(N_FRAMES - 2)) and data.test == [N_FRAMES - 2, N_FRAMES - 1]
    ds = DriverDataset(data, data.train, 32, seq_len=4)
    batch = ds.batch([1, 2])
    assert batch["target"].shape == (2, 3, 32, 32) and batch["target"].min() >= -1 and batch["target"].max() <= 1
    assert batch["label"].shape == (2, 25)
    assert batch["signal"].shape == (2, 4, 16, 29)
    audio = np.load(subject["audio_features"]).astype(np.float32)
    assert np.allclose(batch["signal"][0, 4 // 2].numpy(), audio[1])  # the centre is the frame itself
    assert np.allclose(batch["signal"][0, 0].numpy(), audio[0])  # clamped at the start
    rgb = DriverDataset(load_subject("rgb", subject["crops"], subject["cameras"], subject["split"]), [0, 1], 32, rgb_resolution=16)
    assert rgb.batch([0])["signal"].shape == (1, 3, 16, 16)
    expr = DriverDataset(load_subject("expression", subject["crops"], subject["cameras"], subject["split"], expressions=subject["expressions"]), [0, 3], 32)
    assert expr.batch([0, 1])["signal"].shape == (2, EXPRESSION_SIZE)
    # the mean training crop (the trivial baseline)
    assert ds.mean_target().shape == (3, 32, 32)


def test_face_weights_follow_each_crops_landmarks(subject):
    from hfagp.avatar.data import DriverDataset, load_subject
    from hfagp.losses.regions import face_weights

    data = load_subject("expression", subject["crops"], subject["cameras"], subject["split"], expressions=subject["expressions"])
    plain = DriverDataset(data, data.train, 32)
    assert plain.face is None and "face" not in plain.batch([0])
    ds = DriverDataset(data, data.train, 32, face_weights=True)
    batch = ds.batch([0, len(data.train) - 1])
    assert batch["face"].shape == (2, 1, 32, 32) and batch["face"].dtype == torch.float32
    for row, frame in enumerate(data.train):
        np.testing.assert_array_equal(ds.face[row, 0].numpy(), face_weights(data.landmarks_crop[frame], 32, 512))
    # The blob (and its ring of landmarks) moves right from frame to frame, and so do the weights.
    columns = np.arange(32)
    centre = [float((ds.face[row, 0].sum(0).numpy() * columns).sum() / ds.face[row, 0].sum()) for row in (0, len(data.train) - 1)]
    assert centre[1] > centre[0] + 4, centre
    del data.landmarks_crop[data.train[1]]
    with pytest.raises(HfagpError, match=r"cameras\.parquet has none for 1 of .*face_ssim_weight: 0"):
        DriverDataset(data, data.train, 32, face_weights=True)


def test_training_with_the_face_ssim_term_logs_it(subject, tmp_path):
    from hfagp.avatar.distributed import setup_distributed
    from hfagp.avatar.training import Trainer

    settings = tiny_settings("expression", steps=3, tune_iter=0, batch_size=2, ssim_weight=0.3, face_ssim_weight=0.3)
    trainer = Trainer(settings, paths_for(subject, tmp_path / "face"), setup_distributed("cpu"))
    assert trainer.loss_description.startswith("mse + ssim + face ssim")
    terms = trainer.train_step()
    assert {"mse", "ssim", "face_ssim"} <= set(terms) and 0 < float(terms["face_ssim"]) < 2


def test_a_few_steps_reduce_the_loss_and_write_everything(subject, tmp_path):
    from hfagp.avatar.distributed import setup_distributed
    from hfagp.avatar.training import Trainer

    torch.set_num_threads(2)
    settings = tiny_settings("expression", steps=12, tune_iter=0, batch_size=3, sample_every=6, checkpoint_every=6, log_every=2)
    paths = paths_for(subject, tmp_path / "expression")
    trainer = Trainer(settings, paths, setup_distributed("cpu"))
    before, _ = trainer.evaluate(trainer.train_set, list(range(len(trainer.train_set))), False)
    metrics = trainer.run()
    assert metrics["train_psnr"] > before.mean() + 0.5, (before.mean(), metrics)
    assert metrics["final_loss"] < metrics["first_loss"]
    assert metrics["steps"] == 12 and metrics["generator_tuned"] and metrics["demo_generator"]
    out = tmp_path / "expression"
    assert (out / "checkpoint.pt").exists() and not (out / "resume.pt").exists()
    assert json.loads((out / "metrics.json").read_text())["test_psnr"] == pytest.approx(metrics["test_psnr"])
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["step_000006.png", "step_000012.png"]
    assert any((out / "tensorboard").iterdir())
    ckpt = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert ckpt["kind"] == "expression" and ckpt["step"] == 12 and ckpt["generator"]["source"] == "tuned"
    assert ckpt["signal"]["expression_size"] == EXPRESSION_SIZE and ckpt["subspace"]["dim"] == D


def test_checkpoint_reloads_to_the_same_renders(subject, tmp_path):
    from hfagp.avatar.checkpoint import load_trained_avatar
    from hfagp.avatar.distributed import setup_distributed
    from hfagp.avatar.training import Trainer

    for tune_iter, source in ((0, "tuned"), (100, "reference")):
        settings = tiny_settings("rgb", steps=3, tune_iter=tune_iter)
        paths = paths_for(subject, tmp_path / f"rgb{tune_iter}")
        trainer = Trainer(settings, paths, setup_distributed("cpu"))
        trainer.run()
        avatar, info = load_trained_avatar(paths.output)
        assert info["generator"]["source"] == source and info["kind"] == "rgb"
        batch = trainer.test_set.batch([0, 1])
        with torch.no_grad():
            live = trainer.model(batch["signal"], batch["label"], deterministic=True)
            with trainer.averaged():
                averaged = trainer.model(batch["signal"], batch["label"], deterministic=True)
            b = avatar(batch["signal"], batch["label"], deterministic=True)
        # the checkpoint holds the moving average of the weights, which differs from the last iterate
        assert torch.allclose(averaged, b, atol=1e-5)
        assert not torch.allclose(live, b, atol=1e-4)
        assert info["metrics"]["weights"].startswith("moving average")


def test_weight_average_covers_what_adam_trains(subject, tmp_path):
    from hfagp.avatar.distributed import setup_distributed
    from hfagp.avatar.ema import effective_decay
    from hfagp.avatar.model import generator_trainable
    from hfagp.avatar.training import Trainer

    settings = tiny_settings("expression", steps=4, tune_iter=2, ema_decay=0.9)
    trainer = Trainer(settings, paths_for(subject, tmp_path / "ema_keys"), setup_distributed("cpu"))

    def trained() -> set:
        return {name for name, p in trainer.model.named_parameters() if p.requires_grad}

    # the frozen generator is not averaged (it would only be copied) until it joins the optimisation
    assert set(trainer.ema.shadow) == trained() and not any(k.startswith("generator.") for k in trained())
    key = "generator." + generator_trainable(trainer.model.generator)[0][0]
    expected = trainer.model.state_dict()[key].clone()
    for step in range(4):
        trainer.train_step()
        if step >= settings.tune_iter:  # the average starts at the frozen value
            d = effective_decay(settings.ema_decay, step)
            expected = d * expected + (1 - d) * trainer.model.state_dict()[key]
    assert set(trainer.ema.shadow) == trained() and key in trained()
    assert not any(k.startswith("generator.backbone.mapping.") for k in trainer.ema.shadow)
    torch.testing.assert_close(trainer.ema.shadow[key], expected, rtol=1e-5, atol=1e-6)
    assert not torch.equal(trainer.ema.shadow[key], trainer.model.state_dict()[key])


def test_without_ema_the_checkpoint_holds_the_last_iterate(subject, tmp_path):
    from hfagp.avatar.checkpoint import load_trained_avatar
    from hfagp.avatar.distributed import setup_distributed
    from hfagp.avatar.training import Trainer

    settings = tiny_settings("expression", steps=3, tune_iter=0, ema_decay=0.0)
    paths = paths_for(subject, tmp_path / "no_ema")
    trainer = Trainer(settings, paths, setup_distributed("cpu"))
    metrics = trainer.run()
    assert trainer.ema is None and metrics["weights"] == "last iterate"
    avatar, _ = load_trained_avatar(paths.output)
    batch = trainer.test_set.batch([0, 1])
    with torch.no_grad():
        a = trainer.model(batch["signal"], batch["label"], deterministic=True)
        b = avatar(batch["signal"], batch["label"], deterministic=True)
    assert torch.allclose(a, b, atol=1e-5)


def test_bad_inputs_give_clear_errors(subject, tmp_path):
    import pandas as pd

    from hfagp.avatar.distributed import setup_distributed
    from hfagp.avatar.model import check_driving_signal
    from hfagp.avatar.training import Trainer
    from hfagp.io.tables import write_expressions

    ctx = setup_distributed("cpu")
    # missing prior
    bad = dict(subject, prior=str(tmp_path / "nope.npz"))
    with pytest.raises(HfagpError, match="prior"):
        Trainer(tiny_settings("expression"), paths_for(bad, tmp_path / "a"), ctx)
    # audio features shorter than the video
    short = make_subject(tmp_path / "short", audio_rows=N_FRAMES - 3)
    with pytest.raises(HfagpError, match="shorter than the video"):
        Trainer(tiny_settings("audio"), paths_for(short, tmp_path / "b"), ctx)
    # audio features of the wrong shape
    np.save(tmp_path / "wrong.npy", np.zeros((N_FRAMES, 16, 30)))
    with pytest.raises(HfagpError, match="16, 29"):
        Trainer(tiny_settings("audio"), paths_for(dict(subject, audio_features=str(tmp_path / "wrong.npy")), tmp_path / "c"), ctx)
    # expressions missing for training frames
    table = pd.DataFrame({"frame": np.arange(3), "flag": "ok", "expression": list(np.zeros((3, EXPRESSION_SIZE)))})
    write_expressions(tmp_path / "few.parquet", table, {"model": "test"})
    with pytest.raises(HfagpError, match="no expression vector"):
        Trainer(tiny_settings("expression"), paths_for(dict(subject, expressions=str(tmp_path / "few.parquet")), tmp_path / "d"), ctx)
    # a driver input of the wrong size (e.g. NeRFace's 76 coefficients into a driver trained on our 10)
    info = {"kind": "expression", "signal": {"kind": "expression", "expression_size": 10, "expression_model": "3ddfa-bfm68"}}
    with pytest.raises(HfagpError, match="76"):
        check_driving_signal(info, np.zeros((5, 76)))
    check_driving_signal(info, np.zeros((5, 10)))
    with pytest.raises(HfagpError, match="16, 29"):
        check_driving_signal({"kind": "audio", "signal": {"kind": "audio"}}, np.zeros((5, 16, 28)))
    # the expression driver without expressions
    with pytest.raises(HfagpError, match="--expressions"):
        Trainer(tiny_settings("expression"), paths_for(dict(subject, expressions=None), tmp_path / "e"), ctx)
    # training resolution above the generator's
    with pytest.raises(HfagpError, match="exceeds"):
        Trainer(tiny_settings("expression", resolution=256), paths_for(subject, tmp_path / "f"), ctx)


def test_cli_registers_and_starts_without_torch():
    from hfagp.avatar import cli as train_cli

    parser = argparse.ArgumentParser()
    common = argparse.ArgumentParser(add_help=False)
    sub = parser.add_subparsers(dest="command")
    sub.add_command = functools.partial(sub.add_parser, parents=[common])
    train_cli.register(sub)
    args = parser.parse_args(
        "train --driver audio --crops c --cameras k --split s --prior p --generator-json g --audio-features a -o x/checkpoint.pt "
        "--steps 5 --tune-iter 2 --batch-size 2 --resolution 64 --rgb-resolution 64 --smoothing-start 3".split()
    )
    assert args.driver == "audio" and args.steps == 5 and args.resolution == 64 and args.func is not None
    code = "import sys, hfagp.avatar.cli; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
