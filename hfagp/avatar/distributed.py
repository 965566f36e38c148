"""Multi-process training: joining the process group under ``torchrun`` and the few collectives training needs.

Without a launcher (``WORLD_SIZE`` unset or 1) everything is a single-process
no-op, so the trainer calls these unconditionally.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch

from hfagp.errors import HfagpError


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    initialised_here: bool = False
    # Joined to a process group even with one process (bench/gpu_check.py's one-process DDP step).
    process_group: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1 or self.process_group


def setup_distributed(device_name: str) -> Dist:
    """Join the process group when a launcher (torchrun) set ``WORLD_SIZE`` > 1; single process otherwise."""
    from hfagp.runtime import process_group_backend, resolve_device

    device = resolve_device(device_name)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(device=device)
    import torch.distributed as dist

    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    here = False
    if not dist.is_initialized():
        dist.init_process_group(backend=process_group_backend(device))
        here = True
    if dist.get_world_size() != world:
        raise HfagpError(f"WORLD_SIZE={world} but the process group has {dist.get_world_size()} processes")
    return Dist(rank=rank, world=world, local_rank=local_rank, device=device, initialised_here=here)


def all_reduce_mean(values: torch.Tensor, ctx: Dist) -> torch.Tensor:
    if not ctx.active:
        return values
    import torch.distributed as dist

    values = values.detach().clone().to(ctx.device)
    dist.all_reduce(values)
    return values / ctx.world


def any_rank(flag: bool, ctx: Dist) -> bool:
    if not ctx.active:
        return flag
    import torch.distributed as dist

    t = torch.tensor([1.0 if flag else 0.0], device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def barrier(ctx: Dist) -> None:
    if ctx.active:
        import torch.distributed as dist

        dist.barrier()
