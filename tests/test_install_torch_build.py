"""`make install` picks the torch build from the machine (issue 25): CUDA where an NVIDIA driver answers."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import REPO_ROOT

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def fake_nvidia_smi(folder: Path, exit_code: int) -> dict:
    """PATH with an ``nvidia-smi`` first that lists a GPU (exit 0) or fails as without a driver."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "nvidia-smi"
    script.write_text(f"#!/bin/sh\necho 'GPU 0: NVIDIA H200 (UUID: GPU-0)'\nexit {exit_code}\n")
    script.chmod(0o755)
    return {**os.environ, "PATH": f"{folder}:{os.environ['PATH']}"}


def make(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    overrides = {"MAKEFLAGS": "", "HFAGP_DEVICE": "", "TORCH_SPEC": ""}
    env = {k: v for k, v in (env or os.environ).items() if k not in overrides}
    return subprocess.run(["make", "-s", "-C", str(REPO_ROOT), *args], env=env, capture_output=True, text=True, timeout=60)


def test_cpu_build_without_a_driver(tmp_path):
    out = make("torch-spec", env=fake_nvidia_smi(tmp_path, 9)).stdout
    assert "TORCH_BUILD=cpu" in out and "TORCH_SPEC=torch==2.13.0+cpu" in out


def test_cuda_build_with_a_driver(tmp_path):
    out = make("torch-spec", env=fake_nvidia_smi(tmp_path, 0)).stdout
    assert "TORCH_BUILD=cuda" in out and "TORCH_SPEC=torch==2.13.0\n" in out


def test_forced_build_and_typo(tmp_path):
    env = fake_nvidia_smi(tmp_path, 0)
    assert "TORCH_BUILD=cpu" in make("torch-spec", "HFAGP_DEVICE=cpu", env=env).stdout
    assert "TORCH_SPEC=torch==2.12.0\n" in make("torch-spec", "HFAGP_DEVICE=cuda", "TORCH_VERSION=2.12.0").stdout
    typo = make("torch-spec", "HFAGP_DEVICE=gpu")
    assert typo.returncode != 0 and "HFAGP_DEVICE=gpu is not one of auto, cpu, cuda" in typo.stderr


def test_install_commands_fall_back_to_the_cpu_index_only_for_the_cpu_build(tmp_path):
    """The commands `make install` would run into a fresh venv (dry run)."""
    cpu = make("-n", "install", f"VENV={tmp_path / 'venv'}", env=fake_nvidia_smi(tmp_path / "a", 9)).stdout
    assert 'pip install "torch==2.13.0+cpu"' in cpu and "--extra-index-url https://download.pytorch.org/whl/cpu" in cpu
    assert cpu.index("torch==2.13.0+cpu") < cpu.index("pip install -e")  # torch first, then the project
    cuda = make("-n", "install", f"VENV={tmp_path / 'venv'}", env=fake_nvidia_smi(tmp_path / "b", 0)).stdout
    assert 'pip install "torch==2.13.0"' in cuda and f"touch {tmp_path / 'venv'}/.torch-cuda" in cuda
