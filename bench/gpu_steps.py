"""The steps of ``bench/gpu_check.py`` (see its docstring); each takes the run's Context and returns a dict.

A step fills ``ctx.results[<step>]`` as it goes (through :func:`partial`), so a step cut short by its cap
still reports what it measured. Sizes: the full run uses the released ffhq512 architecture with random
weights (``hfagp.eg3d.snapshot``) and the authors' settings; ``--quick`` uses the demo architecture and toy
counts so the whole check runs on 2 CPU cores in about a minute (CI).
"""

from __future__ import annotations

import gc
import os
import platform
import resource
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

from gpu_check import Context, SkipStep, Step
from timing import mean_seconds

GOLDEN_SETS = ("small128", "sr512")
# Schedules of the cost model (per subject). "authors": HFA-GP's 800k iterations per driver with the generator
# tuned after 50k (config.yaml's comment); "recommended": the schema defaults, 100k with tuning after 50k.
# Inversion as config.yaml's comment recommends on a GPU: 30 frames, 500 W+ steps at batch 4, 350 PTI steps.
SCHEDULES = {
    "authors": {"train_steps": 800_000, "tune_iter": 50_000},
    "recommended": {"train_steps": 100_000, "tune_iter": 50_000},
}
INVERSION_PLAN = {"frames": 30, "steps": 500, "batch": 4, "pti_steps": 350}
RENDER_FRAMES = 1500  # one minute of 25 fps video


# -- helpers -----------------------------------------------------------------------------------------------
def find_fixtures(given: Path | None, repo_root: Path) -> Path | None:
    """The folder holding the EG3D golden sets: ``given``, .gpu_fixtures/, $HFAGP_FIXTURES, ../shared/fixtures."""
    candidates = [given] if given is not None else []
    candidates += [repo_root / ".gpu_fixtures"]
    if os.environ.get("HFAGP_FIXTURES"):
        candidates.append(Path(os.environ["HFAGP_FIXTURES"]))
    candidates.append(repo_root.parent / "shared" / "fixtures")
    for root in candidates:
        for folder in (root, root / "eg3d"):
            if any((folder / name / "config.json").is_file() for name in GOLDEN_SETS):
                return folder
    return None


def partial(ctx: Context, name: str) -> dict:
    """This step's result dict, registered so that a timeout or failure keeps what it holds."""
    return ctx.results.setdefault(name, {})


def peak_reset(ctx: Context) -> None:
    import torch

    gc.collect()
    if ctx.device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(ctx.device)


def peak_mb(ctx: Context) -> float:
    """Peak GPU memory allocated since :func:`peak_reset` (CUDA), or the process's peak RSS so far (CPU)."""
    import torch

    if ctx.device.type == "cuda":
        return round(torch.cuda.max_memory_allocated(ctx.device) / 2**20, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def seconds_per_call(ctx: Context, fn, warmup: int, min_time: float, max_calls: int) -> float:
    """:func:`timing.mean_seconds` on this run's device (synchronised on CUDA)."""
    return mean_seconds(fn, warmup, min_time, max_calls, sync=ctx.synchronize)


def error_text(err: BaseException) -> str:
    """``Type: first line of the message`` (the type alone for an empty message)."""
    message = str(err).strip()
    return f"{type(err).__name__}: {message.splitlines()[0]}" if message else type(err).__name__


def is_oom(err: BaseException) -> bool:
    return "out of memory" in str(err).lower()


def numerics(ctx: Context, deterministic: bool) -> dict:
    """The CUDA numerics of a mode: deterministic (no TF32, deterministic algorithms) or fast (TF32, autotuning)."""
    from hfagp.runtime import configure_cuda

    return configure_cuda(deterministic=deterministic, tf32=not deterministic)


def render_precision(ctx: Context, precision: str):
    """A case's precision: ``fp32`` (force_fp32 does the rest), ``fp16`` / ``bf16`` super-resolution (fp16 is
    CUDA's default; on CPU run through hfagp.eg3d.precision) or ``autocast-fp16`` / ``autocast-bf16``."""
    import torch

    from hfagp.eg3d.precision import REDUCED_DTYPES, reduced_precision

    if precision == "fp32":
        return nullcontext()
    if precision.startswith("autocast-"):
        return torch.autocast(ctx.device.type, dtype=REDUCED_DTYPES[precision.split("-", 1)[1]])
    return reduced_precision(precision, on_cpu=ctx.device.type == "cpu")


def architecture(ctx: Context) -> str:
    return "demo" if ctx.quick else "ffhq512"


def generator(ctx: Context):
    from hfagp.eg3d.snapshot import random_generator

    return random_generator(architecture(ctx), seed=0).to(ctx.device)


def benchmark_loss(device):
    """MSE + LPIPS (AlexNet) with seeded numbers: what the authors' loss costs, without any weight file."""
    from hfagp.losses.lpips import seeded_lpips
    from hfagp.losses.photometric import LossWeights, PhotometricLoss

    loss = PhotometricLoss(LossWeights(mse=1.0, lpips=0.0)).to(device)
    loss.lpips = seeded_lpips("alex", 0, device)
    loss.uses_lpips = True
    loss.weights = LossWeights(mse=1.0, lpips=1.0)
    loss.description = "mse + lpips(alex, seeded: timing only)"
    return loss


# -- environment ---------------------------------------------------------------------------------------------
def environment(ctx: Context) -> dict:
    import numpy
    import torch

    res = partial(ctx, "environment")
    res.update(python=platform.python_version(), platform=platform.platform(), numpy=numpy.__version__,
               torch=torch.__version__, torch_cuda=torch.version.cuda, cpu_count=os.cpu_count(),
               torch_threads=torch.get_num_threads(), cuda_available=torch.cuda.is_available(),
               hfagp_commit=_commit())
    if torch.backends.cudnn.is_available():
        res["cudnn"] = torch.backends.cudnn.version()
    if ctx.device.type == "cuda":
        props = torch.cuda.get_device_properties(ctx.device)
        res.update(gpu=props.name, capability=f"{props.major}.{props.minor}", gpu_memory_gb=round(props.total_memory / 2**30, 1),
                   multiprocessors=props.multi_processor_count, driver=_nvidia_smi("driver_version"))
    res["numerics"] = {"deterministic": numerics(ctx, True), "fast": numerics(ctx, False)}
    numerics(ctx, True)
    res["headline"] = {"device": res.get("gpu", f"cpu x{os.cpu_count()}"), "torch": f"{res['torch']} (CUDA {res['torch_cuda']})",
                       "driver": res.get("driver")}
    return res


def _commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _nvidia_smi(field: str) -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={field}", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, subprocess.SubprocessError):
        return None


# -- conformance ---------------------------------------------------------------------------------------------
def conformance(ctx: Context) -> dict:
    import torch

    from hfagp.eg3d.golden import IMAGE_ATOL, OUTPUT_KEYS, WS_ATOL, GoldenSet
    from hfagp.eg3d.precision import AUTOCAST_TOLERANCE, REDUCED_DTYPES, SR_TOLERANCE, reduced_precision

    if ctx.fixtures is None:
        raise SkipStep("no EG3D golden sets found: run `make gpu-fixtures` and carry .gpu_fixtures (or pass --fixtures)")
    res = partial(ctx, "conformance")
    res["tolerances"] = {"ws": WS_ATOL, "image_fp32": IMAGE_ATOL, "superresolution": SR_TOLERANCE, "autocast": AUTOCAST_TOLERANCE}
    res["numerics"] = numerics(ctx, True)
    failures = []
    for name in GOLDEN_SETS:
        if ctx.quick and name != "small128":
            res[name] = {"status": "not run at --quick (the tests check it on CPU)"}
            continue
        if not (ctx.fixtures / name / "config.json").is_file():
            res[name] = {"status": "absent"}
            continue
        golden = GoldenSet(ctx.fixtures / name)
        G = golden.build(ctx.device)
        entry = res[name] = {}
        entry["mapping_max_abs"] = golden.mapping_errors(G)
        entry["fp32"] = golden.output_errors(golden.synthesize(G, force_fp32=True))
        ok32 = all(v <= WS_ATOL for v in entry["mapping_max_abs"].values()) and all(
            entry["fp32"][k]["max_abs"] <= IMAGE_ATOL for k in OUTPUT_KEYS)
        entry["fp32_pass"] = ok32
        if not ok32:
            failures.append(f"{name} fp32")
        if golden.config["init_kwargs"].get("sr_num_fp16_res", 0) > 0:
            for precision, tolerance in SR_TOLERANCE.items():
                with reduced_precision(precision, on_cpu=ctx.device.type == "cpu"):
                    errors = golden.output_errors(golden.synthesize(G))
                passed = all(errors["image"][k] <= tolerance[k] for k in tolerance)
                entry[precision] = {**errors, "pass": passed}
                if not passed:
                    failures.append(f"{name} {precision}")
        for precision, tolerance in AUTOCAST_TOLERANCE.items():
            with torch.autocast(ctx.device.type, dtype=REDUCED_DTYPES[precision]):
                errors = golden.output_errors(golden.synthesize(G))
            passed = all(errors[k][m] <= tolerance[m] for k in OUTPUT_KEYS for m in tolerance)
            entry[f"autocast_{precision}"] = {**errors, "pass": passed}
            if not passed:
                failures.append(f"{name} autocast {precision}")
        first, second = golden.synthesize(G), golden.synthesize(G)
        entry["repeat_bitwise_equal"] = all(torch.equal(first[k], second[k]) for k in OUTPUT_KEYS)
        if not entry["repeat_bitwise_equal"]:
            failures.append(f"{name} determinism")
        del G
    res["headline"] = {name: _conformance_line(res[name]) for name in GOLDEN_SETS if name in res}
    if failures:
        raise AssertionError(f"outside tolerance: {', '.join(failures)} (details in result)")
    return res


def _conformance_line(entry: dict) -> str:
    if "status" in entry:
        return entry["status"]
    parts = [f"fp32 image {entry['fp32']['image']['max_abs']:.1e} ({'pass' if entry['fp32_pass'] else 'FAIL'})"]
    for precision in ("fp16", "bf16"):
        if precision in entry:
            parts.append(f"{precision}-SR {entry[precision]['image']['max_abs']:.1e} ({'pass' if entry[precision]['pass'] else 'FAIL'})")
    for precision in ("fp16", "bf16"):
        if f"autocast_{precision}" in entry:
            e = entry[f"autocast_{precision}"]
            parts.append(f"autocast {precision} {e['image']['max_abs']:.1e} ({'pass' if e['pass'] else 'FAIL'})")
    if "repeat_bitwise_equal" in entry:
        parts.append(f"repeat bitwise {'yes' if entry['repeat_bitwise_equal'] else 'NO'}")
    return ", ".join(parts)


# -- render --------------------------------------------------------------------------------------------------
def render(ctx: Context) -> dict:
    import torch

    res = partial(ctx, "render")
    G = generator(ctx)
    G.requires_grad_(False)
    res.update(architecture=architecture(ctx), image_resolution=int(G.img_resolution), cases=[])
    if ctx.device.type == "cpu":
        res["note"] = "on CPU the fp16 cases run CPU half kernels (hfagp.eg3d.precision): a code-path check, not a speed"
    resolutions = (32,) if ctx.quick else (128, 64)
    batches = (1, 2) if ctx.quick else (1, 2, 4, 8, 16, 32)
    min_time = 0.0 if ctx.quick else 0.6
    gen = torch.Generator().manual_seed(0)
    # (mode, precision, neural rendering resolution): fp16 = the official float16 super-resolution (the CUDA
    # default), fp32 = force_fp32, autocast-fp16 = torch.autocast over the whole synthesis (not used by hfagp).
    specs = [(mode, precision, nrr) for mode in ("deterministic", "fast") for precision in ("fp16", "fp32") for nrr in resolutions]
    specs.append(("deterministic", "autocast-fp16", resolutions[0]))
    for mode, precision, nrr in specs:
        case = {"mode": mode, "precision": precision, "neural_rendering_resolution": nrr, "batches": {}}
        res["cases"].append(case)
        try:
            _render_case(ctx, G, case, batches, min_time, gen)
        except RuntimeError as err:  # e.g. an op without a deterministic CUDA kernel: recorded, the others still run
            case["error"] = error_text(err)
    main = _main_case(res, resolutions[0])
    if main is not None:
        res["cuda_graphs"] = _cuda_graphs(ctx, G, main)
        res["torch_compile"] = _torch_compile(ctx, G, main)
    numerics(ctx, True)
    res["headline"] = {f"{c['mode']} {c['precision']} nrr {c['neural_rendering_resolution']}": c["error"] if "error" in c else
                       f"{c.get('batch1_frames_per_s')} frames/s at batch 1, {c.get('best_frames_per_s')} at batch {c.get('best_batch')}"
                       + ("" if c.get("repeat_bitwise_equal", True) else ", NOT bitwise repeatable")
                       for c in res["cases"]}
    for key in ("cuda_graphs", "torch_compile"):
        if key in res:
            res["headline"][key] = res[key].get("speedup", res[key].get("error", res[key].get("skipped")))
    failed = [c for c in res["cases"] if "error" in c]
    if failed:
        raise RuntimeError(f"{len(failed)} render case(s) failed: {failed[0]['error']}")
    return res


def _render_case(ctx: Context, G, case: dict, batches, min_time: float, gen) -> None:
    """Frames/s of one (mode, precision, resolution) case over growing batches, until no gain or out of memory."""
    import torch

    from hfagp.prior.inversion import frontal_labels

    mode, precision, nrr = case["mode"], case["precision"], case["neural_rendering_resolution"]
    numerics(ctx, mode == "deterministic")
    G.deterministic_rendering = mode == "deterministic"
    best = 0.0
    for batch in batches:
        ws = (torch.randn(batch, G.num_ws, G.w_dim, generator=gen) * 0.5).to(ctx.device)
        c = frontal_labels(batch, ctx.device)
        call = lambda: G.synthesis(ws, c, neural_rendering_resolution=nrr, noise_mode="const",  # noqa: E731
                                   force_fp32=precision == "fp32")
        peak_reset(ctx)
        try:
            with torch.no_grad(), render_precision(ctx, precision):
                seconds = seconds_per_call(ctx, call, warmup=0 if ctx.quick else 2, min_time=min_time, max_calls=20)
        except torch.cuda.OutOfMemoryError as err:
            case["batches"][str(batch)] = {"error": error_text(err)}
            break
        fps = batch / seconds
        case["batches"][str(batch)] = {"frames_per_s": round(fps, 2), "peak_mb": peak_mb(ctx)}
        if fps <= best:
            break  # no gain from a larger batch
        best, case["best_batch"], case["best_frames_per_s"] = fps, batch, round(fps, 2)
    case["batch1_frames_per_s"] = case["batches"].get("1", {}).get("frames_per_s")
    if mode == "deterministic" and case.get("best_batch"):  # the same batch-1 call twice
        ws = (torch.randn(1, G.num_ws, G.w_dim, generator=gen) * 0.5).to(ctx.device)
        c = frontal_labels(1, ctx.device)
        with torch.no_grad(), render_precision(ctx, precision):
            first, second = (G.synthesis(ws, c, neural_rendering_resolution=nrr, noise_mode="const",
                                         force_fp32=precision == "fp32") for _ in range(2))
        case["repeat_bitwise_equal"] = all(torch.equal(first[k], second[k]) for k in first)


def _main_case(res: dict, nrr: int) -> dict | None:
    for case in res["cases"]:
        if case["mode"] == "deterministic" and case["precision"] == "fp16" and case["neural_rendering_resolution"] == nrr:
            return case
    return None


def _speedup_inputs(ctx: Context, G, case: dict):
    """Deterministic numerics and the inputs of the main render case at its best batch: (batch, nrr, ws, c)."""
    import torch

    from hfagp.prior.inversion import frontal_labels

    numerics(ctx, True)
    G.deterministic_rendering = True
    batch, nrr = case.get("best_batch", 1), case["neural_rendering_resolution"]
    return batch, nrr, torch.randn(batch, G.num_ws, G.w_dim, device=ctx.device) * 0.5, frontal_labels(batch, ctx.device)


def _speedup(case: dict, batch: int, seconds: float, **extra) -> dict:
    fps = batch / seconds
    eager_fps = case.get("best_frames_per_s") or case.get("batch1_frames_per_s")
    return {"batch": batch, "frames_per_s": round(fps, 2), "speedup": round(fps / eager_fps, 2) if eager_fps else None, **extra}


def _error(err: BaseException) -> dict:
    return {"error": error_text(err)}


def _cuda_graphs(ctx: Context, G, case: dict) -> dict:
    """Replay one captured synthesis (deterministic, float16 SR) at the main case's best batch; speed-up vs eager."""
    import torch

    if ctx.device.type != "cuda":
        return {"skipped": "CUDA only"}
    if ctx.time_left() < 30:
        return {"skipped": "not enough time left in the step"}
    try:
        batch, nrr, ws, c = _speedup_inputs(ctx, G, case)
        with torch.no_grad():
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                for _ in range(3):
                    eager = G.synthesis(ws, c, neural_rendering_resolution=nrr, noise_mode="const")
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                captured = G.synthesis(ws, c, neural_rendering_resolution=nrr, noise_mode="const")
            graph.replay()
            torch.cuda.synchronize()
            same = torch.equal(captured["image"], eager["image"])
            seconds = seconds_per_call(ctx, graph.replay, warmup=2, min_time=0.6, max_calls=50)
        return _speedup(case, batch, seconds, bitwise_equal_to_eager=same)
    except Exception as err:  # noqa: BLE001 - a speed-up, never required
        return _error(err)


def _torch_compile(ctx: Context, G, case: dict) -> dict:
    """torch.compile of the synthesis call (deterministic, float16 SR, best batch): compile time and speed-up."""
    import torch

    if not ctx.compile:
        return {"skipped": "off (--compile on to try it here)"}
    need = 60 if ctx.quick else 120
    if ctx.time_left() < need:
        return {"skipped": f"not enough time left in the step (needs {need} s)"}
    try:
        batch, nrr, ws, c = _speedup_inputs(ctx, G, case)
        compiled = torch.compile(lambda w, cam: G.synthesis(w, cam, neural_rendering_resolution=nrr, noise_mode="const")["image"])
        with torch.no_grad(), render_precision(ctx, "fp16"):
            start = time.perf_counter()
            image = compiled(ws, c)
            ctx.synchronize()
            compile_s = time.perf_counter() - start
            eager = G.synthesis(ws, c, neural_rendering_resolution=nrr, noise_mode="const")["image"]
            seconds = seconds_per_call(ctx, lambda: compiled(ws, c), warmup=2, min_time=0.6, max_calls=50)
        return _speedup(case, batch, seconds, compile_s=round(compile_s, 1),
                        max_abs_vs_eager=float((image.float() - eager.float()).abs().max()))
    except Exception as err:  # noqa: BLE001 - a speed-up, never required
        return _error(err)


# -- training ------------------------------------------------------------------------------------------------
@contextmanager
def training_subject(ctx: Context):
    """A synthetic subject (bench_training.make_subject: 512 px crops, cameras, split, expressions, audio
    windows, a D = 50 prior) and a generator record pointing at a random-weight snapshot, in a temp folder."""
    from bench_training import make_subject

    from hfagp.eg3d import save_generator
    from hfagp.io import atomic

    with tempfile.TemporaryDirectory(prefix="hfagp-gpu-check-") as tmp:
        root = Path(tmp)
        subject = make_subject(root, frames=8, dim=50)
        G = generator(ctx).cpu()
        save_generator(G, root / "generator.pt")
        atomic.write_json(root / "generator.json", {"kind": "checkpoint", "checkpoint": str(root / "generator.pt"),
                                                    "demo_seed": 0, "tuned": None})
        yield root, subject


def make_trainer(ctx: Context, root: Path, subject: dict, kind: str, batch: int, tuned: bool, dist=None):
    from hfagp.avatar.distributed import Dist
    from hfagp.avatar.settings import TrainPaths, TrainSettings
    from hfagp.avatar.training import Trainer

    device = ctx.device
    settings = TrainSettings(
        kind=kind, steps=10**9, tune_iter=0 if tuned else 10**9, lr=3e-4, lpips_weight=0.0, batch_size=batch,
        resolution=None, rgb_resolution=64 if ctx.quick else 256, driver_width=0.25 if ctx.quick else 1.0,
        smoothing_start=0, smoothing_window=8, ema_decay=0.999, checkpoint_every=10**9, sample_every=10**9,
        device=str(device),
    )
    paths = TrainPaths(output=str(root / "out" / kind / "checkpoint.pt"), generator_json=str(root / "generator.json"), **subject)
    trainer = Trainer(settings, paths, dist if dist is not None else Dist(device=device))
    trainer.loss = benchmark_loss(device)
    return trainer


TRAINING_CASES = [("rgb", 1), ("rgb", 2), ("expression", 1), ("audio", 1)]


def training(ctx: Context) -> dict:
    import logging

    logging.getLogger("hfagp").setLevel(logging.ERROR)
    res = partial(ctx, "training")
    res.update(architecture=architecture(ctx), settings="D=50, MSE + LPIPS(alex), EMA 0.999, "
               + ("64 px RGB input, width 0.25 (quick)" if ctx.quick else "256 px RGB input, width 1.0"), cases=[])
    res["numerics"] = numerics(ctx, False)
    warmup, min_time, max_steps = (0, 0.0, 2) if ctx.quick else (2, 1.5, 20)
    with training_subject(ctx) as (root, subject):
        for kind, batch in TRAINING_CASES:
            # One trainer per driver: the generator frozen (before tune_iter), then tuned (it joins Adam).
            cases = [{"driver": kind, "batch": batch, "generator": phase} for phase in ("frozen", "tuned")]
            res["cases"] += cases
            trainer = None
            try:
                for case in cases:
                    peak_reset(ctx)
                    if trainer is None:
                        trainer = make_trainer(ctx, root, subject, kind, batch, tuned=False)
                    else:
                        trainer.enable_tuning()
                        trainer._wrap()
                    seconds = seconds_per_call(ctx, trainer.train_step, warmup, min_time, max_steps)
                    case.update(it_per_s=round(1 / seconds, 3), peak_mb=peak_mb(ctx), resolution=trainer.resolution)
            except Exception as err:  # noqa: BLE001 - one driver's failure is recorded; the others still run
                if not is_oom(err) and not isinstance(err, RuntimeError):
                    raise
                for case in cases:
                    if "it_per_s" not in case:
                        case["error"] = error_text(err)
            trainer = None
        # The deterministic switch on a training step (generator tuned): does every backward op have a
        # deterministic kernel on this device?
        numerics(ctx, True)
        try:
            trainer = make_trainer(ctx, root, subject, "rgb", 1, True)
            trainer.train_step()
            res["deterministic_step"] = {"ok": True}
        except Exception as err:  # noqa: BLE001 - recorded: it tells which op lacks a deterministic kernel
            res["deterministic_step"] = {"ok": False, "error": error_text(err)}
        trainer = None
    numerics(ctx, True)
    res["headline"] = {f"{c['driver']} b{c['batch']} {c['generator']}": (
        f"{c['it_per_s']} it/s, {c['peak_mb']} MB" if "it_per_s" in c else c.get("error")) for c in res["cases"]}
    res["headline"]["deterministic training step"] = "runs" if res["deterministic_step"]["ok"] else res["deterministic_step"]["error"]
    failed = [c for c in res["cases"] if "error" in c]
    if failed:
        raise RuntimeError(f"{len(failed)} training case(s) failed: {failed[0]['error']}")
    return res


# -- inversion -----------------------------------------------------------------------------------------------
def inversion(ctx: Context) -> dict:
    import torch

    from hfagp.prior.inversion import InversionSettings, frontal_labels, invert, pivotal_tuning, w_statistics

    res = partial(ctx, "inversion")
    numerics(ctx, False)
    G = generator(ctx)
    G.requires_grad_(False)
    start = time.perf_counter()
    w_avg, w_std, _ = w_statistics(G, ctx.device, samples=200 if ctx.quick else 10_000)
    res.update(architecture=architecture(ctx), w_statistics_s=round(time.perf_counter() - start, 2), cases=[])
    loss = benchmark_loss(ctx.device)
    steps = 2 if ctx.quick else 8
    for batch in ((1, 2) if ctx.quick else (1, 4)):
        target = torch.rand(batch, 3, G.img_resolution, G.img_resolution, device=ctx.device) * 2 - 1
        c = frontal_labels(batch, ctx.device)
        peak_reset(ctx)
        invert(G, target, c, w_avg, w_std, loss, InversionSettings(steps=1, batch_size=batch), progress=False)
        stamps: list[float] = []

        def stamp(step, ws):  # noqa: ARG001
            ctx.synchronize()
            stamps.append(time.perf_counter())

        ws, _ = invert(G, target, c, w_avg, w_std, loss, InversionSettings(steps=steps, batch_size=batch), callback=stamp, progress=False)
        per_step = (stamps[-1] - stamps[0]) / (len(stamps) - 1)
        res["cases"].append({"batch": batch, "s_per_step": round(per_step, 4), "peak_mb": peak_mb(ctx)})
    # Pivotal tuning: the generator's weights are optimised (batch 4 as in the pipeline).
    peak_reset(ctx)
    pivotal_tuning(G, target, c, ws, loss, steps=1, batch_size=batch, progress=False)
    ctx.synchronize()
    start = time.perf_counter()
    pivotal_tuning(G, target, c, ws, loss, steps=steps, batch_size=batch, progress=False)
    ctx.synchronize()
    res["pti"] = {"batch": batch, "s_per_step": round((time.perf_counter() - start) / steps, 4), "peak_mb": peak_mb(ctx)}
    numerics(ctx, True)
    res["headline"] = {f"W+ batch {c['batch']}": f"{c['s_per_step']} s/step, {c['peak_mb']} MB" for c in res["cases"]}
    res["headline"]["PTI"] = f"{res['pti']['s_per_step']} s/step, {res['pti']['peak_mb']} MB"
    return res


# -- ddp -----------------------------------------------------------------------------------------------------
def ddp(ctx: Context) -> dict:
    import torch
    import torch.distributed as dist

    from hfagp.avatar.distributed import Dist
    from hfagp.runtime import process_group_backend

    res = partial(ctx, "ddp")
    device = ctx.device
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = process_group_backend(device)
    res["backend"] = backend
    numerics(ctx, False)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dist.init_process_group(backend=backend, init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        with training_subject(ctx) as (root, subject):
            trainer = make_trainer(ctx, root, subject, "rgb", 2, True, dist=Dist(device=device, process_group=True))
            if trainer.ddp is None:
                raise AssertionError("the trainer did not wrap its model in DistributedDataParallel")
            res["wrapped"] = type(trainer.ddp).__name__
            seconds = seconds_per_call(ctx, trainer.train_step, warmup=1, min_time=0.0 if ctx.quick else 1.0, max_calls=10)
            res.update(driver="rgb", batch=2, it_per_s=round(1 / seconds, 3))
            trainer = None
    finally:
        dist.destroy_process_group()
    numerics(ctx, True)
    res["headline"] = {"one-process DDP step": f"{backend}, {res['it_per_s']} it/s (rgb, batch 2, generator tuned)"}
    return res


# -- cost model ----------------------------------------------------------------------------------------------
def cost_model(ctx: Context) -> dict:
    """Device-hours of one subject from the measured rates: inversion + PTI, each driver's training (RGB at
    batch 2, the others at 1; frozen then tuned generator), one minute of 512 px video rendered per driver."""
    train = {(c["driver"], c["batch"], c["generator"]): c.get("it_per_s") for c in ctx.results.get("training", {}).get("cases", [])}
    inv = {c["batch"]: c["s_per_step"] for c in ctx.results.get("inversion", {}).get("cases", [])}
    pti = ctx.results.get("inversion", {}).get("pti", {}).get("s_per_step")
    render_fps = None
    for case in ctx.results.get("render", {}).get("cases", []):
        if case["mode"] == "deterministic" and case["precision"] == "fp16":
            render_fps = case.get("best_frames_per_s")
            break
    if not train or not inv or pti is None:
        raise SkipStep("needs the training and inversion steps' rates")
    res = partial(ctx, "cost_model")
    res["note"] = ("toy sizes (--quick): not an estimate of the real model" if ctx.quick else
                   "random weights, the released ffhq512 architecture and the authors' settings")
    inv_batch = INVERSION_PLAN["batch"] if INVERSION_PLAN["batch"] in inv else max(inv)
    inversion_h = (INVERSION_PLAN["frames"] / inv_batch * INVERSION_PLAN["steps"] * inv[inv_batch] + INVERSION_PLAN["pti_steps"] * pti) / 3600
    render_h = RENDER_FRAMES / render_fps / 3600 if render_fps else None
    drivers = {"expression": ("expression", 1), "rgb": ("rgb", 2), "audio": ("audio", 1)}
    for schedule, plan in SCHEDULES.items():
        rows = {"inversion_and_pti": round(inversion_h, 3)}
        for name, (kind, batch) in drivers.items():
            frozen, tuned = train.get((kind, batch, "frozen")), train.get((kind, batch, "tuned"))
            if not frozen or not tuned:
                rows[f"train_{name}"] = None
                continue
            hours = (plan["tune_iter"] / frozen + (plan["train_steps"] - plan["tune_iter"]) / tuned) / 3600
            rows[f"train_{name}"] = round(hours, 3)
        rows["render_1_min_video"] = round(render_h, 4) if render_h else None
        trained = [rows[f"train_{name}"] for name in drivers if rows[f"train_{name}"]]
        rows["total_one_driver"] = round(inversion_h + max(trained, default=0) + (render_h or 0), 3)
        rows["total_three_drivers"] = round(inversion_h + sum(trained) + 3 * (render_h or 0), 3)
        res[schedule] = {"plan": {**plan, **INVERSION_PLAN, "render_frames": RENDER_FRAMES}, "device_hours": rows}
    res["headline"] = {schedule: f"{res[schedule]['device_hours']['total_one_driver']} device-hours per subject with one "
                       f"driver (the slowest), {res[schedule]['device_hours']['total_three_drivers']} with all three"
                       for schedule in SCHEDULES}
    return res


STEPS = [
    Step("environment", 60, environment),
    Step("conformance", 120, conformance),
    Step("render", 170, render, quick_cap_s=120),
    Step("training", 150, training, quick_cap_s=120),
    Step("inversion", 60, inversion),
    Step("ddp", 45, ddp),
    Step("cost_model", 5, cost_model),
]
