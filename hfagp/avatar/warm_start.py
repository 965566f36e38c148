"""Warm start of a driver: regress its D subspace weights onto the frames' own inverted latents.

The prior stage leaves, for every frame it inverted (``inversion/latents.pt``),
a W+ latent that the generator named by ``generator.json`` renders as that
frame. Projected onto the personal subspace (``PersonalSubspace.project``),
each gives the D weights the driver should output for that frame. Before the
photometric training, :func:`warm_start_driver` fits the driver to those
weights by least squares (Adam, mini-batches of a seeded permutation): no
rendering, so it costs a small fraction of one photometric step per
iteration, and the photometric training then starts from an avatar that
already renders the training frames instead of from the mean face.

It changes only the driver's weights (the subspace and the generator are
untouched) and only frames of the training split that have a latent are used,
so the test split is never seen. HFA-GP trains the driver from scratch; this
is a schedule choice (``training.warm_start_steps``, 0 = off, the default)
that matters when the driver must learn a person from a generator without a
prior in a few minutes (the CPU demo).
"""

from __future__ import annotations

from pathlib import Path

import torch

from hfagp.errors import HfagpError
from hfagp.logs import get_logger

log = get_logger("training")


def latent_weight_targets(subspace, latents: torch.Tensor, latent_frames: list[int], frames: list[int]):
    """(positions in ``frames``, (N, D) target weights) for the frames that have a latent.

    ``latents`` (K, num_ws, w_dim) belong to ``latent_frames``; frames without
    a latent are left out.
    """
    row_of = {int(f): i for i, f in enumerate(latent_frames)}
    positions = [p for p, f in enumerate(frames) if int(f) in row_of]
    if not positions:
        return [], torch.zeros(0, subspace.dim)
    rows = torch.as_tensor([row_of[int(frames[p])] for p in positions], dtype=torch.long)
    with torch.no_grad():
        weights = subspace.project(latents[rows].to(subspace.delta.device, torch.float32))
    return positions, weights.detach()


def read_inverted_latents(path: str | Path) -> tuple[torch.Tensor, list[int]]:
    """The latents and frame numbers of ``inversion/latents.pt`` (safe reader)."""
    from hfagp.prior.latents import read_latents

    record = read_latents(path)
    return record["latents"].float(), [int(f) for f in record["frames"]]


def warm_start_driver(model, dataset, latents_path: str | Path, steps: int, lr: float, batch_size: int = 8,
                      seed: int = 0, device: torch.device | str = "cpu") -> dict:
    """Fit ``model.driver`` to the projected latents of ``dataset``'s frames; returns a summary.

    The summary has ``frames`` (used), ``steps``, ``mse_before`` / ``mse_after``
    (mean squared weight error over the used frames) and ``r2`` (1 - residual /
    total variance of the targets).
    """
    latents, latent_frames = read_inverted_latents(latents_path)
    positions, targets = latent_weight_targets(model.subspace, latents, latent_frames, dataset.frames)
    if not positions:
        raise HfagpError(
            f"{latents_path} has a latent for none of the {len(dataset.frames)} training frames, so the driver "
            "cannot be warm-started; rerun `hfagp invert` or set training.warm_start_steps to 0"
        )
    targets = targets.to(device)
    driver = model.driver
    optimizer = torch.optim.Adam(driver.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(int(seed) + 101)
    batch = max(1, min(int(batch_size), len(positions)))

    def weights_of(index: list[int]) -> torch.Tensor:
        signal = dataset.batch([positions[i] for i in index], device)["signal"]
        return model.weights(signal, smooth=False)

    def mean_error() -> float:
        with torch.no_grad():
            errors = [((weights_of(list(range(s, min(s + 64, len(positions))))) - targets[s : s + 64]) ** 2).sum()
                      for s in range(0, len(positions), 64)]
        return float(torch.stack(errors).sum()) / targets.numel()

    was_training = driver.training
    driver.train()
    before = mean_error()
    order: list[int] = []
    for _ in range(int(steps)):
        if len(order) < batch:
            order += torch.randperm(len(positions), generator=generator).tolist()
        index, order = order[:batch], order[batch:]
        loss = ((weights_of(index) - targets[index]) ** 2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    after = mean_error()
    driver.train(was_training)
    variance = float(((targets - targets.mean(dim=0)) ** 2).mean())
    summary = {"frames": len(positions), "steps": int(steps), "mse_before": before, "mse_after": after,
               "r2": 1.0 - after / variance if variance > 0 else None}
    log.info("warm start of the %s driver on %d frames' latents: weight MSE %.4g -> %.4g (R² %.3f) in %d steps",
             model.kind, len(positions), before, after, summary["r2"] if summary["r2"] is not None else float("nan"), steps)
    return summary
