"""``checkpoint.pt``: the trained avatar, written by ``hfagp train`` and read by every later stage.

The file is a ``torch.save`` of plain containers and tensors (format
``hfagp-driver-1``): the driver's build arguments and weights, the personal
subspace (``delta``, ``bases``, ``dim``, ``num_ws``, ``w_dim``), the generator
(the tuned weights with their init kwargs, or a reference to
``generator.json``), the training resolution, what the driving signal is, the
settings, the final metrics and the train/test frames. It is read with
weights-only loading (:func:`hfagp.io.artifacts.load_torch_artifact`), so a
crafted file cannot run code; checkpoints of hfagp 0.1 read unchanged.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from hfagp.avatar.model import Avatar, build_driver_from_args
from hfagp.errors import HfagpError
from hfagp.io.artifacts import load_torch_artifact

CHECKPOINT_FORMAT = "hfagp-driver-1"


def load_trained_avatar(path: str | Path, device: str | torch.device = "cpu") -> tuple[Avatar, dict]:
    """Rebuild the trained avatar of ``checkpoint.pt`` (eval mode) and return it with the checkpoint's record.

    ``avatar(signal, label, smooth=record["signal"].get("smoothing", False), deterministic=True)``
    renders at the training resolution; ``full_resolution=True`` keeps the generator's size.
    """
    from hfagp import eg3d
    from hfagp.avatar.subspace import PersonalSubspace

    path = Path(path)
    ckpt = load_torch_artifact(path, "trained avatar", "train it with `hfagp train` (or rerun that)")
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise HfagpError(f"{path} is not an hfagp driver checkpoint ({CHECKPOINT_FORMAT}); rerun `hfagp train`")
    driver = build_driver_from_args(ckpt["driver"]["build"])
    driver.load_state_dict(ckpt["driver"]["state_dict"])
    sub = ckpt["subspace"]
    subspace = PersonalSubspace(
        sub["delta"].float(), sub["bases"].float().reshape(int(sub["dim"]), -1),
        num_ws=int(sub.get("num_ws", 14)), w_dim=int(sub.get("w_dim", 512)),
    )
    gen = ckpt["generator"]
    if gen["source"] == "tuned":
        G = eg3d.TriPlaneGenerator(**dict(gen["init_kwargs"]))
        G.load_state_dict(gen["state_dict"])
        G.neural_rendering_resolution = int(gen["neural_rendering_resolution"])
    else:
        record = gen["record"]
        if record.get("kind") == "tuned":
            from hfagp.prior.generator import load_recorded_generator

            G = load_recorded_generator(gen["record_path"], "cpu")
        else:
            G = eg3d.generator_from_config(record.get("checkpoint"), "cpu", demo_seed=int(record.get("demo_seed", 0)))
    G.requires_grad_(False)
    avatar = Avatar(ckpt["kind"], driver, subspace, G.eval(), int(ckpt["resolution"])).to(device).eval()
    avatar.requires_grad_(False)
    info = {k: v for k, v in ckpt.items() if k not in ("driver", "subspace", "generator")}
    info["generator"] = {k: v for k, v in gen.items() if k != "state_dict"}
    return avatar, info


def _copied(state: dict) -> dict:
    """CPU copies of a state dict (``.cpu()`` alone aliases CPU tensors, which later steps would change)."""
    return {k: v.detach().cpu().clone() for k, v in state.items()}


def checkpoint_record(trainer, metrics: dict) -> dict:
    """The content of ``checkpoint.pt`` for a finished run of ``trainer`` (plain containers and tensors only)."""
    s = trainer.settings
    if trainer.tuning:
        G = trainer.model.generator
        init_kwargs = dict(G.init_kwargs)
        init_kwargs["rendering_kwargs"] = dict(G.rendering_kwargs)
        generator = {
            "source": "tuned",
            "init_kwargs": init_kwargs,
            "neural_rendering_resolution": int(G.neural_rendering_resolution),
            "state_dict": _copied(G.state_dict()),
            "base": trainer.generator_record,
        }
    else:
        generator = {"source": "reference", "record": trainer.generator_record, "record_path": str(trainer.generator_json.resolve())}
    signal_info: dict = {"kind": s.kind}
    if s.kind == "expression":
        signal_info.update(expression_model=trainer.data.expression_model, expression_size=trainer.data.expression_size)
    elif s.kind == "audio":
        signal_info.update(seq_len=s.smoothing_window, window_shape=[16, 29], smoothing=bool(trainer.smooth_at(trainer.step - 1)), smoothing_start=s.smoothing_start)
    else:
        signal_info.update(rgb_resolution=s.rgb_resolution)
    sub = trainer.model.subspace
    return {
        "format": CHECKPOINT_FORMAT,
        "kind": s.kind,
        "driver": {"build": trainer.build_args, "state_dict": _copied(trainer.model.driver.state_dict())},
        # delta and bases are the subspace's whole state (its two parameters)
        "subspace": {"dim": int(sub.dim), "num_ws": int(sub.num_ws), "w_dim": int(sub.w_dim), **_copied(sub.state_dict())},
        "generator": generator,
        "resolution": trainer.resolution,
        "signal": signal_info,
        "config": asdict(s),
        "step": int(trainer.step),
        "metrics": metrics,
        "loss": trainer.loss_description,
        "frames": {"train": trainer.data.train, "test": trainer.data.test},
        "inputs": {k: (str(v) if v is not None else None) for k, v in asdict(trainer.paths).items()},
    }
