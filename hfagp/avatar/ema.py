"""Exponential moving average of a model's weights (Polyak averaging, StyleGAN's ``G_ema``).

At batch size 1 the last iterate of Adam jumps by up to ±1 dB of test PSNR
from one evaluation to the next on the demo; the running average of the
weights does not, and it is what the trained avatar is rendered with.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable, Iterator

import torch
from torch import nn


def effective_decay(decay: float, updates: int) -> float:
    """``min(decay, (1 + n) / (10 + n))`` after ``n`` updates: a short warm-up so the
    average is not dominated by the initial weights in short runs (the rule of
    TensorFlow's ExponentialMovingAverage with ``num_updates``)."""
    return min(float(decay), (1.0 + updates) / (10.0 + updates))


class WeightAverage:
    """EMA of the floating-point tensors of ``module.state_dict()`` (parameters and buffers).

    ``keys`` limits it to those state-dict entries (default: every
    floating-point one); :meth:`track` adds more later, starting from their
    current values, e.g. a generator that was frozen until then (averaging a
    frozen tensor would only copy it). ``update(module, updates)`` after each
    optimiser step; ``applied(module)`` temporarily loads the averaged weights
    into the module (for evaluation or for saving) and restores the live
    weights afterwards. Entries that are not averaged keep their live values.
    """

    def __init__(self, module: nn.Module, decay: float, keys: Iterable[str] | None = None) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        self.shadow: dict[str, torch.Tensor] = {}
        self.track(module, keys)

    def track(self, module: nn.Module, keys: Iterable[str] | None = None) -> None:
        """Start averaging ``keys`` of ``module.state_dict()`` (all floating-point entries if None) from their current values.

        Entries already averaged keep their average; an unknown or non-floating-point key is a ``KeyError``.
        """
        state = module.state_dict()
        if keys is None:
            keys = [k for k, v in state.items() if v.dtype.is_floating_point]
        for key in keys:
            value = state.get(key)
            if value is None or not value.dtype.is_floating_point:
                raise KeyError(f"cannot average {key!r}: not a floating-point entry of the module's state dict")
            if key not in self.shadow:
                self.shadow[key] = value.detach().clone()

    @torch.no_grad()
    def update(self, module: nn.Module, updates: int) -> None:
        weight = 1.0 - effective_decay(self.decay, updates)
        state = module.state_dict()
        for key, average in self.shadow.items():
            average.lerp_(state[key].detach(), weight)

    @contextmanager
    def applied(self, module: nn.Module) -> Iterator[nn.Module]:
        live = {k: v.detach().clone() for k, v in module.state_dict().items() if k in self.shadow}
        module.load_state_dict(self.shadow, strict=False)
        try:
            yield module
        finally:
            module.load_state_dict(live, strict=False)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "shadow": {k: v.detach().cpu().clone() for k, v in self.shadow.items()}}

    def load_state_dict(self, state: dict) -> None:
        missing = set(self.shadow) - set(state["shadow"])
        if missing:
            raise KeyError(f"EMA state lacks {len(missing)} tensors (e.g. {sorted(missing)[0]})")
        for key, average in self.shadow.items():
            average.copy_(state["shadow"][key])
