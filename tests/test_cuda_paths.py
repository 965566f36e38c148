"""The CUDA-only code paths that can run without a GPU (issue 25): device resolution, the process-group
backend, the CUDA numerics switch, and checkpoints written on a CUDA device read back on CPU.

The reduced-precision super-resolution and autocast are in test_eg3d_precision.py; the whole check that
runs them on a GPU is bench/gpu_check.py (test_gpu_check.py).
"""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.serialization

from hfagp import eg3d
from hfagp.avatar import distributed
from hfagp.errors import HfagpError
from hfagp.io.artifacts import load_torch_artifact
from hfagp.runtime import configure_cuda, cuda_settings, process_group_backend, resolve_device


def test_auto_device_follows_cuda_availability(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(HfagpError, match="CUDA is not available; set device: cpu"):
        resolve_device("cuda:1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device(None) == torch.device("cpu")


def test_process_group_backend_is_nccl_for_cuda_and_gloo_for_cpu():
    assert process_group_backend(torch.device("cuda", 3)) == "nccl"
    assert process_group_backend("cuda") == "nccl"
    assert process_group_backend(torch.device("cpu")) == "gloo"


@pytest.mark.parametrize("device_name, backend, device", [("cuda", "nccl", torch.device("cuda", 1)), ("cpu", "gloo", torch.device("cpu"))])
def test_torchrun_process_joins_with_the_devices_backend(monkeypatch, device_name, backend, device):
    """Under torchrun (WORLD_SIZE 2, LOCAL_RANK 1) a CUDA run takes NCCL on its local GPU, a CPU run gloo."""
    joined = {}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: joined.setdefault("set_device", d))
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend: joined.setdefault("backend", backend))
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    for key, value in {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"}.items():
        monkeypatch.setenv(key, value)
    ctx = distributed.setup_distributed(device_name)
    assert joined["backend"] == backend and ctx.device == device and ctx.active and ctx.rank == 1
    assert ("set_device" in joined) == (device_name == "cuda")


def test_one_process_group_is_active():
    assert not distributed.Dist().active
    assert distributed.Dist(process_group=True).active  # bench/gpu_check.py's one-process DDP step


@pytest.fixture()
def restore_numerics():
    saved = cuda_settings()
    env = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    yield
    torch.backends.cuda.matmul.allow_tf32 = saved["matmul_allow_tf32"]
    torch.backends.cudnn.allow_tf32 = saved["cudnn_allow_tf32"]
    torch.backends.cudnn.deterministic = saved["cudnn_deterministic"]
    torch.backends.cudnn.benchmark = saved["cudnn_benchmark"]
    torch.use_deterministic_algorithms(saved["deterministic_algorithms"])
    if env is None:
        os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    else:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = env


def test_configure_cuda_sets_the_documented_numerics(restore_numerics, monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    settings = configure_cuda(deterministic=True)
    assert settings == {"matmul_allow_tf32": False, "cudnn_allow_tf32": False, "cudnn_deterministic": True,
                        "cudnn_benchmark": False, "deterministic_algorithms": True, "cublas_workspace_config": ":4096:8"}
    fast = configure_cuda(deterministic=False, tf32=True)
    assert fast["matmul_allow_tf32"] and fast["cudnn_allow_tf32"] and fast["cudnn_benchmark"]
    assert not fast["deterministic_algorithms"] and not fast["cudnn_deterministic"]
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    assert configure_cuda(deterministic=True)["cublas_workspace_config"] == ":16:8"  # the user's setting wins


def _save_as_if_on_cuda(monkeypatch, obj, path):
    """torch.save with every storage tagged ``cuda:0``, as a file written by a training run on a GPU is."""
    monkeypatch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
    torch.save(obj, path)
    monkeypatch.undo()


def test_cuda_written_artifacts_load_on_cpu(tmp_path, monkeypatch):
    state = {"step": 7, "weights": {"basis": torch.randn(3, 5)}, "history": [1.5, 2.5]}
    path = tmp_path / "resume.pt"
    _save_as_if_on_cuda(monkeypatch, state, path)
    if not torch.cuda.is_available():  # guards the test: the file really asks for CUDA
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(path, weights_only=True)
    loaded = load_torch_artifact(path, "resume file", "delete it")
    assert loaded["weights"]["basis"].device.type == "cpu"
    assert torch.equal(loaded["weights"]["basis"], state["weights"]["basis"]) and loaded["step"] == 7


def test_cuda_written_generator_checkpoint_loads_on_cpu(tmp_path, monkeypatch):
    G = eg3d.demo_generator(0)
    path = tmp_path / "generator.pt"
    monkeypatch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
    eg3d.save_generator(G, path)
    monkeypatch.undo()
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(path, weights_only=True)
    loaded = eg3d.load_generator(path, device="cpu")
    reference = G.state_dict()
    assert all(torch.equal(value, reference[key]) for key, value in loaded.state_dict().items())
