"""One engine per model file, built on first use and shared by every request of the server."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import torch

from ..infer.engine import open_stylizer
from ..infer.look import Look


class Engines:
    """Stylizers by model file, each built once and run by one request at a time.

    A :class:`stst.infer.engine.Stylizer` measures its engines on first use and
    keeps state, so concurrent requests for one model take turns on it (they
    would only share the same cores anyway); requests for different models
    run side by side.
    """

    def __init__(self, device: torch.device, precision: str = "auto", backend: str = "auto") -> None:
        self.device, self.precision, self.backend = device, precision, backend
        self._guard = threading.Lock()
        self._locks: dict[Path, threading.Lock] = {}
        self._stylizers: dict[Path, Callable[[torch.Tensor], torch.Tensor]] = {}

    def _lock(self, path: Path) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(path, threading.Lock())

    def run(self, path: Path, batch: torch.Tensor, look: Look = Look()) -> torch.Tensor:
        """Stylize a ``(N, 3, H, W)`` 0..1 batch with the model in ``path`` in ``look``; blocks while it is busy."""
        with self._lock(path):
            if path not in self._stylizers:
                self._stylizers[path] = open_stylizer(path, self.device, self.precision, "auto", False, self.backend)
            return look.apply(self._stylizers[path], batch)

    def bound(self, path: Path, look: Look = Look()) -> Callable[[torch.Tensor], torch.Tensor]:
        """:meth:`run` for one model and look, with the call signature of a Stylizer (for clips)."""
        return lambda batch: self.run(path, batch, look)
