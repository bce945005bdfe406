"""An ONNX graph run by ONNX Runtime on numpy arrays: the one engine that needs no torch.

Its worker threads do not spin while they wait (they would starve the threads that decode and encode photos on
the same cores), and a batch runs one image per core (:mod:`stst.base.cores`) through a second session of one
thread. Measurements: docs/performance.md.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..base.cores import side_by_side
from ..base.errors import FileProblem, first_line
from ..base.machine import require

if TYPE_CHECKING:
    import onnxruntime
    import torch


def session_options(threads: int = 0) -> onnxruntime.SessionOptions:
    """ONNX Runtime's session options as stst runs its graphs: worker threads that do not spin; ``threads`` of
    them (0: one per core)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


class GraphRunner:
    """A ``(N, 3, H, W)`` 0..1 batch in (an array, or anything numpy reads: a CPU tensor), the graph's output
    clamped to 0..1 out."""

    def __init__(self, path: str | Path, cuda: bool = False, arena: bool = True) -> None:
        require("onnxruntime", "Running ONNX models")
        import onnxruntime as ort

        self.path, self.cuda = Path(path), cuda
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if cuda else ["CPUExecutionProvider"]
        options = session_options()
        options.enable_cpu_mem_arena = arena  # the arena keeps a run's peak working set for good
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise FileProblem(path, f"not a readable ONNX model ({first_line(exc)})") from exc
        self.input = self.session.get_inputs()[0].name
        self._single: onnxruntime.InferenceSession | None = None  # one thread, for images side by side
        self._lock = threading.Lock()

    def _one_thread(self) -> onnxruntime.InferenceSession:
        with self._lock:
            if self._single is None:
                import onnxruntime as ort

                self._single = ort.InferenceSession(str(self.path), session_options(threads=1),
                                                    providers=["CPUExecutionProvider"])
            return self._single

    def run(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The graph's outputs, unclamped, for one image's inputs by name (the tile graphs':
        :mod:`stst.infer.tile_graphs`)."""
        return self.session.run(None, {name: np.ascontiguousarray(value, dtype=np.float32)
                                       for name, value in feed.items()})

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if len(batch) > 1 and not self.cuda:
            single = self._one_thread()
            images = side_by_side(lambda image: single.run(None, {self.input: image[None]})[0], list(batch))
            out = np.concatenate(images)
        else:
            out = self.session.run(None, {self.input: batch})[0]
        return np.clip(out, 0.0, 1.0, out=out)


class OnnxStylizer(GraphRunner):
    """A graph run by ONNX Runtime with the call signature of :class:`stst.infer.engine.Stylizer` (tensors)."""

    def __call__(self, batch: np.ndarray) -> torch.Tensor:
        import torch

        return torch.from_numpy(super().__call__(batch))
