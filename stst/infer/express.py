"""The express lane: photos through a graph that ONNX Runtime or OpenVINO runs, without importing torch.

``import torch`` takes 1.6-3 s on a CPU-only machine, longer than a folder of
photos takes through a light network. Once the torch path
(:class:`stst.infer.engine.Stylizer`) has chosen ONNX Runtime or OpenVINO for a
model at a size, it records the engine and the graph it runs in
``$STST_HOME/express.json``, keyed by the model file's hash, what was asked
(precision, backend) and the machine's fingerprint (:mod:`stst.infer.caches`). A later
run that asks the same opens the recorded graphs directly: the same graph and
engine, so the same output. A size with no
recorded graph (another engine won there, it was not measured yet, or it needs
tiles) builds the torch path when it is first met. An exported ``.onnx``
model needs no record where ONNX Runtime has no GPU: the torch path runs it on
ONNX Runtime's CPU provider too.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Union

import numpy as np

from ..base.home import stst_home
from ..base.machine import installed
from .caches import ROUTES_FILE, fingerprint, here, read_record, write_record
from .engines import BY_NAME
from .measuring import Decision
from .onnxruntime_graph import GraphRunner
from .sizes import AUTO_PIXELS, SizeTally, size_bucket

log = logging.getLogger(__name__)  # stst stylize -v shows each size's engine and why
# size bucket -> engine ("onnxruntime-fp32", ...), graph, the most pixels the network runs whole (its design's) and,
# where the engine compiles each size, the spare engine and graph for sizes that do not repeat
Route = dict[tuple[int, int], tuple[str, Path, int, Union[tuple[str, Path], None]]]


def serves(tile: object, compile: bool) -> bool:
    """Whether a run with these settings is one the lane serves, and so one whose choices are recorded: whole
    images below the tiling threshold (``--tile auto``) through the plain network (no ``--compile``)."""
    return tile == "auto" and not compile


def request_key(model_file: Path, precision: str, backend: str, measured: bool = True) -> str:
    """What a recorded choice depends on: the machine, the libraries, the model's bytes, the request, and whether
    the engines were timed (a run that times them takes no unmeasured choice)."""
    stat = Path(model_file).stat()
    weights = _weights(str(model_file), stat.st_size, stat.st_mtime_ns)
    return (f"{fingerprint()} | model {weights} | precision {precision}, backend {backend}"
            + ("" if measured else " | unmeasured"))


@functools.lru_cache(maxsize=16)
def _weights(model_file: str, size: int, mtime_ns: int) -> str:
    """The model file's short hash, read once per file version (a run asks for its keys up to four times)."""
    return hashlib.sha256(Path(model_file).read_bytes()).hexdigest()[:20]


def record(key: str, bucket: tuple[int, int], engine: str, graph: Path, whole: int,
           spare: tuple[str, Path] | None = None) -> None:
    """Remember that the torch path runs ``graph`` on ``engine`` at ``bucket`` for ``key``, images of up to
    ``whole`` pixels whole (:data:`stst.infer.sizes.AUTO_PIXELS`), and ``spare`` (an engine and its graph) for sizes
    that do not repeat; a cache that cannot be written is only a slower next start."""
    known = read_record(ROUTES_FILE)
    routes = known.get(key) if isinstance(known.get(key), dict) else {}
    name, route = f"{bucket[0]}x{bucket[1]}", [engine, str(graph), whole, *(spare and [spare[0], str(spare[1])] or [])]
    if routes.get(name) == route:
        return
    known[key] = {**routes, name: route}
    write_record(ROUTES_FILE, known)


def recorded(key: str) -> Route:
    """The routes recorded for ``key`` whose graphs are still there, by size bucket."""
    routes = read_record(ROUTES_FILE).get(key)
    found = {}
    for name, route in routes.items() if isinstance(routes, dict) else ():
        try:
            bucket = tuple(int(side) for side in name.split("x"))
            engine, graph, whole, *spare = route
        except (TypeError, ValueError):
            continue
        if len(bucket) == 2 and _runs_here(engine, graph) and whole in AUTO_PIXELS.values():
            found[bucket] = (engine, Path(graph), whole, (spare[0], Path(spare[1])) if (
                len(spare) == 2 and _runs_here(*spare)) else None)
    return found


def _runs_here(engine: object, graph: object) -> bool:
    """Whether a recorded engine and graph can run: a torch-free engine and a graph still there."""
    return engine in BY_NAME and BY_NAME[engine].torch_free and isinstance(graph, str) and Path(graph).is_file()


def seen(model_file: Path, precision: str, backend: str) -> bool:
    """Whether a run of photos recorded a route here for this model and request, timed or not."""
    known = read_record(ROUTES_FILE)
    return any(request_key(model_file, precision, backend, measured) in known for measured in (True, False))


def describe_routes() -> list[str]:
    """``stst info --engines``: the express lane's routes on this machine, a line per model and request."""
    lines = []
    for key, routes in sorted(here(ROUTES_FILE).items()):
        if isinstance(routes, dict):
            sizes = ", ".join(f"{name} ({route[0]})" for name, route in sorted(routes.items())
                              if isinstance(route, list) and route)
            lines.append(f"  {key}: {sizes} without torch")
    return [f"express lane (graphs run without torch, in {stst_home() / ROUTES_FILE}):", *lines] if lines else []


class ExpressStylizer:
    """Runs each batch through the graph recorded for its size, on its engine; other sizes through ``fallback()``,
    the torch path, built the first time one is met."""

    def __init__(self, routes: Route, fallback: Callable[[], Callable[[np.ndarray], object]]) -> None:
        self.routes = routes
        self._build_fallback = fallback
        self._fallback: Callable[[np.ndarray], object] | None = None
        self._graphs: dict[tuple[str, Path], Callable[[np.ndarray], np.ndarray]] = {}
        self._tally = SizeTally()

    def __call__(self, batch: np.ndarray) -> object:
        height, width = batch.shape[-2:]
        route = self.routes.get(size_bucket(height, width))
        repeats = self._tally.pays((height, width), len(batch))
        if route is not None and height * width <= route[2]:  # larger: tiles, which the torch path runs
            engine, graph, _, spare = route
            if spare is not None and not repeats:  # a size met once, among sizes that do not repeat
                engine, graph = spare
            if (engine, graph) not in self._graphs:
                log.debug(Decision(engine, "express").says(size_bucket(height, width)))
                self._graphs[engine, graph] = BY_NAME[engine].graph_runner(graph)
            return self._graphs[engine, graph](batch)
        if self._fallback is None:
            self._fallback = self._build_fallback()
        return self._fallback(batch)


def cpu_graph(model_file: Path, device: str) -> GraphRunner | None:
    """An exported .onnx model run as the torch path would run it, where that is ONNX Runtime on the CPU:
    ``--device cpu``, or ``auto`` where ONNX Runtime has no GPU to run on; else None."""
    if device != "cpu" and installed("onnxruntime"):
        import onnxruntime

        if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            return None
    return GraphRunner(model_file)  # without onnxruntime: the same one-line error as the torch path


def open_express(model_file: Path, precision: str, backend: str,
                 fallback: Callable[[], Callable[[np.ndarray], object]], measure: bool = True) -> ExpressStylizer | None:
    """The express lane for this model and request where a graph is recorded for some size here, else None.
    A run that does not ``measure`` takes an unmeasured route where no measured one is recorded for the size."""
    routes = recorded(request_key(model_file, precision, backend))
    if not measure:
        routes = {**recorded(request_key(model_file, precision, backend, measured=False)), **routes}
    return ExpressStylizer(routes, fallback) if routes else None
