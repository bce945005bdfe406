"""The express lane: photos through a graph that ONNX Runtime runs, without importing torch.

``import torch`` takes 1.6-3 s on a CPU-only machine, longer than a folder of
photos takes through a light network. Once the torch path
(:class:`stst.infer.engine.Stylizer`) has chosen ONNX Runtime for a model at a
size, it records the graph it runs in ``$STST_HOME/express.json``, keyed by
the model file's hash, what was asked (precision, backend) and the machine
(CPU, library versions, threads). A later run that asks the same opens the
recorded graphs directly: the same graph, so the same output. A size with no
recorded graph (another engine won there, it was not measured yet, or it needs
tiles) builds the torch path when it is first met. An exported ``.onnx``
model needs no record where ONNX Runtime has no GPU: the torch path runs it on
ONNX Runtime's CPU provider too.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .. import __version__
from ..base.home import read_record, stst_home, write_record
from ..base.machine import cpu_cores, cpu_name, installed, package_version
from ..model import GRAPH_FORM
from .graph import GraphRunner
from .sizes import runs_in_tiles, size_bucket

EXPRESS_FILE = "express.json"
Route = dict[tuple[int, int], Path]  # size bucket -> graph


def serves(tile: object, compile: bool) -> bool:
    """Whether a run with these settings is one the lane serves, and so one whose choices are recorded: whole
    images below the tiling threshold (``--tile auto``) through the plain network (no ``--compile``)."""
    return tile == "auto" and not compile


def machine_part() -> str:
    """The machine and libraries a recorded choice was measured with (threads as the environment sets them)."""
    threads = os.environ.get("OMP_NUM_THREADS") or f"{cpu_cores()} cpus"
    return (f"{cpu_name()} | torch {package_version('torch')}, onnxruntime {package_version('onnxruntime')}, "
            f"stst {__version__}, graph form {GRAPH_FORM} | {threads}")


def request_key(model_file: Path, precision: str, backend: str) -> str:
    """What a recorded choice depends on: the machine, the libraries, the model's bytes and the request."""
    weights = hashlib.sha256(Path(model_file).read_bytes()).hexdigest()[:20]
    return f"{machine_part()} | model {weights} | precision {precision}, backend {backend}"


def record(key: str, bucket: tuple[int, int], graph: Path) -> None:
    """Remember that the torch path runs ``graph`` at ``bucket`` for ``key``; a cache that cannot be written is
    only a slower next start."""
    known = read_record(EXPRESS_FILE)
    routes = known.get(key) if isinstance(known.get(key), dict) else {}
    name = f"{bucket[0]}x{bucket[1]}"
    if routes.get(name) == str(graph):
        return
    known[key] = {**routes, name: str(graph)}
    write_record(EXPRESS_FILE, known)


def recorded(key: str) -> Route:
    """The graphs recorded for ``key`` that are still there, by size bucket."""
    routes = read_record(EXPRESS_FILE).get(key)
    found = {}
    for name, graph in routes.items() if isinstance(routes, dict) else ():
        try:
            bucket = tuple(int(side) for side in name.split("x"))
        except ValueError:
            continue
        if len(bucket) == 2 and isinstance(graph, str) and Path(graph).is_file():
            found[bucket] = Path(graph)
    return found


def describe_routes() -> list[str]:
    """``stst info --engines``: the express lane's routes on this machine, a line per model and request."""
    prefix = machine_part() + " | "
    lines = []
    for key, routes in sorted(read_record(EXPRESS_FILE).items()):
        if key.startswith(prefix) and isinstance(routes, dict):
            lines.append(f"  {key[len(prefix):]}: {', '.join(sorted(routes))} without torch")
    return [f"express lane (ONNX Runtime without torch, in {stst_home() / EXPRESS_FILE}):", *lines] if lines else []


class ExpressStylizer:
    """Runs each batch through the graph recorded for its size; other sizes through ``fallback()``, the torch
    path, built the first time one is met."""

    def __init__(self, routes: Route, fallback: Callable[[], Callable[[np.ndarray], object]]) -> None:
        self.routes = routes
        self._build_fallback = fallback
        self._fallback: Callable[[np.ndarray], object] | None = None
        self._graphs: dict[Path, GraphRunner] = {}

    def __call__(self, batch: np.ndarray) -> object:
        height, width = batch.shape[-2:]
        graph = self.routes.get(size_bucket(height, width)) if not runs_in_tiles(height, width) else None
        if graph is not None:
            if graph not in self._graphs:
                self._graphs[graph] = GraphRunner(graph)
            return self._graphs[graph](batch)
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
                 fallback: Callable[[], Callable[[np.ndarray], object]]) -> ExpressStylizer | None:
    """The express lane for this model and request where a graph is recorded for some size here, else None."""
    routes = recorded(request_key(model_file, precision, backend))
    return ExpressStylizer(routes, fallback) if routes else None
