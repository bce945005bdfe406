"""The network compiled by ``torch.compile`` (inductor) for a GPU: the engine table's ``inductor`` rows.

Compiling the full network took 10-23 s for a 1080p size on one H200, for 3x eager fp16's frames a second (issue 48),
so a machine should pay it once per model and size: inductor's caches (its FX graphs, autotuning and Triton kernels)
live in ``$STST_HOME/inductor`` unless ``TORCHINDUCTOR_CACHE_DIR`` says otherwise, where inductor's own keys (the
graph, the shapes, torch, Triton and the GPU) decide what is found again. Shapes are static but for the batch, which
is marked dynamic, so that a run's last, smaller batch and a GPU's memory-sized chunks reuse one compile per size (a
batch of one is a compile of its own: torch specializes sizes 0 and 1).

Nothing waits for a compile: each kind of batch (its size, layout and autocast) compiles in a thread of its own
while the eager network runs its batches, which at 61-371 1080p frames a second eager (issue 48) is most of a short
run's work, and takes the compiled code from the next batch on. A command that ends first hands its compiles over to
processes of their own (:func:`hand_over`), which finish them into the cache for the next run: inductor's cache keys
hold the network's graph and shapes, not its weights, so the same architecture with any weights compiles the same
entry (a second process with other weights found it: 2.0 s against 24 s, the realtime design on 2 Zen 4 cores).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import NamedTuple

import torch

from ..base.errors import first_line
from ..base.home import stst_home
from ..model.network import ArchConfig, TransformerNet, build_network

CACHE_FOLDER = "inductor"
CACHE_VARIABLE = "TORCHINDUCTOR_CACHE_DIR"
THREAD_NAME = "stst-compile"  # compile threads (compiling())
LAYOUTS = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}
CHILD_SECONDS = 600  # the most a handed-over compile may take before its process ends (hand_over)
_LIVE: weakref.WeakSet[Compiled] = weakref.WeakSet()  # this process's compiled networks (hand_over)
log = logging.getLogger(__name__)


def inductor_cache() -> Path:
    """Where inductor keeps what it compiles for stst: ``$TORCHINDUCTOR_CACHE_DIR``, else ``$STST_HOME/inductor``."""
    return Path(os.environ.get(CACHE_VARIABLE) or stst_home() / CACHE_FOLDER)


class Kind(NamedTuple):
    """What a compile is specialized to: the batch (one image or more), the tensor and the mode it is called in."""

    one: bool
    image: tuple[int, ...]
    dtype: torch.dtype
    device: torch.device
    layout: torch.memory_format
    inference_tensor: bool
    inference_mode: bool
    grad: bool
    autocast: torch.dtype | None  # its type where autocast is on

    @classmethod
    def of(cls, x: torch.Tensor) -> Kind:
        device_type = x.device.type
        channels_last = x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
        return cls(len(x) == 1, tuple(x.shape[1:]), x.dtype, x.device,
                   torch.channels_last if channels_last else torch.contiguous_format, x.is_inference(),
                   torch.is_inference_mode_enabled(), torch.is_grad_enabled(),
                   torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else None)

    def spec(self) -> dict:
        """This kind as JSON's types, for a process of its own (:func:`hand_over`)."""
        def name(dtype: torch.dtype | None) -> str | None:
            return None if dtype is None else str(dtype).removeprefix("torch.")

        return {**self._asdict(), "image": list(self.image), "dtype": name(self.dtype), "device": str(self.device),
                "layout": _layout_name(self.layout), "autocast": name(self.autocast)}

    @classmethod
    def from_spec(cls, spec: dict) -> Kind:
        def dtype(name: str | None) -> torch.dtype | None:
            return None if name is None else getattr(torch, name)

        return cls(**{**spec, "image": tuple(spec["image"]), "dtype": dtype(spec["dtype"]),
                      "device": torch.device(spec["device"]), "layout": LAYOUTS[spec["layout"]],
                      "autocast": dtype(spec["autocast"])})

    def sample(self) -> torch.Tensor:
        """Random images of this kind: two where it has several (a batch of one is specialized)."""
        with torch.inference_mode(self.inference_tensor):
            x = torch.rand((1 if self.one else 2, *self.image), dtype=self.dtype, device=self.device)
            return x.contiguous(memory_format=self.layout)

    def mode(self) -> contextlib.ExitStack:
        """The modes its batches are called in."""
        mode = contextlib.ExitStack()
        mode.enter_context(torch.inference_mode(self.inference_mode))
        mode.enter_context(torch.set_grad_enabled(self.grad))
        if self.autocast is not None:
            mode.enter_context(torch.autocast(self.device.type, dtype=self.autocast))
        return mode


def _layout_name(layout: torch.memory_format) -> str:
    return next(name for name, known in LAYOUTS.items() if known == layout)


def _compile(module: torch.nn.Module, kind: Kind) -> None:
    """``module`` (under torch.compile) run once on random images of ``kind``: what compiles it for their batches."""
    sample = kind.sample()
    with kind.mode():
        torch._dynamo.maybe_mark_dynamic(sample, 0)
        module(sample)
    if kind.device.type == "cuda":
        torch.cuda.synchronize(kind.device)


def _recipe(network: torch.nn.Module) -> dict | None:
    """How another process builds a network whose compile is this one's: its architecture and its weights' layout
    (their strides are in inductor's key, their values not); None for modules other than stst's networks."""
    if not isinstance(network, TransformerNet):
        return None
    weight = next(p for p in network.parameters() if p.dim() == 4)
    last = weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    return {"arch": network.config.to_dict(), "weights": "channels_last" if last else "contiguous"}


def compiling() -> bool:
    """Whether a compile still runs in the background: a process that ended now would wait for it (a command
    line hands it over instead, :func:`hand_over`)."""
    return any(thread.name == THREAD_NAME and thread.is_alive() for thread in threading.enumerate())


class Compiled(torch.nn.Module):
    """``network`` under ``torch.compile``, its batch dimension dynamic, its code cached (:func:`inductor_cache`),
    each kind of batch compiled in the background while ``network`` runs eager (:meth:`build`). ``backend``:
    torch.compile's (inductor unless told)."""

    def __init__(self, network: torch.nn.Module, backend: str | Callable = "inductor") -> None:
        super().__init__()
        os.environ[CACHE_VARIABLE] = str(inductor_cache())  # read by inductor when it first compiles
        self.network = network
        self.compiled = torch.compile(network, dynamic=False, backend=backend)
        self._builds: dict[Kind, Future] = {}
        self._lock = threading.Lock()
        self.recipe = _recipe(network) if backend == "inductor" else None  # for hand_over
        _LIVE.add(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        build = self.build(x)
        if not build.done() or build.exception() is not None:
            return self.network(x)
        torch._dynamo.maybe_mark_dynamic(x, 0)
        return self.compiled(x)

    def build(self, x: torch.Tensor) -> Future:
        """The compile for batches like ``x`` (:class:`Kind`), started in a thread the first time: done once they
        run compiled, or with the error (logged once) where they stay eager."""
        kind = Kind.of(x)
        with self._lock:
            if kind not in self._builds:
                self._builds[kind] = self._start(kind)
            return self._builds[kind]

    def _start(self, kind: Kind) -> Future:
        """Compile for batches of ``kind`` on random images of it, in a thread that a process ending waits for (one
        killed inside torch.compile aborts the process)."""
        build: Future = Future()

        def run() -> None:
            try:
                _compile(self.compiled, kind)
                build.set_result(None)
            except Exception as exc:  # noqa: BLE001 - any compile error leaves these batches eager
                cause = getattr(exc, "inner_exception", exc)  # the compiler's own error, not dynamo's wrapper
                log.info("torch.compile failed for %s images %s (they run eager): %s",
                         "x".join(map(str, kind.image[-2:])), "one at a time" if kind.one else "in batches",
                         first_line(cause))
                build.set_exception(exc)

        threading.Thread(target=run, name=THREAD_NAME).start()
        return build


def hand_over() -> list[subprocess.Popen]:
    """This process's compiles still running, each handed to a process of its own that compiles it into the cache
    (:func:`inductor_cache`, which every :class:`Compiled` put in this process's environment) and ends, so that a
    command that ends before its compile (:func:`stst.cli._exit`) leaves the next run a compiled network rather than
    a compile to start again. They run at low priority, in sessions of their own (a terminal's Ctrl-C or hang-up
    does not stop them), for :data:`CHILD_SECONDS` at most."""
    children = []
    for compiled in list(_LIVE):
        if compiled.recipe is None:
            continue
        for kind, build in list(compiled._builds.items()):
            if build.done():
                continue
            spec = json.dumps({**compiled.recipe, "kind": kind.spec()})
            children.append(subprocess.Popen(
                [sys.executable, "-m", "stst.infer.compiled", spec], stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
            log.info("the compile for %s images goes on in process %d, for the next run",
                     "x".join(map(str, kind.image[-2:])), children[-1].pid)
    return children


def compile_alone(spec: dict) -> None:
    """A handed-over compile (:func:`hand_over`): a network of the recipe's architecture and weights' layout, with
    weights of its own, compiled for the kind's batches."""
    kind = Kind.from_spec(spec["kind"])
    network = build_network(ArchConfig(**spec["arch"])).to(kind.device).eval()
    _compile(torch.compile(network.to(memory_format=LAYOUTS[spec["weights"]]), dynamic=False), kind)


if __name__ == "__main__":
    os.nice(10)  # after the user's own runs
    if hasattr(signal, "alarm"):
        signal.alarm(CHILD_SECONDS)
    compile_alone(json.loads(sys.argv[1]))
