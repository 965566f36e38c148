"""Stage ``train``: the trained avatar of one subject and one driver (the HFA-GP model, SPEC section 2).

A driver maps a driving signal (the crop, expression coefficients or audio
windows) to D subspace weights; ``latent = delta + weights . Q`` with ``Q``
the QR-orthonormalised learnable basis (:class:`hfagp.avatar.subspace.PersonalSubspace`,
initialised from ``prior.npz``); EG3D renders the latent at the frame's camera
and the image, average-pooled to the training resolution, is compared with
the crop (MSE + LPIPS, :class:`hfagp.losses.photometric.PhotometricLoss`).

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

Warm start (``warm_start_steps`` > 0, :mod:`hfagp.avatar.warm_start`): before
step 0 the driver is regressed onto the subspace weights of the inverted
latents (``paths.latents``), without rendering; a resumed run skips it.

Multi-GPU: under ``torchrun`` (``WORLD_SIZE`` > 1) each process joins the
process group (NCCL on CUDA, gloo on CPU), trains a
``DistributedDataParallel`` copy of the trainable modules (re-wrapped when the
generator joins) on its shard of each global batch (``batch_size`` frames per
process); only rank 0 writes files, logs scalars and shows progress.

Outputs beside ``checkpoint.pt``: ``tensorboard/`` (loss terms, learning
rates, tuned flag, train/test PSNR, baseline PSNR, sample grids),
``samples/step_XXXXXX.png`` (ground truth | render for fixed train and test
frames), with ``person_out`` the person fit that other drivers can start
from (:mod:`hfagp.avatar.person`), ``metrics.json`` (see :meth:`hfagp.avatar.monitor.MonitorMixin.final_metrics`), ``resume.pt`` while
unfinished.
"""

from __future__ import annotations

import gc
import time
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from hfagp.avatar.checkpoint import checkpoint_record
from hfagp.avatar.data import DriverDataset, batch_indices, load_subject
from hfagp.avatar.distributed import Dist, all_reduce_mean, any_rank, barrier, setup_distributed
from hfagp.avatar.ema import WeightAverage
from hfagp.avatar.model import Avatar, build_driver_from_args, build_subspace, generator_trainable
from hfagp.avatar.monitor import MonitorMixin
from hfagp.avatar.resume import ResumeMixin
from hfagp.avatar.settings import TrainPaths, TrainSettings, driver_build_args
from hfagp.errors import HfagpError
from hfagp.io import atomic
from hfagp.logs import get_logger
from hfagp.losses.photometric import LossWeights, PhotometricLoss
from hfagp.prior.generator import load_recorded_generator, read_generator_record
from hfagp.runtime import install_stop_handler, restore_handlers, seed_process, setup_torch

log = get_logger("training")


class Trainer(ResumeMixin, MonitorMixin):
    """One training run (see the module docstring); :meth:`run` returns the final metrics."""

    def __init__(self, settings: TrainSettings, paths: TrainPaths, ctx: Dist, on_step: Callable | None = None) -> None:
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
        self.generator_record = read_generator_record(self.generator_json)
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
            LossWeights(mse=settings.mse_weight, lpips=settings.lpips_weight, ssim=settings.ssim_weight,
                        face_ssim=settings.face_ssim_weight),
            lpips_backbone=settings.lpips_backbone,
            lpips_weights=settings.lpips_weights,
            device=device,
        ).to(device)
        trainable = list(self.model.driver.parameters()) + list(self.model.subspace.parameters())
        self.optimizer = torch.optim.Adam([{"params": trainable, "lr": settings.lr, "name": "driver"}], lr=settings.lr)
        # The rendered avatar uses a moving average of the weights (hfagp.avatar.ema): at batch 1 the last iterate is noisy.
        # It covers what Adam trains: driver and subspace now, the generator once it is tuned (enable_tuning).
        self.ema = (
            WeightAverage(self.model, settings.ema_decay, keys=self._state_keys(trainable)) if settings.ema_decay > 0 else None
        )
        self.tuning = False
        self.step = 0
        self.elapsed = 0.0
        self.ddp = None
        self.history: list[dict] = []

        self.train_set = DriverDataset(self.data, self.data.train, self.resolution, settings.rgb_resolution, settings.smoothing_window,
                                       face_weights=settings.face_ssim_weight > 0)
        self.test_set = (
            DriverDataset(self.data, self.data.test, self.resolution, settings.rgb_resolution, settings.smoothing_window)
            if ctx.main
            else None
        )
        seed_process(settings.seed, ctx.rank)
        self.resumed = self._maybe_resume()
        self.warm_start = None
        if settings.warm_start_steps > 0 and not self.resumed:
            self._warm_start()
        self._wrap()

    def _warm_start(self) -> None:
        """Regress the driver onto the inverted latents' subspace weights (hfagp.avatar.warm_start); every rank alike."""
        from hfagp.avatar.warm_start import warm_start_driver

        if not self.paths.latents:
            raise HfagpError("training.warm_start_steps > 0 needs the inverted latents (--latents inversion/latents.pt)")
        s = self.settings
        self.warm_start = warm_start_driver(
            self.model, self.train_set, self.paths.latents, s.warm_start_steps, s.lr, seed=s.seed, device=self.ctx.device
        )
        if self.ema is not None:  # the average starts from the warm-started driver, not from its random init
            self.ema = WeightAverage(self.model, s.ema_decay, keys=list(self.ema.shadow))

    @property
    def loss_description(self) -> str:
        """The photometric loss's description, plus the regularisers this run adds."""
        s = self.settings
        extra = []
        if s.distortion_weight > 0:
            extra.append(f"{s.distortion_weight:g} ray distortion")
        return " + ".join([self.loss.description, *extra])

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

    # -- the loop ----------------------------------------------------------------
    def _install_signals(self) -> dict:
        def request_stop(signum, frame):  # noqa: ARG001
            if self.stop_requested:  # a second Ctrl-C stops at once
                raise KeyboardInterrupt
            self.stop_requested = True
            log.warning("signal %d: stopping after this step and writing %s", signum, self.paths.resume)

        return install_stop_handler(request_stop)

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
        # The distortion term (hfagp.losses.geometry) shapes the generator's volume, so it is on only while the
        # generator trains, and from distortion_from * steps: earlier, while the random-init generator has no face
        # yet, it flattens the volume onto the first samples (README "The demo's recipe").
        distortion = s.distortion_weight > 0 and self.tuning and step >= s.distortion_from * s.steps
        out = self.net(batch["signal"], batch["label"], smooth=self.smooth_at(step), with_distortion=distortion)
        pred, ray_distortion = out if distortion else (out, None)
        total, terms = self.loss(pred, batch["target"], face=batch.get("face"))
        if ray_distortion is not None:
            terms["distortion"] = ray_distortion.mean()
            total = total + s.distortion_weight * terms["distortion"]
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
                self.loss_description, "demo (random-init)" if self.demo_generator else self.generator_record.get("kind"),
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
            restore_handlers(old_handlers)
        bar.close()
        self.elapsed += time.perf_counter() - started
        run_steps = self.step - start_step
        rate = run_steps / max(time.perf_counter() - loop_start, 1e-9)
        metrics = None
        if ctx.main:
            metrics = self.finish(writer, rate)
        barrier(ctx)
        return metrics or {}

    # -- the end -----------------------------------------------------------------
    def finish(self, writer, rate: float) -> dict:
        with self.averaged():  # metrics, samples and checkpoint: the averaged weights (what render uses)
            metrics = self.final_metrics(rate)
            self.write_samples(writer, self.step)
            checkpoint = checkpoint_record(self, metrics)
            if self.paths.person_out:
                from hfagp.avatar.person import export_person

                export_person(self, self.paths.person_out)
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
    setup_torch(threads)
    ctx = setup_distributed(settings.device)
    try:
        return Trainer(settings, paths, ctx, on_step=on_step).run()
    finally:
        if ctx.initialised_here:
            import torch.distributed as dist

            dist.destroy_process_group()
