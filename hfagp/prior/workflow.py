"""Helpers of workflow/rules/prior.smk (kept in a module so the .smk file holds only rules)."""

from __future__ import annotations

import shlex


def eg3d_checkpoint(config: dict) -> str | None:
    """The configured EG3D checkpoint path, or None for the random-init demo generator."""
    return (config.get("models") or {}).get("eg3d_checkpoint") or None


def checkpoint_flag(config: dict) -> str:
    """``--checkpoint PATH`` when a checkpoint is configured, else nothing."""
    path = eg3d_checkpoint(config)
    return "" if path is None else f"--checkpoint {shlex.quote(str(path))}"


def checkpoint_inputs(config: dict) -> dict:
    """``{"checkpoint": path}`` when configured (so a new checkpoint file reruns the stage), else {}."""
    path = eg3d_checkpoint(config)
    return {} if path is None else {"checkpoint": path}


def tuned_generator_flag(subject: str, pti_steps: int) -> str:
    """``--tuned-generator`` beside generator.json when pivotal tuning is on, else nothing."""
    if pti_steps > 0:
        return f"--tuned-generator results/{subject}/inversion/generator_tuned.pt"
    return ""
