"""Same command, same seed, same thread count: bitwise the same results in fresh processes.

Each case runs a small script in two fresh Python processes (so nothing is
shared: memory layout, allocator state, library initialisation) and compares
SHA-256 digests of the raw bytes of what they produced, never tolerances:

* EG3D synthesis with jittered ray sampling (``torch.manual_seed`` right before
  the call, the conformance fixtures' protocol) for the demo architecture and
  the released ffhq512 one (random weights), at 2 threads;
* a short ``hfagp`` driver training (the RGB driver, the generator
  tuned after the first step): every tensor of the checkpoint, and
  ``metrics.json`` without its wall-clock fields;
* W+ inversion with a PTI step and the PCA prior (latents, tuned generator, loss table, ``prior.npz`` bytes).

One process runs on an idle machine and one beside a busy process (the defect showed under load, so the pair
compares the two regimes). Two more tests pin the cause: rendering calls none of the ops torch hands to MKL's vector math, and the ray marcher's bits do not
change with MKL's code path.

README "Reproducibility" says what is and is not bitwise across thread counts
and machines.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_training import make_subject

TESTS = Path(__file__).resolve().parent
PROCESSES = 2  # an idle run and a loaded one

CHILD = r'''
import hashlib, json, sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, sys.argv[1])
torch.set_num_threads(2)
mode = sys.argv[2]


def digest(tensors):
    h = hashlib.sha256()
    for name, tensor in tensors:
        h.update(name.encode())
        h.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


if mode == "synthesis":
    from hfagp.eg3d import camera
    from hfagp.eg3d.snapshot import random_generator

    G = random_generator(sys.argv[3], seed=0)
    yaws = (-20.0, 15.0) if sys.argv[3] == "demo" else (15.0,)  # ffhq512: one 512 px frame, 17 s
    c = torch.tensor(np.stack([camera.camera_label(camera.look_at_cam2world(yaw_deg=yaw, pitch_deg=-5.0)) for yaw in yaws]),
                     dtype=torch.float32)
    with torch.no_grad():
        z = torch.randn(len(yaws), G.z_dim, generator=torch.Generator().manual_seed(1))
        ws = G.mapping(z, c, truncation_psi=0.7)
        torch.manual_seed(3)
        out = G.synthesis(ws, c, noise_mode="const")
    print(json.dumps({"ws": digest([("ws", ws)]), **{k: digest([(k, out[k])]) for k in ("image", "image_raw", "image_depth")}}))
elif mode == "marching":
    from hfagp.eg3d.renderer import marching_weights

    g = torch.Generator().manual_seed(0)
    densities = torch.randn(2, 4096, 48, 1, generator=g) * 4
    depths = torch.sort(2.25 + torch.rand(2, 4096, 48, 1, generator=g) * 1.05, dim=-2).values
    weights = marching_weights(densities.squeeze(-1), depths.squeeze(-1))
    print(json.dumps({"weights": digest([("weights", weights)]), "exp": digest([("exp", torch.exp(-densities.abs()))])}))
elif mode == "prior":
    from test_prior_workflow import write_upstream

    from hfagp.cli import main

    subject = Path(sys.argv[3])
    write_upstream(subject, n=4)
    inv = subject / "inversion"
    assert main(["select-frames", "--cameras", str(subject / "cameras.parquet"), "--split", str(subject / "split.json"),
                 "--frames", "2", "-o", str(inv / "selection.json")]) == 0
    assert main(["invert", "--crops", str(subject / "crops"), "--cameras", str(subject / "cameras.parquet"),
                 "--selection", str(inv / "selection.json"), "-o", str(inv / "latents.pt"),
                 "--losses", str(inv / "losses.parquet"), "--generator-json", str(inv / "generator.json"),
                 "--tuned-generator", str(inv / "generator_tuned.pt"), "--steps", "3", "--pti-steps", "1",
                 "--batch-size", "2", "--lpips-weight", "0", "--threads", "2"]) == 0
    assert main(["prior", str(inv / "latents.pt"), "-o", str(subject / "prior.npz"), "--subspace-dim", "1"]) == 0
    latents = torch.load(inv / "latents.pt", weights_only=True)
    tuned = torch.load(inv / "generator_tuned.pt", weights_only=True)
    print(json.dumps({"latents": digest([(k, v) for k, v in sorted(latents.items()) if torch.is_tensor(v)]),
                      "tuned": digest(sorted((k, v) for k, v in tuned["state_dict"].items())) if "state_dict" in tuned else
                      hashlib.sha256((inv / "generator_tuned.pt").read_bytes()).hexdigest(),
                      "prior.npz": hashlib.sha256((subject / "prior.npz").read_bytes()).hexdigest(),
                      "losses": hashlib.sha256((inv / "losses.parquet").read_bytes()).hexdigest()}))
else:
    from test_training import paths_for, tiny_settings

    from hfagp.avatar.training import train

    subject = json.loads(sys.argv[4])
    out = Path(sys.argv[5])
    settings = tiny_settings(sys.argv[3], steps=4, tune_iter=2, checkpoint_every=2, sample_every=4)
    train(settings, paths_for(subject, out), threads=2)
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)

    def tensors(value, prefix=""):
        if torch.is_tensor(value):
            yield prefix, value
        elif isinstance(value, dict):
            for key in sorted(value, key=str):
                yield from tensors(value[key], f"{prefix}/{key}")
        elif isinstance(value, (list, tuple)):
            for k, item in enumerate(value):
                yield from tensors(item, f"{prefix}/{k}")

    metrics = json.loads((out / "metrics.json").read_text())
    metrics = {k: v for k, v in metrics.items() if not k.endswith(("_s", "it_per_s", "wall_time"))}
    print(json.dumps({"checkpoint": digest(tensors(checkpoint)),
                      "metrics": hashlib.sha256(json.dumps(metrics, sort_keys=True).encode()).hexdigest()}))
'''


def run_fresh(script: Path, *args: str, env: dict | None = None) -> dict:
    env = {**os.environ, "PYTHONHASHSEED": "0", **(env or {})}
    result = subprocess.run([sys.executable, str(script), str(TESTS), *args], capture_output=True, text=True,
                            env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def cpu_load(processes: int = 1):
    """A busy process competing for the cores: the defect of issue 24 showed mostly in a loaded fresh process."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(processes)]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def fresh_digests(script: Path, *args: str) -> list[dict]:
    """Digests of PROCESSES fresh runs: the first on an idle machine, the others beside a busy process."""
    digests = [run_fresh(script, *args)]
    with cpu_load():
        digests += [run_fresh(script, *args) for _ in range(PROCESSES - 1)]
    return digests


@pytest.fixture(scope="module")
def child(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("child") / "child.py"
    path.write_text(CHILD)
    return path


@pytest.mark.parametrize("architecture", ["demo", "ffhq512"])
def test_synthesis_is_bitwise_the_same_in_fresh_processes(child, architecture):
    digests = fresh_digests(child, "synthesis", architecture)
    assert all(d == digests[0] for d in digests), digests


@pytest.mark.parametrize("kind", ["rgb"])  # the largest driver; the others differ only in their encoder
def test_training_is_bitwise_the_same_in_fresh_processes(child, tmp_path, kind):
    subject = make_subject(tmp_path / "subject")
    subject_arg = json.dumps({k: None if v is None else str(v) for k, v in subject.items()})
    digests = [run_fresh(child, "train", kind, subject_arg, str(tmp_path / "run0"))]
    with cpu_load():
        digests += [run_fresh(child, "train", kind, subject_arg, str(tmp_path / f"run{k}")) for k in range(1, PROCESSES)]
    assert all(d == digests[0] for d in digests), digests


def test_inversion_and_prior_are_bitwise_the_same_in_fresh_processes(child, tmp_path):
    """W+ inversion with one PTI step, then the PCA prior: the latents, the tuned generator, the loss table and
    the bytes of prior.npz (whose zip members carry a fixed date, so equal arrays are equal files)."""
    digests = [run_fresh(child, "prior", str(tmp_path / "run0" / "s1"))]
    with cpu_load():
        digests += [run_fresh(child, "prior", str(tmp_path / f"run{k}" / "s1")) for k in range(1, PROCESSES)]
    assert all(d == digests[0] for d in digests), digests


def test_synthesis_runs_no_mkl_vector_math():
    """The cause of issue 24: torch.exp (MKL's VML) in the ray marcher. Rendering, forward and backward,
    now calls none of the ops torch hands to MKL's VML, so MKL's choice of code path cannot reach an image."""
    from torch.utils._python_dispatch import TorchDispatchMode

    from hfagp.eg3d import camera
    from hfagp.eg3d.snapshot import random_generator
    from hfagp.runtime import MKL_VECTOR_MATH_OPS

    called = set()

    class RecordOps(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            called.add(func.__name__.split(".")[0].rstrip("_"))
            return func(*args, **(kwargs or {}))

    G = random_generator("demo", seed=0)
    c = torch.tensor(camera.camera_label(camera.look_at_cam2world(yaw_deg=10.0, pitch_deg=0.0)), dtype=torch.float32)[None]
    ws = G.mapping(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(0)), c).detach().requires_grad_(True)
    with RecordOps():
        out = G.synthesis(ws, c, noise_mode="const")
        (out["image"].square().mean() + out["image_depth"].mean()).backward()
    assert {"softplus", "sigmoid", "expm1", "cumprod", "convolution"} <= called  # the recorder sees the renderer
    assert not called & set(MKL_VECTOR_MATH_OPS), sorted(called & set(MKL_VECTOR_MATH_OPS))
    assert ws.grad is not None and torch.isfinite(ws.grad).all()


@pytest.mark.skipif(not torch.backends.mkl.is_available(), reason="torch without MKL")
def test_ray_marching_does_not_depend_on_mkl_code_path(child):
    """The ray marcher's weights with MKL restricted to its SSE4.2 and AVX2 code paths, and unrestricted: the
    same bits, while torch.exp itself (what the marcher called before) gives different bits on these paths on
    this machine when its MKL has them. (The mapping and decoder layers' matrix products still run MKL's BLAS,
    whose bits depend on its code path too: README "Reproducibility" says what that means across machines.)"""
    paths = ["", "SSE4_2", "AVX2"]
    digests = [run_fresh(child, "marching", env={"MKL_ENABLE_INSTRUCTIONS": path} if path else {}) for path in paths]
    assert len({d["weights"] for d in digests}) == 1, dict(zip(paths, digests))
