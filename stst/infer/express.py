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
tiles) builds the torch path when it is first met, unless the torch path left a plan (:class:`Plan`) for
timing the graph engines: then a run that times them does so here, on its own photos, and records the route. An
exported ``.onnx``
model needs no record where ONNX Runtime has no GPU: the torch path runs it on
ONNX Runtime's CPU provider too.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np

from ..base.errors import StstError
from ..base.home import stst_home
from ..base.machine import installed
from .caches import PLANS_FILE, ROUTES_FILE, fingerprint, here, read_record, write_record
from .choice import Trial, begin_trial, cached_choice, record_trial, time_on_batch
from .engines import BY_NAME, FAITHFUL_GRAPH
from .int8 import faithful_graph
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


@dataclass(frozen=True)
class Plan:
    """What the lane needs to time the graph engines on a run's photos itself, as the torch path would
    (:meth:`stst.infer.engine.Stylizer._try`): the candidates, the reference first, int8 ones where the int8 graph
    proves faithful (judged here, torch-free); the model's width, by which choices are recorded; its fp32 graph;
    the cache names of its int8 graph and of the verdict against it; the most pixels it runs whole. The torch path
    records it for a model and request (:func:`record_plan`), so that the next run that times the engines needs no
    torch (1.5-1.7 s of a 24-photo folder's second run on 2 Zen 4 cores)."""

    key: str  # the request it serves (request_key)
    width: object
    names: tuple[str, ...]
    fp32: Path
    int8: tuple[str, str]
    whole: int

    def graphs(self) -> dict[str, Path]:
        """The graph each candidate to time runs, the reference first: the int8 ones only where the int8 graph is
        faithful (quantized and judged the first time, 2-3 s)."""
        faithful = None
        if any(BY_NAME[name].needs == FAITHFUL_GRAPH for name in self.names):
            with contextlib.suppress(StstError):
                faithful = faithful_graph(*self.int8, lambda: self.fp32)
        graphs = {name: faithful if BY_NAME[name].needs == FAITHFUL_GRAPH else self.fp32 for name in self.names}
        return {name: graph for name, graph in graphs.items() if graph is not None}


def record_plan(key: str, width: object, names: list[str], fp32: Path, int8: tuple[str, str], whole: int) -> None:
    """Remember a :class:`Plan` for ``key`` (only with two candidates or more, the reference not int8)."""
    if len(names) < 2 or BY_NAME[names[0]].needs == FAITHFUL_GRAPH:
        return
    known = read_record(PLANS_FILE)
    plan = {"width": width, "names": names, "fp32": str(fp32), "int8": list(int8), "whole": whole}
    if known.get(key) != plan:
        write_record(PLANS_FILE, {**known, key: plan})


def planned(key: str) -> Plan | None:
    """The plan recorded for ``key`` whose fp32 graph is still there and whose engines can run here, if any."""
    plan = read_record(PLANS_FILE).get(key)
    try:
        names, fp32, (int8, verdict), whole = plan["names"], Path(plan["fp32"]), plan["int8"], plan["whole"]
        if fp32.is_file() and whole in AUTO_PIXELS.values() and all(_runs_here(n, str(fp32)) for n in names):
            return Plan(key, plan["width"], tuple(names), fp32, (str(int8), str(verdict)), whole)
    except (TypeError, ValueError, KeyError):
        pass
    return None


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
    """Runs each batch through the graph recorded for its size, on its engine; a size with none, where a
    :class:`Plan` is given, through the graph engines in turn while they are timed on the run's batches, until one
    is chosen and recorded; other sizes through ``fallback()``, the torch path, built the first time one is met."""

    def __init__(self, routes: Route, fallback: Callable[[], Callable[[np.ndarray], object]],
                 plan: Plan | None = None) -> None:
        self.routes, self.plan = routes, plan
        self._build_fallback = fallback
        self._fallback: Callable[[np.ndarray], object] | None = None
        self._graphs: dict[tuple[str, Path], Callable[[np.ndarray], np.ndarray]] = {}
        self._tally = SizeTally()
        self._candidates: dict[str, Path] | None = None  # the plan's candidates here and their graphs, judged once
        self._trials: dict[tuple[int, int], Trial] = {}
        self._warmed: Counter[str] = Counter()

    def __call__(self, batch: np.ndarray) -> object:
        height, width = batch.shape[-2:]
        bucket = size_bucket(height, width)
        repeats = self._tally.pays((height, width), len(batch))
        if bucket not in self.routes and self.plan is not None and height * width <= self.plan.whole:
            out = self._timed(bucket, batch)
            if out is not None:
                return out
        route = self.routes.get(bucket)
        if route is not None and height * width <= route[2]:  # larger: tiles, which the torch path runs
            engine, graph, _, spare = route
            if spare is not None and not repeats:  # a size met once, among sizes that do not repeat
                engine, graph = spare
            if (engine, graph) not in self._graphs:
                log.debug(Decision(engine, "express").says(bucket))
            return self._graph(engine, graph)(batch)
        if self._fallback is None:
            self._fallback = self._build_fallback()
        return self._fallback(batch)

    def _graph(self, engine: str, graph: Path) -> Callable[[np.ndarray], np.ndarray]:
        if (engine, graph) not in self._graphs:
            self._graphs[engine, graph] = BY_NAME[engine].graph_runner(graph)
        return self._graphs[engine, graph]

    def _timed(self, bucket: tuple[int, int], batch: np.ndarray) -> np.ndarray | None:
        """``batch`` through the next candidate of the bucket's trial, timed (:func:`stst.infer.choice.time_on_batch`);
        None once the bucket is routed without it (a choice recorded before, or a candidate left out that ended
        the trial) or where the plan cannot serve (fewer than two candidates here)."""
        while bucket not in self.routes:
            trial = self._trial(bucket)
            if trial is None:
                return None
            name = trial.next()
            out = time_on_batch(trial, name, lambda: self._graph(name, self._candidates[name]), batch, self._warmed)
            record_trial(self.plan.width, list(self._candidates), bucket, trial)
            if trial.done:
                del self._trials[bucket]
                self._route(bucket, Decision(trial.choice, "trial", trial.spare))
            self._release()
            if out is not None:
                return out
        return None

    def _trial(self, bucket: tuple[int, int]) -> Trial | None:
        """The bucket's trial, begun or taken up the first time it is met; None where a choice is known (then it
        is routed) or the plan cannot serve."""
        if bucket not in self._trials:
            if self._candidates is None:
                self._candidates = self.plan.graphs()
            names = list(self._candidates)
            if len(names) < 2:
                return None
            known = cached_choice(self.plan.width, names, bucket, lane=True)
            if known is not None:
                self._route(bucket, known)
                return None
            self._trials[bucket] = begin_trial(self.plan.width, names, bucket, lane=True)
        return self._trials[bucket]

    def _route(self, bucket: tuple[int, int], decision: Decision) -> None:
        """Images near ``bucket`` run on the engine decided from now on, and so do the next runs' (recorded)."""
        log.debug(decision.says(bucket))
        graph = self._candidates[decision.engine]
        spare = (decision.spare, self._candidates[decision.spare]) if decision.spare else None
        self.routes[bucket] = (decision.engine, graph, self.plan.whole, spare)
        record(self.plan.key, bucket, decision.engine, graph, self.plan.whole, spare)

    def _release(self) -> None:
        """Let go of the graphs no size runs and no trial times any more (as
        :meth:`stst.infer.engine.Stylizer._release` does)."""
        kept = {*((engine, graph) for engine, graph, _, _ in self.routes.values()),
                *(spare for *_, spare in self.routes.values() if spare),
                *((name, self._candidates[name]) for trial in self._trials.values() for name in trial.timed)}
        for key in [key for key in self._graphs if key not in kept]:
            del self._graphs[key]


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
    """The express lane for this model and request where a graph is recorded for some size here, or a run that
    times its engines finds a plan for timing them here (:class:`Plan`); else None. A run that does not ``measure``
    takes an unmeasured route where no measured one is recorded for the size."""
    key = request_key(model_file, precision, backend)
    routes = recorded(key)
    plan = planned(key) if measure else None
    if not measure:
        routes = {**recorded(request_key(model_file, precision, backend, measured=False)), **routes}
    return ExpressStylizer(routes, fallback, plan) if routes or plan else None
