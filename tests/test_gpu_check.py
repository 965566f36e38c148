"""bench/gpu_check.py, the prepared GPU check (issue 25): it runs on CPU as the lent machine would run it, and
its report keeps every step, failed ones included."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
from conftest import REPO_ROOT, fixtures_root
from lent_machine import blocking_site, denied_modules

BENCH = REPO_ROOT / "bench"
sys.path.insert(0, str(BENCH))

import gpu_check  # noqa: E402
import gpu_steps  # noqa: E402

SCHEMA = json.loads((BENCH / "gpu_check.schema.json").read_text())
STEP_NAMES = [step.name for step in gpu_steps.STEPS]


def lent_machine_env(tmp_path: Path, extra_denied: tuple[str, ...] = ()) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(blocking_site(tmp_path / "site", extra_denied))
    return env


def test_emulation_refuses_what_the_lent_machine_lacks(tmp_path):
    denied = denied_modules()
    assert {"dlib", "snakemake", "av", "lpips", "jsonschema"} <= denied
    assert not {"torch", "numpy", "pandas", "cv2", "yaml", "tensorboard", "hfagp"} & denied
    env = lent_machine_env(tmp_path)
    refused = subprocess.run([sys.executable, "-c", "import dlib"], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert refused.returncode != 0 and "No module named 'dlib'" in refused.stderr
    allowed = subprocess.run([sys.executable, "-c", "import torch, pandas, cv2"], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert allowed.returncode == 0, allowed.stderr


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    """``--device cpu --quick`` with only the lent machine's packages, from another working directory."""
    tmp = tmp_path_factory.mktemp("gpu_check")
    out = tmp / "out"
    args = [sys.executable, str(BENCH / "gpu_check.py"), "--device", "cpu", "--quick", "--out", str(out)]
    golden = fixtures_root() / "eg3d"
    if (golden / "sr512").is_dir():
        args += ["--fixtures", str(golden)]
    done = subprocess.run(args, env=lent_machine_env(tmp), cwd=tmp, capture_output=True, text=True, timeout=900)
    return done, out, (golden / "sr512").is_dir()


def test_quick_check_runs_every_step_on_cpu_with_the_lent_machines_packages(quick_report):
    done, out, have_fixtures = quick_report
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((out / "gpu_check.json").read_text())
    jsonschema.validate(report, SCHEMA)
    assert list(report["steps"]) == STEP_NAMES and report["finished"]
    for name, step in report["steps"].items():
        expected = "ok" if have_fixtures or name != "conformance" else "skipped"
        assert step["status"] == expected, (name, step.get("error"), step.get("traceback"))
    steps = {name: step.get("result", {}) for name, step in report["steps"].items()}
    assert steps["environment"]["torch"] and steps["environment"]["numerics"]["deterministic"]["deterministic_algorithms"]
    if have_fixtures:
        small = steps["conformance"]["small128"]  # --quick runs the small set (test_eg3d_precision: both sets)
        assert small["fp32_pass"] and small["fp16"]["pass"] and small["bf16"]["pass"]
        assert small["fp16"]["image"]["max_abs"] > small["fp32"]["image"]["max_abs"]  # the half path really ran
        assert small["repeat_bitwise_equal"] and small["autocast_fp16"]["pass"] and small["autocast_bf16"]["pass"]
        assert "not run" in steps["conformance"]["sr512"]["status"]
    render_cases = steps["render"]["cases"]
    assert {(c["mode"], c["precision"]) for c in render_cases} == {
        (m, p) for m in ("deterministic", "fast") for p in ("fp16", "fp32")} | {("deterministic", "autocast-fp16")}
    assert all(c["best_frames_per_s"] > 0 for c in render_cases)
    assert all(c["repeat_bitwise_equal"] for c in render_cases if c["mode"] == "deterministic")
    training = {(c["driver"], c["batch"], c["generator"]): c for c in steps["training"]["cases"]}
    assert set(training) == {(k, b, g) for k, b in gpu_steps.TRAINING_CASES for g in ("frozen", "tuned")}
    assert all(c["it_per_s"] > 0 and c["peak_mb"] > 0 for c in training.values())
    assert steps["training"]["deterministic_step"]["ok"]
    assert steps["inversion"]["pti"]["s_per_step"] > 0
    assert steps["ddp"]["backend"] == "gloo" and steps["ddp"]["wrapped"] == "DistributedDataParallel"
    for schedule in gpu_steps.SCHEDULES:
        hours = steps["cost_model"][schedule]["device_hours"]
        assert hours["total_three_drivers"] > hours["total_one_driver"] > hours["train_rgb"] > 0
    summary = (out / "gpu_check.txt").read_text()
    assert all(name in summary for name in STEP_NAMES)


def test_missing_package_is_named_with_what_to_carry(tmp_path):
    env = lent_machine_env(tmp_path, extra_denied=("pyarrow",))
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, str(BENCH / "gpu_check.py"), "--device", "cpu", "--quick", "--out", str(out)],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert "pyarrow" in done.stderr and "carry the wheel" in done.stderr
    report = json.loads((out / "gpu_check.json").read_text())
    jsonschema.validate(report, SCHEMA)
    assert "pyarrow" in report["error"]


def _context(tmp_path: Path) -> gpu_check.Context:
    return gpu_check.Context(device_name="cpu", quick=True, fixtures=None, out=tmp_path, compile=False)


def test_failed_timed_out_and_skipped_steps_are_recorded_and_the_run_goes_on(tmp_path):
    def fine(ctx):
        return {"value": 1, "headline": {"value": "1"}}

    def broken(ctx):
        gpu_steps.partial(ctx, "broken")["measured_before_failing"] = 3.5
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    def slow(ctx):
        gpu_steps.partial(ctx, "slow")["iterations"] = 0
        while True:
            ctx.results["slow"]["iterations"] += 1
            time.sleep(0.01)

    def unavailable(ctx):
        raise gpu_check.SkipStep("CUDA only")

    steps = [gpu_check.Step("fine", 10, fine), gpu_check.Step("broken", 10, broken), gpu_check.Step("slow", 0.5, slow),
             gpu_check.Step("unavailable", 10, unavailable), gpu_check.Step("after", 10, fine)]
    report = {"schema": gpu_check.SCHEMA, "device": "cpu", "quick": True, "finished": False, "elapsed_s": 0.0, "steps": {}}
    gpu_check.run_steps(steps, _context(tmp_path), budget_s=60, report=report)
    written = json.loads((tmp_path / "gpu_check.json").read_text())
    jsonschema.validate(written, SCHEMA)
    recorded = written["steps"]
    assert list(recorded) == ["fine", "broken", "slow", "unavailable", "after"]
    assert [recorded[n]["status"] for n in recorded] == ["ok", "failed", "timeout", "skipped", "ok"]
    assert recorded["broken"]["error"] == "RuntimeError: CUDA error: an illegal memory access was encountered"
    assert "in broken" in recorded["broken"]["traceback"]
    assert recorded["broken"]["result"] == {"measured_before_failing": 3.5}  # what it measured is kept
    assert recorded["slow"]["result"]["iterations"] > 0 and "cap" in recorded["slow"]["error"]
    assert recorded["unavailable"]["error"] == "CUDA only"
    assert recorded["fine"]["headline"] == {"value": "1"} and recorded["fine"]["result"] == {"value": 1}
    text = (tmp_path / "gpu_check.txt").read_text()
    assert "broken       failed" in text and "illegal memory access" in text


def test_a_spent_budget_skips_the_remaining_steps_with_the_reason(tmp_path):
    def sleepy(ctx):
        time.sleep(0.3)
        return {}

    steps = [gpu_check.Step("first", 30, sleepy), gpu_check.Step("second", 30, sleepy)]
    report = {"schema": gpu_check.SCHEMA, "device": "cpu", "quick": True, "finished": False, "elapsed_s": 0.0, "steps": {}}
    gpu_check.run_steps(steps, _context(tmp_path), budget_s=20.2, report=report)
    recorded = json.loads((tmp_path / "gpu_check.json").read_text())["steps"]
    assert recorded["first"]["status"] == "ok"
    assert recorded["second"]["status"] == "skipped" and "budget" in recorded["second"]["error"]


def test_report_is_written_before_each_step_runs(tmp_path):
    """A run killed mid-step leaves a report listing every step (pending ones included)."""
    seen = {}

    def look(ctx):
        seen.update(json.loads((tmp_path / "gpu_check.json").read_text())["steps"])
        return {}

    steps = [gpu_check.Step("one", 10, look), gpu_check.Step("two", 10, look)]
    report = {"schema": gpu_check.SCHEMA, "device": "cpu", "quick": True, "finished": False, "elapsed_s": 0.0, "steps": {}}
    gpu_check.run_steps(steps, _context(tmp_path), budget_s=60, report=report)
    assert seen["one"]["status"] == "ok" and seen["two"]["status"] == "pending"
