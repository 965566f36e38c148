"""The person fit a trained avatar hands on to the other drivers: its generator, subspace and frame latents.

A driver trained from the prior (``hfagp train ... --person-out DIR``) writes,
with the weights it renders with (the moving average), the three things
the prior stage gives a driver, in the prior stage's own formats, so another
``hfagp train`` can start from them unchanged:

* ``generator.pt`` + ``generator.json``: the generator as trained (``kind`` =
  tuned, the hfagp-eg3d checkpoint format), or, when it was never tuned, the
  generator record it was given;
* ``prior.npz``: ``mean`` = the learned mean latent ``delta`` (num_ws, w_dim),
  ``basis`` = the orthonormalised learned basis (``Q.T``, D rows), so a
  subspace built from it has the same latents for the same weights;
  ``explained_variance`` = the variance of the training frames' weights along
  each row, ``data_directions`` = D;
* ``latents.pt``: the W+ latent the avatar renders for each training frame
  (its driver's output): the targets of the other drivers' warm start
  (:mod:`hfagp.avatar.warm_start`).

Only training frames are used, never the test split. This is how the demo
fits the person once (the expression driver, ``training.shared_fit_driver``)
instead of three times from a generator without a prior.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from hfagp.io import atomic
from hfagp.logs import get_logger

log = get_logger("training")


@torch.no_grad()
def training_latents(trainer, chunk: int = 16) -> torch.Tensor:
    """(N, num_ws, w_dim) latents of every training frame, at the smoothing state of the last step."""
    dataset, model = trainer.train_set, trainer.model
    smooth = trainer.smooth_at(trainer.step - 1)
    out = []
    for start in range(0, len(dataset), chunk):
        batch = dataset.batch(list(range(start, min(start + chunk, len(dataset)))), trainer.ctx.device)
        out.append(model.latents(batch["signal"], smooth).float().cpu())
    return torch.cat(out)


def export_person(trainer, folder: str | Path) -> dict:
    """Write the person fit of ``trainer``'s current weights to ``folder`` (see the module docstring)."""
    from hfagp import eg3d
    from hfagp.prior.generator import generator_record
    from hfagp.prior.latents import LATENTS_FORMAT

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model, record = trainer.model, trainer.generator_record
    if trainer.tuning:
        eg3d.save_generator(model.generator, folder / "generator.pt")
        base = record.get("checkpoint")
        generator = {
            **generator_record(base, int(record.get("demo_seed", 0)), "generator.pt"),
            "demo": record.get("kind") == "demo" or bool(record.get("demo")),
            "trained_by": trainer.settings.kind,
            "base": record,
        }
    else:
        generator = dict(record)
        if generator.get("kind") == "tuned":  # point at the tuned file where it is, not beside this record
            generator["tuned"] = str((Path(trainer.generator_json).parent / generator["tuned"]).resolve())
    atomic.write_json(folder / "generator.json", generator)

    sub = model.subspace
    with torch.no_grad():
        q = sub.orthonormal_basis().float().cpu()
        latents = training_latents(trainer)
        weights = sub.project(latents.to(sub.delta.device)).cpu()
    variance = weights.var(dim=0, unbiased=False).numpy().astype(np.float64)
    total = float(variance.sum())
    atomic.save_npz(
        folder / "prior.npz",
        mean=sub.delta.detach().float().cpu().reshape(sub.num_ws, sub.w_dim).numpy(),
        basis=q.T.contiguous().numpy(),
        explained_variance=variance,
        explained_variance_ratio=variance / total if total > 0 else np.zeros_like(variance),
        data_directions=np.int64(sub.dim),
        frames=np.asarray(trainer.train_set.frames, dtype=np.int64),
        total_variance=np.float64(total),
        seed=np.int64(trainer.settings.seed),
    )
    labels = trainer.train_set.labels.float().cpu()
    atomic.torch_save(folder / "latents.pt", {
        "format": LATENTS_FORMAT,
        "latents": latents,
        "frames": [int(f) for f in trainer.train_set.frames],
        "labels": labels,
        "source": f"the {trainer.settings.kind} avatar's driver output on its training frames",
    })
    log.info("person fit of the %s avatar (%s generator, D=%d, %d training frames) -> %s", trainer.settings.kind,
             "tuned" if trainer.tuning else "frozen", sub.dim, len(latents), folder)
    return generator
