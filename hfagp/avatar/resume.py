"""``resume.pt``: the whole state of an unfinished training, so a rerun continues it bitwise.

:class:`ResumeMixin` gives :class:`hfagp.avatar.training.Trainer` its resume
methods: the file holds every parameter, the optimiser, the weight average,
the step, whether the generator is tuned, each process's RNG states and a
fingerprint of the settings that must match. It is read with
:func:`hfagp.io.artifacts.load_torch_artifact` (weights only: no code runs).
"""

from __future__ import annotations

from dataclasses import asdict

from hfagp.avatar.settings import RESUME_KEYS
from hfagp.errors import HfagpError
from hfagp.io import atomic
from hfagp.io.artifacts import load_torch_artifact
from hfagp.logs import get_logger
from hfagp.runtime import rng_state, seed_process, set_rng_state

log = get_logger("training")

RESUME_FORMAT = "hfagp-driver-resume-1"


class ResumeMixin:
    """Resume methods of :class:`hfagp.avatar.training.Trainer` (they read and set its model, optimiser and step)."""

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
        # allow_numpy_arrays: resume files of hfagp 0.1 hold numpy's RNG state as an array (plain data, no code)
        state = load_torch_artifact(path, "resume file", "delete it to start the training over", allow_numpy_arrays=True)
        if not isinstance(state, dict) or state.get("format") != RESUME_FORMAT:
            found = state.get("format") if isinstance(state, dict) else type(state).__name__
            raise HfagpError(f"{path} is not an hfagp resume file (format {found!r}); delete it to start the training over")
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
