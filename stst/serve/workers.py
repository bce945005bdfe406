"""One engine per model file, built on first use and shared by every request of the server, which take turns.

Each model runs in a thread of its own, one request after the other: a photo is decoded only when its turn
comes there, so a queue costs only the uploads' bytes, not their pixels (nor the memory a thread of its own
would keep from each run). Only ``queue`` requests wait per model; the next is told when to come back
(503 with ``Retry-After``) instead of piling up.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import torch

from ..infer.engine import open_stylizer
from ..infer.look import Look
from .fields import ApiError, busy

QUEUE = 4  # requests that may wait per model (stst serve --queue)
Stylizer = Callable[[torch.Tensor], torch.Tensor]
T = TypeVar("T")


@dataclass
class _Lane:
    """One model's turns: its thread, how many requests run or wait there, and how long a turn took of late."""

    worker: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="stst-model"))
    admitted: int = 0
    seconds: float = 1.0

    def took(self, seconds: float) -> None:
        self.seconds = 0.5 * (self.seconds + seconds)


class ModelWorkers:
    """Stylizers by model file, each built once and run by one request at a time, in the model's thread.

    A :class:`stst.infer.engine.Stylizer` measures its engines on first use and
    keeps state, so concurrent requests for one model take turns on it (they
    would only share the same cores anyway); requests for different models
    run side by side.
    """

    def __init__(self, device: torch.device, precision: str = "auto", backend: str = "auto",
                 queue: int = QUEUE) -> None:
        self.device, self.precision, self.backend, self.queue = device, precision, backend, queue
        self._guard = threading.Lock()
        self._lanes: dict[Path, _Lane] = {}
        self._stylizers: dict[Path, Stylizer] = {}
        self._stopping = False

    def _lane(self, path: Path) -> _Lane:
        with self._guard:
            return self._lanes.setdefault(path, _Lane())

    def _stylizer(self, path: Path) -> Stylizer:
        if path not in self._stylizers:
            self._stylizers[path] = open_stylizer(path, self.device, self.precision, "auto", False, self.backend,
                                                  lean=True)  # its peak memory, under load, is bounded
        return self._stylizers[path]

    def submit(self, path: Path, work: Callable[[Stylizer], T], look: Look = Look(), limited: bool = True) -> Future[T]:
        """``work(stylizer)`` in the model's turn, with the model in ``path`` in ``look`` as its Stylizer.

        ``limited``: refused (a 503 :func:`busy`) when ``queue`` requests wait already; a clip's batches and
        the live view's frames are not, as they have bounds of their own."""
        lane = self._lane(path)
        with self._guard:
            if limited and lane.admitted > self.queue:
                raise busy(lane.admitted - 1, path.stem, self.queue, lane.admitted * lane.seconds)
            lane.admitted += 1

        def turn() -> T:
            if self._stopping:
                raise ApiError(503, "the server is stopping")
            start = time.perf_counter()
            try:
                return work(lambda batch: look.apply(self._stylizer(path), batch))
            finally:
                lane.took(time.perf_counter() - start)

        future = lane.worker.submit(turn)
        future.add_done_callback(lambda _: self._leave(lane))  # run, failed, or dropped (its client went away)
        return future

    def _leave(self, lane: _Lane) -> None:
        with self._guard:
            lane.admitted -= 1

    def bound(self, path: Path, look: Look = Look()) -> Stylizer:
        """The model in ``look`` as a Stylizer that runs in the model's turn and waits for it (for clips)."""
        return lambda batch: self.submit(path, lambda stylizer: stylizer(batch), look, limited=False).result()

    def stop(self) -> None:
        """From now on, requests that come to their turn are answered 503 at once: a stop waits only for the runs
        in progress."""
        self._stopping = True

    def close(self) -> None:
        """Let the runs in progress finish; drop those that wait."""
        for lane in list(self._lanes.values()):
            lane.worker.shutdown(wait=False, cancel_futures=True)
