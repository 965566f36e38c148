"""The prepared GPU check: does hfagp work on CUDA, and how fast, in one command (README "First run on a GPU").

Usage (on the lent GPU machine, from the checkout's root, with the fixtures carried in ``.gpu_fixtures/``)::

    python3 bench/gpu_check.py --out "$OUT" --fixtures .gpu_fixtures --budget-s 420
    python3 bench/gpu_check.py --device cpu --quick --out /tmp/gpu_check     # every step at toy size (CI)

It needs only torch, numpy, pandas, pyarrow, opencv-python-headless, pillow, tqdm and pyyaml (what the lent
machine has; no dlib, snakemake, PyAV, lpips or jsonschema), imports ``hfagp`` from this checkout, never
prompts and never downloads. Each step runs under its own time cap and the whole run under ``--budget-s``;
``DIR/gpu_check.json`` and ``DIR/gpu_check.txt`` are rewritten after every step, so a run cut short still
returns what it measured. A step that raises is recorded as ``failed`` with its error and traceback, one
that runs past its cap as ``timeout``, and the run goes on with the next step. The steps (``bench/gpu_steps.py``):

* ``environment``: GPU, driver, torch / CUDA / cuDNN versions, the CUDA numerics each mode uses;
* ``conformance``: the EG3D golden vectors on the device in float32 (the tests' tolerances), with the
  float16 and bfloat16 super-resolution (``hfagp.eg3d.precision.SR_TOLERANCE``), and determinism (the same
  call twice, bitwise, deterministic mode);
* ``render``: frames/s of the full ffhq512 architecture (random weights) at batch 1 and the best batch, neural
  rendering 128 and 64, deterministic and fast mode, float32 and float16 super-resolution; CUDA graphs and
  ``torch.compile`` as speed-ups where they work;
* ``training``: it/s and peak memory of each driver at the authors' settings (D = 50, 256 px RGB input at
  batch 1 and 2, LPIPS, generator frozen and tuned), and whether a deterministic training step runs;
* ``inversion``: s/step and peak memory of W+ inversion with LPIPS;
* ``ddp``: one DistributedDataParallel training step in a one-process group (NCCL on CUDA, gloo on CPU);
* ``cost_model``: the device-hours of one subject at the authors' schedule and the recommended one, from the
  steps above.

Exit status: 0 when every step ran (``ok``, or ``skipped`` with a reason), 1 when one failed or timed out.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # hfagp from this checkout: the lent machine has no pip install of it
sys.path.insert(0, str(Path(__file__).resolve().parent))

SCHEMA = "hfagp-gpu-check/1"
STATUSES = ("ok", "failed", "timeout", "skipped")
# What the lent GPU machine's python3 has (issue 25): the check imports nothing else.
NEEDED_MODULES = {"torch": "torch", "numpy": "numpy", "pandas": "pandas", "pyarrow": "pyarrow",
                  "cv2": "opencv-python-headless", "PIL": "pillow", "tqdm": "tqdm", "yaml": "pyyaml"}


class StepTimeout(Exception):
    """A step ran past its time cap."""


class SkipStep(Exception):
    """A step that cannot run here (no fixtures, no CUDA for a CUDA-only part): recorded as skipped, with why."""


@dataclass
class Step:
    name: str
    cap_s: float
    run: Callable[["Context"], dict]
    quick_cap_s: float | None = None


@dataclass
class Context:
    """What a step sees: the device, the size of the run, the fixtures, the results of earlier steps."""

    device_name: str
    quick: bool
    fixtures: Path | None
    out: Path
    compile: bool
    results: dict = field(default_factory=dict)
    step_deadline: float = float("inf")

    def time_left(self) -> float:
        return self.step_deadline - time.monotonic()

    @property
    def device(self):
        import torch

        return torch.device(self.device_name)

    def synchronize(self) -> None:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def missing_modules() -> list[str]:
    """The distributions (pip names) among NEEDED_MODULES that this python cannot import."""
    import importlib

    missing = []
    for module, dist in NEEDED_MODULES.items():
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(dist)
    return missing


def write_atomic(path: Path, text: str) -> None:
    # Not hfagp.io.atomic: the report must be writable even when the imports behind hfagp fail.
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def summary_lines(report: dict) -> list[str]:
    """The text summary: one line per step, then each step's headline numbers."""
    lines = [f"hfagp GPU check ({report['device']}, quick={report['quick']}): "
             f"{'finished' if report['finished'] else 'running'}, {report['elapsed_s']:.0f} s"]
    for name, step in report["steps"].items():
        line = f"  {name:<12} {step['status']:<8} {step.get('seconds', 0):6.1f} s"
        if step.get("error"):
            line += f"  {step['error'].splitlines()[0][:160]}"
        lines.append(line)
        for key, value in (step.get("headline") or {}).items():
            lines.append(f"      {key}: {value}")
    return lines


def write_report(out: Path, report: dict) -> None:
    write_atomic(out / "gpu_check.json", json.dumps(report, indent=1, sort_keys=False, default=str) + "\n")
    write_atomic(out / "gpu_check.txt", "\n".join(summary_lines(report)) + "\n")


def _alarm(signum, frame):  # noqa: ARG001
    raise StepTimeout


def run_steps(steps: list[Step], ctx: Context, budget_s: float, report: dict) -> dict:
    """Run ``steps`` in order, each under its cap and the remaining budget; record and write after each."""
    start = time.monotonic()
    out = ctx.out
    for step in steps:
        report["steps"][step.name] = {"status": "pending"}
    write_report(out, report)
    for step in steps:
        cap = step.quick_cap_s if ctx.quick and step.quick_cap_s else step.cap_s
        left = budget_s - (time.monotonic() - start)
        record: dict = {"cap_s": cap}
        if left < min(cap, 20.0):
            record.update(status="skipped", seconds=0.0, error=f"budget: {left:.0f} s of --budget-s {budget_s:.0f} left")
            report["steps"][step.name] = record
            report["elapsed_s"] = time.monotonic() - start
            write_report(out, report)
            continue
        cap = min(cap, left)
        record["cap_s"] = cap
        ctx.step_deadline = time.monotonic() + cap
        began = time.monotonic()
        print(f"[gpu_check] {step.name}: up to {cap:.0f} s", flush=True)
        old = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, cap)
        try:
            result = step.run(ctx)
            record.update(status="ok", **_split_result(result))
        except StepTimeout:
            record.update(status="timeout", error=f"ran past its cap of {cap:.0f} s", **_split_result(ctx.results.get(step.name, {})))
        except SkipStep as why:
            record.update(status="skipped", error=str(why))
        except Exception as err:  # noqa: BLE001 - every failure is recorded, and the next step runs
            record.update(status="failed", error=f"{type(err).__name__}: {err}", traceback=traceback.format_exc(),
                          **_split_result(ctx.results.get(step.name, {})))
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
        record["seconds"] = time.monotonic() - began
        ctx.results[step.name] = record.get("result", {})
        report["steps"][step.name] = record
        report["elapsed_s"] = time.monotonic() - start
        write_report(out, report)
        print(f"[gpu_check] {step.name}: {record['status']} in {record['seconds']:.1f} s"
              + (f" ({record['error'].splitlines()[0][:200]})" if record.get("error") else ""), flush=True)
    report["finished"] = True
    report["elapsed_s"] = time.monotonic() - start
    write_report(out, report)
    return report


def _split_result(result: dict) -> dict:
    """A step returns its measurements, optionally with a ``headline`` dict for the text summary."""
    result = dict(result or {})
    headline = result.pop("headline", None)
    return {"result": result, **({"headline": headline} if headline else {})}


def resolve_device_name(name: str) -> str:
    """hfagp's device resolution (``auto``, clear error without CUDA), with a bare ``cuda`` made ``cuda:N``."""
    import torch

    from hfagp.errors import HfagpError
    from hfagp.runtime import resolve_device

    try:
        device = resolve_device(name)
    except HfagpError as err:
        raise SystemExit(f"--device {name}: {err}") from None
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return str(device)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help="folder for gpu_check.json and gpu_check.txt")
    parser.add_argument("--fixtures", type=Path, default=None,
                        help="folder holding the EG3D golden sets (small128/, sr512/); default: .gpu_fixtures/eg3d, "
                             "then $HFAGP_FIXTURES/eg3d, then ../shared/fixtures/eg3d")
    parser.add_argument("--budget-s", type=float, default=420.0, help="the whole run's time (default 420)")
    parser.add_argument("--device", default="auto", help="auto (cuda when available), cuda, cuda:N or cpu")
    parser.add_argument("--quick", action="store_true", help="every step at toy size (the demo architecture)")
    parser.add_argument("--only", default=None, help="comma-separated step names (default: all)")
    parser.add_argument("--compile", choices=("auto", "on", "off"), default="auto",
                        help="try torch.compile in the render step (auto: on CUDA and not --quick)")
    args = parser.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    missing = missing_modules()
    if missing:
        message = (f"missing Python package(s) {', '.join(missing)}: carry the wheel(s) in the working tree "
                   f"(pip download --no-deps {' '.join(missing)} -d wheels/) and pip install them first")
        write_report(args.out, {"schema": SCHEMA, "device": "unknown", "quick": args.quick, "finished": True,
                                "elapsed_s": 0.0, "error": message, "steps": {}})
        print(message, file=sys.stderr)
        return 1

    sys.modules.setdefault("gpu_check", sys.modules[__name__])  # one SkipStep class when run as a script
    from gpu_steps import STEPS, find_fixtures

    device_name = resolve_device_name(args.device)
    names = [s.name for s in STEPS]
    wanted = names if not args.only else [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        parser.error(f"unknown step(s) {', '.join(unknown)}; steps: {', '.join(names)}")
    compile_on = args.compile == "on" or (args.compile == "auto" and device_name.startswith("cuda") and not args.quick)
    ctx = Context(device_name=device_name, quick=args.quick, fixtures=find_fixtures(args.fixtures, REPO_ROOT),
                  out=args.out, compile=compile_on)
    report = {"schema": SCHEMA, "device": device_name, "quick": args.quick, "budget_s": args.budget_s,
              "argv": sys.argv[1:] if argv is None else list(argv), "fixtures": str(ctx.fixtures) if ctx.fixtures else None,
              "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "finished": False, "elapsed_s": 0.0, "steps": {}}
    run_steps([s for s in STEPS if s.name in wanted], ctx, args.budget_s, report)
    print("\n".join(summary_lines(report)))
    bad = [name for name, step in report["steps"].items() if step["status"] in ("failed", "timeout")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
