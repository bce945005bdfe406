"""Many processes under torchrun: data-parallel training and sharded stylization.

torchrun (``torch.distributed.run``) starts one process per device, on one
machine or many, and tells each its place through ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK`` and the rendezvous variables; stst reads them and joins the
process group (nccl on CUDA, gloo on CPUs), also as torchrun's only
process (``--nproc-per-node 1``: the same path as many, on one device).
Started without torchrun, everything here is a no-op for a single process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .devices import resolve_device
from .errors import StstError

_owned = False  # whether setup() created the process group


@dataclass(frozen=True)
class Context:
    """This process's place among the ranks."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    launched: bool = False  # started by torchrun: the ranks join a process group, even one alone

    @property
    def main(self) -> bool:
        """Rank 0 prints, and writes checkpoints, logs and previews."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.launched or self.world > 1


def context() -> Context:
    """From torchrun's environment variables; a single process without them."""
    try:
        return Context(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                       int(os.environ.get("LOCAL_RANK", 0)), "WORLD_SIZE" in os.environ)
    except ValueError as exc:
        raise StstError(f"bad torchrun environment (RANK, WORLD_SIZE, LOCAL_RANK): {exc}") from None


def setup(device_spec: str = "auto", backend: str | None = None) -> tuple[Context, torch.device]:
    """Join the process group (under torchrun) and pick this rank's device: its local GPU, else the CPU."""
    ctx = context()
    if not ctx.active:
        return ctx, resolve_device(device_spec)
    spec = device_spec.strip().lower()
    if spec in ("auto", "cuda") and torch.cuda.is_available():
        device = torch.device("cuda", ctx.local_rank % torch.cuda.device_count())
    else:
        device = resolve_device("cpu" if spec == "auto" else spec)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        global _owned
        dist.init_process_group(backend or group_backend(device))
        _owned = True
    return ctx, device


def group_backend(device: torch.device) -> str:
    """The process group's backend for ranks on ``device``: NCCL between GPUs (gradients stay on them), gloo on
    CPUs."""
    return "nccl" if device.type == "cuda" else "gloo"


def agree(flags: list[float], device: torch.device) -> list[float]:
    """Each flag's maximum over all ranks (any rank's 'stop' stops everyone at the same iteration)."""
    if not dist.is_initialized():
        return flags
    values = torch.tensor(flags, dtype=torch.float64, device=device)
    dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return values.tolist()


def mean(values: dict[str, torch.Tensor], device: torch.device) -> dict[str, float]:
    """The mean over ranks of scalar tensors (per-rank losses -> the global batch's losses)."""
    names = list(values)
    stacked = torch.stack([values[n].detach().float() for n in names]).to(device)
    if dist.is_initialized():
        dist.all_reduce(stacked)
        stacked /= dist.get_world_size()
    return dict(zip(names, stacked.tolist()))


def gather(obj: object) -> list[object]:
    """Every rank's ``obj``, in rank order (a one-element list for a single process)."""
    if not dist.is_initialized():
        return [obj]
    out: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def shutdown() -> None:
    """Leave the process group, if :func:`setup` joined it (a caller's own group stays)."""
    global _owned
    if _owned and dist.is_initialized():
        dist.destroy_process_group()
    _owned = False
