"""An ONNX graph run by OpenVINO on the CPU: the engine that runs these networks fastest where the CPU has native
bf16 (its int8 graph fastest of all on a Zen 4), and a little faster than ONNX Runtime in fp32.

OpenVINO fuses what ONNX Runtime runs as separate passes (the reflection pads,
the reorders into blocked layouts around them, the normalisations and ReLUs),
and on CPUs with AMX or AVX512-BF16 it runs bf16 natively. On 2 cores of an
Intel Xeon (Sapphire Rapids, AMX), the realtime graph at 640x480, four frames
at a time: ONNX Runtime (one frame per core) 15.1 frames/s, OpenVINO fp32
16.6, OpenVINO bf16 42.3; the light graph 3.6, 4.4 and 10.7. bf16 is 0.24 grey
levels from fp32 on average, as torch's bf16 autocast.

Each image size gets its own compiled model (shapes fixed: with free height and
width the same graph ran 2.5x slower), built the first time the size is met
(0.15-0.35 s for the full network at 768x512 on 2 Zen 4 cores; 0.5-0.8 s was
measured on a Xeon) and kept for the next few sizes, and on disk; a batch runs
as one request per image on as many streams as the process has cores, and a
single image (the live view's frames) on one stream of all of them, about
twice as fast as on one of them.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict, deque
from pathlib import Path

import numpy as np

from ..base.errors import FileProblem, StstError, first_line
from ..base.home import stst_home
from ..base.machine import cpu_cores, installed, require

PRECISION_HINTS = {"fp32": "f32", "bf16": "bf16"}  # int8: the int8 graph, with bf16 around it where native (_hint)
KEEP_SIZES = 4  # compiled models kept in memory, by image size
# Compiled models kept on disk ($STST_HOME/openvino, about 2.6 MB each for the full network): a size met again
# loads in 0.07-0.1 s where compiling it took 0.2-0.35 (the full network at 768x512, 2 Zen 4 cores).
CACHE_FOLDER, KEEP_COMPILED = "openvino", 32


def available() -> bool:
    """Whether OpenVINO is installed."""
    return installed("openvino")


@functools.lru_cache(maxsize=1)
def _core():
    """The process's one OpenVINO core (its CPU plugin and thread pool), as OpenVINO asks of an application."""
    import openvino

    core = openvino.Core()
    folder = stst_home() / CACHE_FOLDER
    try:
        folder.mkdir(parents=True, exist_ok=True)
        core.set_property({"CACHE_DIR": str(folder)})
    except OSError:  # no cache: each size compiles in full, as before
        pass
    return core


def _prune_cache() -> None:
    """Keep the :data:`KEEP_COMPILED` newest compiled models in the cache folder (OpenVINO itself never removes any)."""
    try:
        blobs = sorted((stst_home() / CACHE_FOLDER).iterdir(), key=lambda path: path.stat().st_mtime, reverse=True)
        for blob in blobs[KEEP_COMPILED:]:
            blob.unlink()
    except OSError:
        pass


def _hint(precision: str) -> str:
    """OpenVINO's inference precision for an engine's precision: an int8 graph's float layers run in bf16 where
    the CPU has it natively (OpenVINO reports it), else in fp32."""
    if precision == "int8":
        return "bf16" if "BF16" in _core().get_property("CPU", "OPTIMIZATION_CAPABILITIES") else "f32"
    return PRECISION_HINTS[precision]


class OpenVinoGraph:
    """A graph run by OpenVINO on the CPU in fp32 or bf16: a ``(N, 3, H, W)`` 0..1 batch in (an array, or anything
    numpy reads: a CPU tensor), the graph's output clamped to 0..1 out; torch-free, as the express lane needs."""

    def __init__(self, path: str | Path, precision: str = "fp32") -> None:
        require("openvino", "--backend openvino")
        self.path, self.precision = Path(path), precision
        self._core = _core()
        try:
            self._model = self._core.read_model(str(path))
        except Exception as exc:  # OpenVINO raises its own exception types
            raise FileProblem(path, f"not a readable ONNX model ({first_line(exc)})") from exc
        self._streams = cpu_cores()
        self._compiled: OrderedDict[tuple[int, int, int], list] = OrderedDict()  # (size, streams) -> requests
        self._lock = threading.Lock()  # the requests serve one batch at a time

    def _requests(self, height: int, width: int, streams: int) -> list:
        """One inference request per stream of the model compiled for this image size on ``streams`` streams that
        share the process's cores (compiled the first time)."""
        key = (height, width, streams)
        if key in self._compiled:
            self._compiled.move_to_end(key)
            return self._compiled[key]
        model = self._model.clone()
        model.reshape({self._model.inputs[0].get_any_name(): [1, 3, height, width]})  # the others are fixed
        try:
            compiled = self._core.compile_model(model, "CPU", {
                "INFERENCE_PRECISION_HINT": _hint(self.precision),
                "NUM_STREAMS": streams, "INFERENCE_NUM_THREADS": self._streams,
                "ENABLE_CPU_PINNING": False,  # the cores are shared with the threads that decode and encode
            })
        except Exception as exc:  # OpenVINO's own types: e.g. its CPU plugin under ONEDNN_MAX_CPU_ISA=AVX2
            raise StstError(f"OpenVINO cannot compile {self.path.name} for {width}x{height} "
                            f"({first_line(exc)})") from None
        _prune_cache()
        self._compiled[key] = [compiled.create_infer_request() for _ in range(streams)]
        if len(self._compiled) > KEEP_SIZES:
            self._compiled.popitem(last=False)
        return self._compiled[key]

    def prepare(self, images: int, height: int, width: int) -> bool:
        """Compile for a batch of ``images`` images of this size now, so that timing the batch times the work only;
        whether it was compiled now (then its first inference is slower still: 0.36 s a 768x512 photo of the full
        int8 graph on 2 Zen 4 cores, against 0.20 after)."""
        key = (height, width, 1 if images == 1 else self._streams)
        with self._lock:
            fresh = key not in self._compiled
            self._requests(*key)
        return fresh

    def run(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The graph's outputs, unclamped, for one image's inputs by name (the first an image; the tile graphs'
        statistics beside it: :mod:`stst.infer.tile_graphs`), on one stream of all the cores."""
        image = feed[self._model.inputs[0].get_any_name()]
        with self._lock:
            request = self._requests(*image.shape[-2:], 1)[0]
            request.infer({name: np.ascontiguousarray(value, dtype=np.float32) for name, value in feed.items()})
            return [request.get_output_tensor(i).data.copy() for i in range(len(self._model.outputs))]

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        out = np.empty_like(batch)
        with self._lock:
            idle = list(self._requests(*batch.shape[-2:], 1 if len(batch) == 1 else self._streams))
            running: deque = deque()  # (request, index), oldest first; no callbacks (Python from OpenVINO's threads)

            def collect_oldest() -> None:
                request, index = running.popleft()
                request.wait()
                out[index] = request.get_output_tensor(0).data[0]
                idle.append(request)

            for index in range(len(batch)):
                if not idle:
                    collect_oldest()
                request = idle.pop()
                request.start_async({0: batch[index:index + 1]})
                running.append((request, index))
            while running:
                collect_oldest()
        return np.clip(out, 0.0, 1.0, out=out)
