"""The network compiled by ``torch.compile`` (inductor) for a GPU: the engine table's ``inductor`` rows.

Compiling the full network took 10-23 s for a 1080p size on one H200, for 3x eager fp16's frames a second (issue 48),
so a machine should pay it once per model and size: inductor's caches (its FX graphs, autotuning and Triton kernels)
live in ``$STST_HOME/inductor`` unless ``TORCHINDUCTOR_CACHE_DIR`` says otherwise, where inductor's own keys (the
graph, the shapes, torch, Triton and the GPU) decide what is found again. Shapes are static but for the batch, which
is marked dynamic, so that a run's last, smaller batch and a GPU's memory-sized chunks reuse one compile per size (a
batch of one is a compile of its own: torch specializes sizes 0 and 1).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..base.home import stst_home

CACHE_FOLDER = "inductor"
CACHE_VARIABLE = "TORCHINDUCTOR_CACHE_DIR"


def inductor_cache() -> Path:
    """Where inductor keeps what it compiles for stst: ``$TORCHINDUCTOR_CACHE_DIR``, else ``$STST_HOME/inductor``."""
    return Path(os.environ.get(CACHE_VARIABLE) or stst_home() / CACHE_FOLDER)


class Compiled(torch.nn.Module):
    """``network`` under ``torch.compile``, its batch dimension dynamic, its code cached (:func:`inductor_cache`)."""

    def __init__(self, network: torch.nn.Module) -> None:
        super().__init__()
        os.environ[CACHE_VARIABLE] = str(inductor_cache())  # read by inductor when it first compiles
        self.network = network
        self.compiled = torch.compile(network, dynamic=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        torch._dynamo.maybe_mark_dynamic(x, 0)
        return self.compiled(x)
