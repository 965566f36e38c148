"""Stage ``train``: the trained avatar of one subject and one driver (the HFA-GP model, SPEC section 2).

A driver maps a driving signal (the crop, expression coefficients or audio
windows) to D subspace weights; ``latent = delta + weights . Q`` with ``Q``
the QR-orthonormalised learnable basis (:class:`hfagp.subspace.PersonalSubspace`,
initialised from ``prior.npz``); EG3D renders the latent at the frame's camera
and the image, average-pooled to the training resolution, is compared with
the crop (MSE + LPIPS, :class:`hfagp.losses.PhotometricLoss`).

Schedule: Adam (lr 3e-4) on driver + basis + mean latent; the generator is
frozen (no gradients, not in the optimiser) for ``tune_iter`` steps, then
added to Adam as a second parameter group and fine-tuned jointly (its mapping
network is never used with W+ latents and stays frozen). The audio driver
smooths over ``smoothing_window`` neighbouring frames from ``smoothing_start``.

Determinism and resume: the frames of step ``s`` are a function of
``(seed, s)`` (an epoch-wise permutation seeded by ``(seed, epoch)``), and
``resume.pt`` holds every parameter, the optimiser, the step, whether the
generator is tuned and each process's RNG states, so a run killed at any
checkpoint and restarted with the same command gives the same weights as an
uninterrupted one (bitwise on CPU). ``resume.pt`` is written atomically every
``checkpoint_every`` steps and on SIGTERM/SIGINT (at the end of the current
step); ``checkpoint.pt`` is written atomically only once training finished,
then ``resume.pt`` is removed.

Multi-GPU: under ``torchrun`` (``WORLD_SIZE`` > 1) each process joins the
process group (NCCL on CUDA, gloo on CPU), trains a
``DistributedDataParallel`` copy of the trainable modules (re-wrapped when the
generator joins) on its shard of each global batch (``batch_size`` frames per
process); only rank 0 writes files, logs scalars and shows progress.

Outputs beside ``checkpoint.pt``: ``tensorboard/`` (loss terms, learning
rates, tuned flag, train/test PSNR, baseline PSNR, sample grids),
``samples/step_XXXXXX.png`` (ground truth | render for fixed train and test
frames), ``metrics.json`` (see :func:`final_metrics`), ``resume.pt`` while
unfinished.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import random
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from hfagp import atomic
from hfagp.avatar import CHECKPOINT_FORMAT, Avatar, build_driver_from_args, build_subspace, generator_trainable
from hfagp.distributed import Dist, all_reduce_mean, any_rank, barrier, setup_distributed
from hfagp.ema import WeightAverage
from hfagp.errors import HfagpError
from hfagp.logs import get_logger
from hfagp.train_data import DRIVER_KINDS, DriverDataset, load_subject

log = get_logger("training")

RESUME_FORMAT = "hfagp-driver-resume-1"
SAMPLE_FRAMES = 4  # per split on the sample grids
EVAL_FRAMES = 16  # per split in the periodic (TensorBoard) evaluation; the final one uses every frame
EVAL_BATCH = 8
TILE = 128
# Settings that must match for a resume to continue the same run.
RESUME_KEYS = (
    "kind", "seed", "batch_size", "resolution", "rgb_resolution", "driver_width", "smoothing_window", "tune_iter",
    "smoothing_start", "ema_decay",
)


@dataclass
class TrainSettings:
    """Every number of the stage (config.yaml block ``training`` + lpips, device, seed)."""

    kind: str = "expression"
    steps: int = 100_000
    tune_iter: int = 50_000
    lr: float = 3e-4
    generator_lr: float | None = None  # None = lr
    batch_size: int = 1
    resolution: int | None = None  # None = min(256, generator size)
    rgb_resolution: int = 256
    driver_width: float = 1.0
    mse_weight: float = 1.0
    lpips_weight: float = 1.0
    lpips_backbone: str = "alex"
    lpips_weights: str | None = None
    smoothing_start: int = 300_000
    smoothing_window: int = 8
    ema_decay: float = 0.999  # 0 = the avatar keeps the last iterate's weights
    checkpoint_every: int = 1000
    sample_every: int = 1000
    log_every: int = 10
    device: str = "cpu"
    seed: int = 0

    def check(self) -> None:
        if self.kind not in DRIVER_KINDS:
            raise HfagpError(f"unknown driver {self.kind!r}; choose one of {', '.join(DRIVER_KINDS)}")
        for name in ("steps", "batch_size", "rgb_resolution", "smoothing_window", "checkpoint_every", "sample_every", "log_every"):
            if int(getattr(self, name)) < 1:
                raise HfagpError(f"training setting {name} must be >= 1, got {getattr(self, name)!r}; check config.yaml")
        for name in ("tune_iter", "smoothing_start"):
            if int(getattr(self, name)) < 0:
                raise HfagpError(f"training setting {name} must be >= 0, got {getattr(self, name)!r}; check config.yaml")
        for name in ("lr", "driver_width"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise HfagpError(f"training setting {name} must be > 0, got {value!r}; check config.yaml")
        if not (math.isfinite(self.ema_decay) and 0.0 <= self.ema_decay < 1.0):
            raise HfagpError(f"training setting ema_decay must be in [0, 1), got {self.ema_decay!r}; check config.yaml")
        if self.generator_lr is not None and not (math.isfinite(self.generator_lr) and self.generator_lr > 0):
            raise HfagpError(f"generator_lr must be > 0, got {self.generator_lr!r}")
        if self.resolution is not None and self.resolution < 16:
            raise HfagpError(f"training resolution must be >= 16, got {self.resolution}; check config.yaml")


@dataclass
class TrainPaths:
    """Inputs and the output of the stage."""

    crops: str
    cameras: str
    split: str
    prior: str
    generator_json: str
    output: str
    expressions: str | None = None
    audio_features: str | None = None

    @property
    def out_dir(self) -> Path:
        return Path(self.output).parent

    @property
    def resume(self) -> Path:
        return self.out_dir / "resume.pt"


# ---------------------------------------------------------------------------
# small helpers


def batch_indices(seed: int, step: int, n: int, size: int) -> list[int]:
    """Dataset indices of step ``step``'s global batch: position ``step*size+i`` of the epoch-wise permutation.

    A pure function of ``(seed, step)``, so a resumed run draws the same frames.
    """
    out, perms = [], {}
    for p in range(step * size, (step + 1) * size):
        epoch, pos = divmod(p, n)
        if epoch not in perms:
            perms[epoch] = np.random.default_rng([int(seed), int(epoch)]).permutation(n)
        out.append(int(perms[epoch][pos]))
    return out


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR (dB) of images in [-1,1] (pred clamped), peak 1 on the [0,1] scale."""
    mse = (((pred.clamp(-1, 1) - target) / 2.0) ** 2).flatten(1).mean(dim=1)
    return -10.0 * torch.log10(mse.clamp_min(1e-10))


def _copied(state: dict) -> dict:
    """CPU copies of a state dict (``.cpu()`` alone aliases CPU tensors, which later steps would change)."""
    return {k: v.detach().cpu().clone() for k, v in state.items()}


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_process(seed: int, rank: int) -> None:
    """Seed the RNGs a training step draws from (ray jitter), differently per process."""
    s = (int(seed) * 1_000_003 + 17 * int(rank) + 1) % 2**31
    torch.manual_seed(s)
    np.random.seed(s)
    random.seed(s)


def _caption(tile: np.ndarray, text: str) -> np.ndarray:
    import cv2

    for colour, width in (((0, 0, 0), 2), ((255, 255, 255), 1)):
        cv2.putText(tile, text, (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.33, colour, width, cv2.LINE_AA)
    return tile


def _to_tiles(x: torch.Tensor) -> list[np.ndarray]:
    import cv2

    images = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    interp = cv2.INTER_AREA if images.shape[1] > TILE else cv2.INTER_LINEAR
    return [np.ascontiguousarray(cv2.resize(im, (TILE, TILE), interpolation=interp)) for im in images]


# ---------------------------------------------------------------------------
# the driver's build arguments


def driver_build_args(settings: TrainSettings, out_dim: int, input_dim: int | None) -> dict:
    """The arguments of :func:`hfagp.drivers.build_driver` (stored in the checkpoint to rebuild the driver)."""
    args = {"kind": settings.kind, "out_dim": int(out_dim)}
    if settings.kind == "rgb":
        args.update(resolution=int(settings.rgb_resolution), width=float(settings.driver_width))
    elif settings.kind == "expression":
        args.update(input_dim=int(input_dim))
    else:
        args.update(seq_len=int(settings.smoothing_window))
    return args


# ---------------------------------------------------------------------------
# the trainer


class Trainer:
    """One training run (see the module docstring); :meth:`run` returns the final metrics."""

    def __init__(self, settings: TrainSettings, paths: TrainPaths, ctx: Dist, on_step: Callable | None = None) -> None:
        from hfagp.inversion import load_recorded_generator
        from hfagp.losses import LossWeights, PhotometricLoss

        settings.check()
        self.settings = settings
        self.paths = paths
        self.ctx = ctx
        self.on_step = on_step
        self.stop_requested = False
        device = ctx.device

        # Data first: cheap checks before anything heavy.
        self.data = load_subject(settings.kind, paths.crops, paths.cameras, paths.split, paths.expressions, paths.audio_features)
        torch.manual_seed(settings.seed)  # identical initial weights on every process
        subspace = build_subspace(paths.prior)
        self.generator_json = Path(paths.generator_json)
        G = load_recorded_generator(self.generator_json, device)
        G.requires_grad_(False)
        self.generator_record = json.loads(self.generator_json.read_text())
        self.demo_generator = self.generator_record.get("kind") == "demo"
        resolution = settings.resolution or min(256, int(G.img_resolution))
        if resolution > G.img_resolution:
            raise HfagpError(
                f"training resolution {resolution} exceeds the generator's {G.img_resolution} px; "
                "set training.resolution to at most that (or null)"
            )
        self.resolution = int(resolution)
        input_dim = None
        if settings.kind == "expression":
            input_dim = self.data.expression_size
        self.build_args = driver_build_args(settings, int(subspace.dim), input_dim)
        driver = build_driver_from_args(self.build_args)
        self.model = Avatar(settings.kind, driver, subspace, G, self.resolution).to(device)
        self.loss = PhotometricLoss(
            LossWeights(mse=settings.mse_weight, lpips=settings.lpips_weight),
            lpips_backbone=settings.lpips_backbone,
            lpips_weights=settings.lpips_weights,
            device=device,
        ).to(device)
        trainable = list(self.model.driver.parameters()) + list(self.model.subspace.parameters())
        self.optimizer = torch.optim.Adam([{"params": trainable, "lr": settings.lr, "name": "driver"}], lr=settings.lr)
        # The rendered avatar uses a moving average of the weights (hfagp.ema): at batch 1 the last iterate is noisy.
        # It covers what Adam trains: driver and subspace now, the generator once it is tuned (enable_tuning).
        self.ema = (
            WeightAverage(self.model, settings.ema_decay, keys=self._state_keys(trainable)) if settings.ema_decay > 0 else None
        )
        self.tuning = False
        self.step = 0
        self.elapsed = 0.0
        self.ddp = None
        self.history: list[dict] = []

        self.train_set = DriverDataset(self.data, self.data.train, self.resolution, settings.rgb_resolution, settings.smoothing_window)
        self.test_set = (
            DriverDataset(self.data, self.data.test, self.resolution, settings.rgb_resolution, settings.smoothing_window)
            if ctx.main
            else None
        )
        seed_process(settings.seed, ctx.rank)
        self.resumed = self._maybe_resume()
        self._wrap()

    # -- generator fine-tuning -------------------------------------------------
    def enable_tuning(self) -> None:
        """Unfreeze the generator and add it to Adam as a second parameter group."""
        if self.tuning:
            return
        params = [p for _, p in generator_trainable(self.model.generator)]
        for p in params:
            p.requires_grad_(True)
        lr = self.settings.generator_lr or self.settings.lr
        self.optimizer.add_param_group({"params": params, "lr": lr, "name": "generator"})
        if self.ema is not None:
            self.ema.track(self.model, self._state_keys(params))
        self.tuning = True

    def _state_keys(self, params: list[nn.Parameter]) -> list[str]:
        """The names of ``params`` in ``self.model.state_dict()``."""
        wanted = {id(p) for p in params}
        return [name for name, p in self.model.named_parameters() if id(p) in wanted]

    def _wrap(self) -> None:
        """(Re-)wrap the model in DistributedDataParallel for the current set of trainable parameters."""
        if not self.ctx.active:
            self.ddp = None
            return
        from torch.nn.parallel import DistributedDataParallel as DDP

        if self.ddp is not None:
            self.ddp = None
            gc.collect()
        device_ids = [self.ctx.device.index] if self.ctx.device.type == "cuda" else None
        self.ddp = DDP(self.model, device_ids=device_ids, find_unused_parameters=True, broadcast_buffers=False)

    @property
    def net(self) -> nn.Module:
        return self.ddp if self.ddp is not None else self.model

    # -- resume ----------------------------------------------------------------
    def _fingerprint(self) -> dict:
        s = asdict(self.settings)
        fp = {k: s[k] for k in RESUME_KEYS}
        fp["resolution"] = self.resolution
        fp["subspace_dim"] = int(self.model.subspace.dim)
        return fp

    def _state(self, rng_states: list) -> dict:
        return {
            "format": RESUME_FORMAT,
            "step": self.step,
            "tuning": self.tuning,
            "elapsed": self.elapsed,
            "driver": self.model.driver.state_dict(),
            "subspace": self.model.subspace.state_dict(),
            "generator": self.model.generator.state_dict() if self.tuning else None,
            "optimizer": self.optimizer.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "rng": rng_states,
            "world_size": self.ctx.world,
            "fingerprint": self._fingerprint(),
            "history": self.history,
        }

    def _gather_rng(self) -> list:
        state = rng_state()
        if not self.ctx.active:
            return [state]
        import torch.distributed as dist

        states = [None] * self.ctx.world
        dist.all_gather_object(states, state)
        return states

    def save_resume(self) -> None:
        """Write ``resume.pt`` atomically (collective under DDP: every process calls it)."""
        states = self._gather_rng()
        if self.ctx.main:
            atomic.torch_save(self.paths.resume, self._state(states))
            log.info("resume state written at step %d: %s", self.step, self.paths.resume)

    def _maybe_resume(self) -> bool:
        path = self.paths.resume
        if not path.exists():
            return False
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
            if state.get("format") != RESUME_FORMAT:
                raise ValueError(f"format {state.get('format')!r}")
        except Exception as err:
            raise HfagpError(f"cannot read the resume file {path} ({err}); delete it to start the training over") from err
        mine, theirs = self._fingerprint(), state.get("fingerprint", {})
        diff = {k: (theirs.get(k), v) for k, v in mine.items() if theirs.get(k) != v}
        if diff:
            text = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in diff.items())
            raise HfagpError(
                f"{path} was written with other settings ({text}); restore them to resume, or delete {path} to start over"
            )
        if state["tuning"]:
            self.enable_tuning()
            self.model.generator.load_state_dict(state["generator"])
        self.model.driver.load_state_dict(state["driver"])
        self.model.subspace.load_state_dict(state["subspace"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        for group in self.optimizer.param_groups:  # a changed lr takes effect on resume
            group["lr"] = (self.settings.generator_lr or self.settings.lr) if group.get("name") == "generator" else self.settings.lr
        self.step = int(state["step"])
        self.elapsed = float(state.get("elapsed", 0.0))
        self.history = list(state.get("history", []))
        rngs = state["rng"]
        if state.get("world_size", 1) == self.ctx.world and self.ctx.rank < len(rngs):
            set_rng_state(rngs[self.ctx.rank])
        else:
            log.warning("%s was written by %s processes, this run has %d: RNG streams reseeded (not bitwise identical)", path, state.get("world_size"), self.ctx.world)
            seed_process(self.settings.seed + self.step, self.ctx.rank)
        if self.ctx.main:
            log.info("resuming from %s at step %d%s", path, self.step, " (generator tuned)" if self.tuning else "")
        return True

    # -- evaluation ------------------------------------------------------------
    def averaged(self):
        """Context in which ``self.model`` holds the averaged weights (a no-op without EMA)."""
        return self.ema.applied(self.model) if self.ema is not None else contextlib.nullcontext()

    def smooth_at(self, step: int) -> bool:
        return self.settings.kind == "audio" and step >= self.settings.smoothing_start

    @torch.no_grad()
    def evaluate(self, dataset: DriverDataset, indices: list[int], smooth: bool) -> tuple[np.ndarray, torch.Tensor]:
        """Per-frame PSNR and the renders (deterministic) of ``indices``."""
        values, renders = [], []
        for start in range(0, len(indices), EVAL_BATCH):
            batch = dataset.batch(indices[start : start + EVAL_BATCH], self.ctx.device)
            pred = self.model(batch["signal"], batch["label"], smooth=smooth, deterministic=True)
            values.append(psnr(pred, batch["target"]).cpu())
            renders.append(pred.cpu())
        if not values:
            return np.zeros(0), torch.zeros(0)
        return torch.cat(values).double().numpy(), torch.cat(renders)

    def baseline_psnr(self, dataset: DriverDataset | None) -> float | None:
        """PSNR of the mean training crop against every frame of ``dataset``."""
        if dataset is None or len(dataset) == 0:
            return None
        mean = self.train_set.mean_target()
        targets = dataset.targets.float() / 127.5 - 1.0
        return float(psnr(mean.expand_as(targets), targets).double().mean())

    def sample_grid(self, smooth: bool) -> tuple[np.ndarray, dict]:
        """Ground truth | render for fixed train and test frames, and their PSNR."""
        from hfagp.inversion import tile_grid

        rows, scores = [], {}
        for name, dataset in (("train", self.train_set), ("test", self.test_set)):
            if dataset is None or len(dataset) == 0:
                continue
            picks = sorted({int(round(x)) for x in np.linspace(0, len(dataset) - 1, min(SAMPLE_FRAMES, len(dataset)))})
            values, renders = self.evaluate(dataset, picks, smooth)
            truth = _to_tiles(dataset.batch(picks)["target"])
            for i, index in enumerate(picks):
                frame = dataset.frames[index]
                rows.append(
                    [_caption(truth[i], f"{name} #{frame}"), _caption(_to_tiles(renders[i : i + 1])[0], f"{values[i]:.2f} dB")]
                )
            scores[name] = float(values.mean())
        return tile_grid(rows, groups_per_row=2), scores

    def write_samples(self, writer, step: int) -> None:
        from hfagp.inversion import write_png

        grid, _ = self.sample_grid(self.smooth_at(step - 1))
        write_png(self.paths.out_dir / "samples" / f"step_{step:06d}.png", grid)
        if writer is not None:
            writer.add_image("samples", grid, step, dataformats="HWC")

    def periodic_eval(self, writer, step: int) -> dict:
        smooth = self.smooth_at(step - 1)
        out = {}
        for name, dataset in (("train", self.train_set), ("test", self.test_set)):
            if dataset is None or len(dataset) == 0:
                continue
            picks = sorted({int(round(x)) for x in np.linspace(0, len(dataset) - 1, min(EVAL_FRAMES, len(dataset)))})
            values, _ = self.evaluate(dataset, picks, smooth)
            out[name] = float(values.mean())
            writer.add_scalar(f"psnr/{name}_subset", out[name], step)
        return out

    # -- the loop ----------------------------------------------------------------
    def _install_signals(self):
        import threading

        if threading.current_thread() is not threading.main_thread():
            return {}

        def request_stop(signum, frame):  # noqa: ARG001
            if self.stop_requested:  # a second Ctrl-C stops at once
                raise KeyboardInterrupt
            self.stop_requested = True
            log.warning("signal %d: stopping after this step and writing %s", signum, self.paths.resume)

        old = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            old[sig] = signal.signal(sig, request_stop)
        return old

    def train_step(self) -> dict:
        s = self.settings
        step = self.step
        if not self.tuning and step >= s.tune_iter:
            self.enable_tuning()
            self._wrap()
            if self.ctx.main:
                log.info("step %d: the generator joins the optimisation (lr %g)", step, s.generator_lr or s.lr)
        global_batch = batch_indices(s.seed, step, len(self.train_set), s.batch_size * self.ctx.world)
        mine = global_batch[self.ctx.rank * s.batch_size : (self.ctx.rank + 1) * s.batch_size]
        batch = self.train_set.batch(mine, self.ctx.device)
        pred = self.net(batch["signal"], batch["label"], smooth=self.smooth_at(step))
        total, terms = self.loss(pred, batch["target"])
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update(self.model, self.step)
        self.step += 1
        return {"loss": total.detach(), **{k: v.detach() for k, v in terms.items()}}

    def run(self) -> dict:
        from tqdm import tqdm

        s, ctx = self.settings, self.ctx
        writer = None
        if ctx.main:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(self.paths.out_dir / "tensorboard"), purge_step=self.step if self.resumed else None)
            baseline = self.baseline_psnr(self.test_set)
            if baseline is not None:
                writer.add_scalar("psnr/baseline_test", baseline, self.step)
            log.info(
                "training the %s driver: %d train / %d test frames, %d px, D=%d, %s, %s generator, %d process(es), steps %d..%d",
                s.kind, len(self.train_set), len(self.test_set or []), self.resolution, self.model.subspace.dim,
                self.loss.description, "demo (random-init)" if self.demo_generator else self.generator_record.get("kind"),
                ctx.world, self.step, s.steps,
            )
        old_handlers = self._install_signals()
        bar = tqdm(total=s.steps, initial=self.step, disable=not ctx.main, desc=f"train {s.kind}", unit="it", mininterval=1.0, dynamic_ncols=True)
        started = loop_start = time.perf_counter()
        start_step = self.step
        last_saved = self.step
        try:
            while self.step < s.steps:
                terms = self.train_step()
                step = self.step
                if self.on_step is not None:
                    self.on_step(self, step)
                if step % s.log_every == 0 or step == s.steps:
                    values = all_reduce_mean(torch.stack([terms[k].float() for k in sorted(terms)]), ctx)
                    scalars = {k: float(v) for k, v in zip(sorted(terms), values)}
                    self.history.append({"step": step, **scalars})
                    if writer is not None:
                        for k, v in scalars.items():
                            writer.add_scalar(f"loss/{k}", v, step)
                        for group in self.optimizer.param_groups:
                            writer.add_scalar(f"lr/{group.get('name', 'group')}", group["lr"], step)
                        writer.add_scalar("generator/tuned", float(self.tuning), step)
                        if s.kind == "audio":
                            writer.add_scalar("audio/smoothing", float(self.smooth_at(step - 1)), step)
                bar.update(1)
                if ctx.main:
                    bar.set_postfix(loss=f"{float(terms['loss']):.4f}", refresh=False)
                if step % s.sample_every == 0 and step < s.steps and ctx.main:
                    with self.averaged():
                        scores = self.periodic_eval(writer, step)
                        self.write_samples(writer, step)
                    bar.set_postfix(loss=f"{float(terms['loss']):.4f}", **{f"{k}_psnr": f"{v:.2f}" for k, v in scores.items()})
                stop = any_rank(self.stop_requested, ctx)
                if (step % s.checkpoint_every == 0 and step < s.steps) or stop:
                    self.elapsed += time.perf_counter() - started
                    started = time.perf_counter()
                    self.save_resume()
                    last_saved = step
                if stop:
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            bar.close()
            if ctx.main:
                if last_saved == self.step:
                    log.error("training interrupted at step %d; %s holds it: rerun the same command to resume", self.step, self.paths.resume)
                else:
                    log.error("training interrupted; rerun the same command to resume from %s", self.paths.resume)
            if writer is not None:
                writer.close()
            raise
        finally:
            for sig, handler in old_handlers.items():
                signal.signal(sig, handler)
        bar.close()
        self.elapsed += time.perf_counter() - started
        run_steps = self.step - start_step
        rate = run_steps / max(time.perf_counter() - loop_start, 1e-9)
        metrics = None
        if ctx.main:
            metrics = self.finish(writer, rate)
        barrier(ctx)
        return metrics or {}

    # -- the end ---------------------------------------------------------------------
    def final_metrics(self, rate: float) -> dict:
        smooth = self.smooth_at(self.step - 1)
        train_values, _ = self.evaluate(self.train_set, list(range(len(self.train_set))), smooth)
        test_values, _ = self.evaluate(self.test_set, list(range(len(self.test_set))), smooth) if self.test_set is not None else (np.zeros(0), None)
        losses = [h["loss"] for h in self.history]
        k = max(1, len(losses) // 10)
        return {
            "kind": self.settings.kind,
            "steps": int(self.step),
            "wall_time_s": round(self.elapsed, 3),
            "iterations_per_s": round(rate, 3),
            "train_psnr": float(train_values.mean()) if len(train_values) else None,
            "test_psnr": float(test_values.mean()) if len(test_values) else None,
            "baseline_test_psnr": self.baseline_psnr(self.test_set),
            "baseline_train_psnr": self.baseline_psnr(self.train_set),
            "baseline": "mean training crop",
            "train_frames": len(self.train_set),
            "test_frames": len(self.test_set or []),
            "resolution": self.resolution,
            "loss": self.loss.description,
            "uses_lpips": bool(self.loss.uses_lpips),
            "first_loss": float(np.mean(losses[:k])) if losses else None,
            "final_loss": float(np.mean(losses[-k:])) if losses else None,
            "generator": self.generator_record.get("kind"),
            "demo_generator": bool(self.demo_generator),
            "generator_tuned": bool(self.tuning),
            "weights": f"moving average (decay {self.settings.ema_decay:g})" if self.ema is not None else "last iterate",
            "audio_smoothing": bool(smooth) if self.settings.kind == "audio" else None,
            "world_size": self.ctx.world,
            "split_source": self.data.split_source,
        }

    def checkpoint(self, metrics: dict) -> dict:
        s = self.settings
        if self.tuning:
            G = self.model.generator
            init_kwargs = dict(G.init_kwargs)
            init_kwargs["rendering_kwargs"] = dict(G.rendering_kwargs)
            generator = {
                "source": "tuned",
                "init_kwargs": init_kwargs,
                "neural_rendering_resolution": int(G.neural_rendering_resolution),
                "state_dict": _copied(G.state_dict()),
                "base": self.generator_record,
            }
        else:
            generator = {"source": "reference", "record": self.generator_record, "record_path": str(self.generator_json.resolve())}
        signal_info: dict = {"kind": s.kind}
        if s.kind == "expression":
            signal_info.update(expression_model=self.data.expression_model, expression_size=self.data.expression_size)
        elif s.kind == "audio":
            signal_info.update(seq_len=s.smoothing_window, window_shape=[16, 29], smoothing=bool(self.smooth_at(self.step - 1)), smoothing_start=s.smoothing_start)
        else:
            signal_info.update(rgb_resolution=s.rgb_resolution)
        sub = self.model.subspace
        return {
            "format": CHECKPOINT_FORMAT,
            "kind": s.kind,
            "driver": {"build": self.build_args, "state_dict": _copied(self.model.driver.state_dict())},
            # delta and bases are the subspace's whole state (its two parameters)
            "subspace": {"dim": int(sub.dim), "num_ws": int(sub.num_ws), "w_dim": int(sub.w_dim), **_copied(sub.state_dict())},
            "generator": generator,
            "resolution": self.resolution,
            "signal": signal_info,
            "config": asdict(s),
            "step": int(self.step),
            "metrics": metrics,
            "loss": self.loss.description,
            "frames": {"train": self.data.train, "test": self.data.test},
            "inputs": {k: (str(v) if v is not None else None) for k, v in asdict(self.paths).items()},
        }

    def finish(self, writer, rate: float) -> dict:
        with self.averaged():  # metrics, samples and checkpoint: the averaged weights (what render uses)
            metrics = self.final_metrics(rate)
            self.write_samples(writer, self.step)
            checkpoint = self.checkpoint(metrics)
        if writer is not None:
            for name in ("train", "test"):
                if metrics[f"{name}_psnr"] is not None:
                    writer.add_scalar(f"psnr/{name}", metrics[f"{name}_psnr"], self.step)
            writer.close()
        atomic.write_json(self.paths.out_dir / "metrics.json", metrics)
        atomic.torch_save(self.paths.output, checkpoint)
        self.paths.resume.unlink(missing_ok=True)
        fmt = lambda v: "n/a" if v is None else f"{v:.2f} dB"  # noqa: E731
        log.info(
            "trained the %s driver: %d steps in %.1f s (%.2f it/s); train PSNR %s, test PSNR %s (mean-crop baseline %s) -> %s",
            self.settings.kind, metrics["steps"], metrics["wall_time_s"], rate, fmt(metrics["train_psnr"]),
            fmt(metrics["test_psnr"]), fmt(metrics["baseline_test_psnr"]), self.paths.output,
        )
        return metrics


def train(settings: TrainSettings, paths: TrainPaths, on_step: Callable | None = None, threads: int = 0) -> dict:
    """Run (or resume) one training; returns the final metrics on rank 0 (``{}`` elsewhere)."""
    if threads:
        torch.set_num_threads(int(threads))
    ctx = setup_distributed(settings.device)
    try:
        return Trainer(settings, paths, ctx, on_step=on_step).run()
    finally:
        if ctx.initialised_here:
            import torch.distributed as dist

            dist.destroy_process_group()
