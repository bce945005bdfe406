"""The engines stst runs its networks with, as one table.

The choice (:mod:`stst.infer.choice`), the torch path (:mod:`stst.infer.engine`), the express lane, the CLI's
``--backend``/``--precision``/``--engine`` choices, the server and ``stst info --engines`` all read this table,
so an engine is added or changed here alone. No torch here: the CLI reads it for its options.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..base.errors import StstError
from ..base.machine import installed, require

if TYPE_CHECKING:
    from .onnxruntime_graph import GraphRunner
    from .openvino_graph import OpenVinoGraph

# What ``auto`` may also ask of an engine (Engine.needs): the CPU's native bf16, int8's fidelity check passed, or a
# run long enough to time its engines (stst.infer.measuring), which a compile (10-23 s the first time) may pay for.
NATIVE_BF16, FAITHFUL_GRAPH, LONG_RUN = "native bf16", "a faithful graph", "a run that times its engines"
DEVICE_WORDS = {"cpu": "CPUs", "cuda": "CUDA GPUs", "mps": "Apple GPUs"}
BACKEND_WORDS = {"torch": "PyTorch", "inductor": "torch.compile", "onnxruntime": "ONNX Runtime",
                 "openvino": "OpenVINO"}


@dataclass(frozen=True)
class Engine:
    """One engine: a backend at a precision, where it runs, what it needs and how far its output may stray."""

    backend: str
    precision: str
    devices: tuple[str, ...]  # where it runs at all
    auto: tuple[str, ...]  # devices where --precision auto offers it
    packages: tuple[str, ...]  # needed beside torch
    output: str  # its output against eager fp32's
    margin: float  # how much faster than the reference (eager fp32) it must measure to be chosen
    needs: str = ""  # what else auto asks of it: NATIVE_BF16 or FAITHFUL_GRAPH
    torch_free: bool = False  # runs an exported ONNX graph, without torch: the express lane can run it
    per_size: bool = False  # compiles each image size (0.1-0.3 s; a folder of camera photos has one or two)
    built: str = ""  # how it is set up
    tiles: tuple[str, ...] = ()  # a graph engine's: the engines its tiles may run on, the first that can be set up

    @property
    def name(self) -> str:
        return f"{self.backend}-{self.precision}"

    def graph_runner(self, graph: Path, cuda: bool = False, arena: bool = True) -> GraphRunner | OpenVinoGraph:
        """A runner of the exported ``graph`` on this engine (torch-free engines only); ``arena``: ONNX Runtime's
        memory arena (it keeps a run's peak working set)."""
        if self.backend == "onnxruntime":
            from .onnxruntime_graph import GraphRunner

            return GraphRunner(graph, cuda=cuda, arena=arena)
        from .openvino_graph import OpenVinoGraph

        return OpenVinoGraph(graph, self.precision)


# Where a graph engine's tiles run (stst.infer.tile_graphs): OpenVINO first, at the engine's precision where it has
# it. It compiles each size, but a photo's tiles have one size; it ran them faster than ONNX Runtime where measured,
# and whole photos on every CPU measured (docs/performance.md). ONNX Runtime fp32 where OpenVINO cannot be set up.
_FP32_TILES = ("openvino-fp32", "onnxruntime-fp32")

ENGINES: tuple[Engine, ...] = (
    Engine("torch", "fp32", ("cpu", "cuda", "mps"), ("cpu", "mps"), (), "the reference", 1.0,
           built="eager PyTorch (on CPUs the realtime design's inference form)"),
    Engine("torch", "bf16", ("cpu", "cuda"), ("cpu",), (), "0.24 grey levels from fp32 on average", 1.1,
           needs=NATIVE_BF16, built="eager PyTorch under bf16 autocast"),
    # fp16 on a CPU (2 Zen 4 cores, 768x512 Kodak photos): 0.016-0.032 grey levels from fp32 on average, 99.9% of
    # values within 0.17, none non-finite, for starry_night's three tiers, the_scream and shipwreck; on a GPU
    # scripts/bench_gpu.py prints it against this margin.
    Engine("torch", "fp16", ("cuda", "mps"), ("cuda",), (), "within 0.1 grey levels of fp32 on average", 1.0,
           built="eager PyTorch under fp16 autocast, channels_last on CUDA"),
    # On CUDA: 187 1080p frames/s of the full network against eager fp16's 61, batches of 8 on one H200 (issue 48).
    Engine("inductor", "fp16", ("cuda",), ("cuda",), ("triton",),
           "as eager fp16: within 0.1 grey levels of fp32 on average", 1.1, needs=LONG_RUN,
           built="torch.compile (inductor) of the fp16 network, per image size, in the background while eager "
                 "fp16 runs; its code kept in $STST_HOME/inductor"),
    Engine("onnxruntime", "fp32", ("cpu", "cuda"), ("cpu",), ("onnx", "onnxruntime"), "equal within 2e-6", 1.05,
           torch_free=True, built="the exported ONNX graph, cached in $STST_HOME/onnx", tiles=_FP32_TILES),
    Engine("onnxruntime", "int8", ("cpu",), ("cpu",), ("onnx", "onnxruntime"),
           "within 1.5 grey levels, checked per model", 1.1, needs=FAITHFUL_GRAPH, torch_free=True,
           built="the graph's residual blocks quantized (S8S8), judged on the calibration photos", tiles=_FP32_TILES),
    Engine("openvino", "fp32", ("cpu",), ("cpu",), ("onnx", "openvino"), "equal within 1e-4", 1.05,
           torch_free=True, per_size=True, built="the exported ONNX graph, compiled per image size", tiles=_FP32_TILES),
    Engine("openvino", "bf16", ("cpu",), ("cpu",), ("onnx", "openvino"), "0.24 grey levels from fp32 on average",
           1.1, needs=NATIVE_BF16, torch_free=True, per_size=True,
           built="the exported ONNX graph, compiled per image size in bf16", tiles=("openvino-bf16", "onnxruntime-fp32")),
    # The int8 graph, which OpenVINO runs with int8 convolutions (VNNI, AMX) and the rest in bf16 where the CPU has it
    # natively: 0.20-0.23 s a 768x512 photo of the full network on 2 Zen 4 cores, against OpenVINO bf16's 0.32-0.34
    # and ONNX Runtime int8's 0.34-0.42 (docs/performance.md); 0.02-0.03 grey levels further from fp32 than ONNX
    # Runtime's run of the same graph (its fidelity check).
    Engine("openvino", "int8", ("cpu",), ("cpu",), ("onnx", "openvino"),
           "within 1.5 grey levels, checked per model", 1.1, needs=FAITHFUL_GRAPH, torch_free=True, per_size=True,
           built="the int8 graph compiled per image size, in bf16 around it where the CPU has it natively",
           tiles=_FP32_TILES),
)
BY_NAME = {engine.name: engine for engine in ENGINES}
ENGINE_NAMES = tuple(BY_NAME)
BACKENDS = ("auto", *dict.fromkeys(engine.backend for engine in ENGINES))
PRECISIONS = ("auto", *dict.fromkeys(engine.precision for engine in ENGINES))
GRAPH_BACKENDS = tuple(dict.fromkeys(engine.backend for engine in ENGINES if engine.torch_free))
TORCH_BACKENDS = tuple(dict.fromkeys(engine.backend for engine in ENGINES if not engine.torch_free))


def engine(name: str) -> Engine:
    """The engine called ``name`` ("onnxruntime-fp32", ...)."""
    if name not in BY_NAME:
        raise StstError(f"unknown engine '{name}' (use {', '.join(ENGINE_NAMES)})")
    return BY_NAME[name]


def _words(names: object, words: dict[str, str]) -> str:
    return " or ".join(words.get(name, name) for name in dict.fromkeys(names))


def _refusal(precision: str, backend: str) -> str:
    """Why no engine answers a request on the device asked for: the one-line error."""
    if precision not in PRECISIONS:
        return f"unknown precision '{precision}' (use {', '.join(PRECISIONS)})"
    if backend not in BACKENDS:
        return f"unknown backend '{backend}' (use {', '.join(BACKENDS)})"
    rows = [e for e in ENGINES if backend in ("auto", e.backend) and precision in ("auto", e.precision)]
    if not rows:
        return f"--backend {backend} runs {_words((e.precision for e in ENGINES if e.backend == backend), {})}, " \
               f"not {precision}"
    asked = f"--precision {precision}" if precision != "auto" else f"--backend {backend}"
    line = f"{asked} runs on {_words((d for e in rows for d in e.devices), DEVICE_WORDS)}"
    return line + (f", through {_words((e.backend for e in rows), BACKEND_WORDS)} only" if backend == "auto" else "")


def offered(precision: str, backend: str, device: str, native_bf16: bool = False) -> list[Engine]:
    """The engines a request (``--precision``, ``--backend``) leaves on ``device`` (a device type), the reference
    first: a GPU runs torch's engines (eager or compiled) unless asked otherwise.
    Beside the reference, ``auto`` leaves out what is not installed and bf16 where the CPU lacks it natively; a
    backend asked for by name needs its packages and runs int8 only when asked for it too."""
    rows = [e for e in ENGINES if device in e.devices and backend in ("auto", e.backend)
            and (e.precision == precision if precision != "auto" else device in e.auto)
            and (device == "cpu" or backend != "auto" or e.backend in TORCH_BACKENDS)]
    if not rows:
        raise StstError(_refusal(precision, backend))
    if backend != "auto" or len(rows) == 1:
        for package in dict.fromkeys(p for e in rows for p in e.packages):
            require(package, f"--precision {precision}" if backend == "auto" else f"--backend {backend}")

    def left(e: Engine) -> bool:
        if e is rows[0]:
            return True
        if backend != "auto":
            return e.needs != FAITHFUL_GRAPH or precision != "auto"
        return all(map(installed, e.packages))

    return [e for e in rows if left(e) and (precision != "auto" or e.needs != NATIVE_BF16 or native_bf16)]


def tile_engines(chosen: Engine, backend: str = "auto") -> list[Engine]:
    """The engines that may run the tiles of huge images where ``chosen`` runs whole ones, best first (none: in
    torch, as ``chosen`` does); a backend asked for by name (``--backend``) runs its own."""
    return [BY_NAME[name] for name in chosen.tiles if backend in ("auto", BY_NAME[name].backend)]


def describe_table() -> list[str]:
    """``stst info --engines``: the table, a line per engine."""
    lines = ["engines (the reference first; auto takes the fastest measured, each by its margin):"]
    for e in ENGINES:
        missing = [p for p in e.packages if not installed(p)]
        lines.append(f"  {e.name:<17} {', '.join(e.devices):<14} margin {e.margin:<5} output: {e.output}; "
                     f"{e.built}" + (f"; auto needs {e.needs}" if e.needs else "")
                     + (f"; huge images' tiles on {' or '.join(e.tiles)}" if e.tiles else "")
                     + (f" [not installed: {', '.join(missing)}]" if missing else ""))
    return lines
