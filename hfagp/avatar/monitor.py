"""What a training run shows while it runs and when it ends: PSNR, sample grids, TensorBoard scalars, metrics.json.

:class:`MonitorMixin` gives :class:`hfagp.avatar.training.Trainer` its
evaluation methods; every render here is deterministic (no ray jitter) and
uses the weight average when there is one.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from hfagp.avatar.data import DriverDataset
from hfagp.io.images import caption, fit_tile, tile_grid, write_png

SAMPLE_FRAMES = 4  # per split on the sample grids
EVAL_FRAMES = 16  # per split in the periodic (TensorBoard) evaluation; the final one uses every frame
EVAL_BATCH = 8


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR (dB) of images in [-1,1] (pred clamped), peak 1 on the [0,1] scale."""
    mse = (((pred.clamp(-1, 1) - target) / 2.0) ** 2).flatten(1).mean(dim=1)
    return -10.0 * torch.log10(mse.clamp_min(1e-10))


def _to_tiles(x: torch.Tensor) -> list[np.ndarray]:
    """Images in [-1,1] (B,3,H,W) as uint8 tiles."""
    images = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return [fit_tile(im) for im in images]


class MonitorMixin:
    """Evaluation methods of :class:`hfagp.avatar.training.Trainer` (they read its model, data sets and settings)."""

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
                    [caption(truth[i], f"{name} #{frame}"), caption(_to_tiles(renders[i : i + 1])[0], f"{values[i]:.2f} dB")]
                )
            scores[name] = float(values.mean())
        return tile_grid(rows, groups_per_row=2), scores

    def write_samples(self, writer, step: int) -> None:
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
            "loss": self.loss_description,
            "uses_lpips": bool(self.loss.uses_lpips),
            "first_loss": float(np.mean(losses[:k])) if losses else None,
            "final_loss": float(np.mean(losses[-k:])) if losses else None,
            "generator": self.generator_record.get("kind"),
            "warm_start": self.warm_start,
            "demo_generator": bool(self.demo_generator),
            "generator_tuned": bool(self.tuning),
            "weights": f"moving average (decay {self.settings.ema_decay:g})" if self.ema is not None else "last iterate",
            "audio_smoothing": bool(smooth) if self.settings.kind == "audio" else None,
            "world_size": self.ctx.world,
            "split_source": self.data.split_source,
        }
