"""The inference engine: a network set up on one device with its engine, precision, memory layout and tiling."""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Literal, Union

import numpy as np
import torch
from PIL import Image

from . import express, int8
from ..base.errors import StstError
from ..base.imageio import CodedPhoto, DecodeFailed, all_finite, array_pixels, batched, rgb_pixels, to_uint8
from ..model.checkpoint import load_model
from ..model.network import TransformerNet
from ..model.rewrite import inference_form
from .caches import cached_file, cached_graph, graph_name, int8_names
from .choice import (Measure, Runner, Trial, begin_trial, cached_choice, cpu_has_bf16, decide, record_trial,
                     time_on_batch, time_once)
from .compiled import Compiled
from .device_pixels import DevicePixels, Pending, Photos, Ready
from .engines import BY_NAME, FAITHFUL_GRAPH, GRAPH_BACKENDS, LONG_RUN, Engine, offered, tile_engines
from .measuring import Decision, sound
from .onnxruntime_graph import OnnxStylizer
from .sizes import (AUTO_PIXELS, AUTO_TILE, GPU_BATCH_BYTES, SIZE_BUCKETS, SizeTally, fitting_batch, runs_in_tiles,
                    size_bucket)
from .tile_graphs import GraphTiles
from .tiling import TileEngine, stylize_tiled

TileSetting = Union[int, Literal["auto"], None]
Prepare = Callable[[torch.Tensor], torch.Tensor]  # a batch's inputs on the device, changed before the network
Finish = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # its inputs and outputs: the outputs changed
DTYPES = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}  # torch engines' autocast, by precision
GPU_TIMING_PIXELS = 1920 * 1080  # a GPU times its engines at the photos' own size up to this (Stylizer._timing)
log = logging.getLogger(__name__)  # stst stylize -v shows each size's engine and why


def torch_network(model: TransformerNet, device: torch.device) -> TransformerNet:
    """The module torch engines run: on CPUs the realtime design's inference form
    (:func:`stst.model.rewrite.inference_form`: the same images; eager fp32 and bf16 ran it 15-30% faster at 640x480
    on a 2-core Xeon, bf16 as faithful, 0.19-0.22 grey levels from fp32), else ``model`` itself.

    Johnson's design keeps its plain layers in torch (its rewritten last layer measured from 9% faster to 7% slower
    in bf16); CUDA keeps them until they are measured there.
    """
    return inference_form(model) if device.type == "cpu" and model.config.design == "realtime" else model


def _example(device: torch.device, size: tuple[int, int], layout: torch.memory_format) -> torch.Tensor:
    """Images of ``size`` as a torch engine hands its module them, as a compile tells batches apart
    (:class:`stst.infer.compiled.Kind`): one on a CPU (image by image), several on a GPU; their values unset."""
    return torch.empty(1 if device.type == "cpu" else 2, 3, *size, device=device, memory_format=layout)


class TorchRunner:
    """A torch engine's measured candidate: ``module`` under the engine's autocast, as :class:`Stylizer` runs it: on
    CPUs a batch one image at a time, on a GPU whole (CPU tensors in and out, for the timing). A compiled module
    (:class:`stst.infer.compiled.Compiled`) is timed compiled: a batch waits for its compile."""

    def __init__(self, module: torch.nn.Module, dtype: torch.dtype | None, device: torch.device) -> None:
        self.module, self.dtype, self.device = module, dtype, device

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with self._mode():
            if self.device.type == "cpu":
                return torch.cat([self._module(image[None]) for image in x])
            return self._module(self._placed(x)).float().cpu()

    def ready(self, size: tuple[int, int]) -> bool:
        """Whether batches of ``size`` are timed without waiting for a compile (one that failed runs eager), which
        starts in the background the first time (:meth:`stst.infer.compiled.Compiled.build`)."""
        if not isinstance(self.module, Compiled):
            return True
        with self._mode():
            return self.module.build(_example(self.device, size, self._layout())).done()

    def _module(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.module, Compiled):
            self.module.build(x).exception()  # waits for the compile; a failed one leaves the module eager
        return self.module(x)

    def _mode(self) -> contextlib.AbstractContextManager:
        mode = contextlib.ExitStack()
        mode.enter_context(torch.inference_mode())
        mode.enter_context(torch.autocast(self.device.type, dtype=self.dtype or torch.bfloat16,
                                          enabled=self.dtype is not None))
        return mode

    def _layout(self) -> torch.memory_format:
        return torch.channels_last if self.device.type == "cuda" else torch.contiguous_format

    def _placed(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.device).contiguous(memory_format=self._layout())


def _faithful_int8(model: TransformerNet) -> Path | None:
    """The model's int8 graph where it is faithful to fp32 (see :mod:`stst.infer.int8`), else None."""
    try:
        return int8.quantized_graph(model)
    except StstError:
        return None


def _hides_nan(e: Engine, model: TransformerNet) -> bool:
    """Whether ``e`` would hide a broken model from the output check of a run (:func:`stst.base.imageio.all_finite`):
    OpenVINO, whose fused ReLUs turn NaN into 0, on weights that hold NaN or infinity. ``auto`` leaves it out then,
    and so do a graph engine's tiles."""
    return e.backend == "openvino" and not all(bool(torch.isfinite(w).all()) for w in model.state_dict().values())


def _builder(e: Engine, model: TransformerNet, network: TransformerNet, device: torch.device,
             int8_graph: Path | None = None) -> Callable[[], Runner]:
    """How to set up engine ``e`` for ``model``: torch runs ``network``, the others the exported graph."""
    if e.backend == "torch":
        return lambda: TorchRunner(network, DTYPES[e.precision], device)
    if e.backend == "inductor":
        return lambda: TorchRunner(Compiled(network), DTYPES[e.precision], device)
    graph = (lambda: int8_graph or int8.quantized_graph(model)) if e.precision == "int8" else (
        lambda: cached_graph(model))
    if e.backend == "onnxruntime":
        return lambda: OnnxStylizer(graph(), cuda=device.type == "cuda")
    return lambda: e.graph_runner(graph())


def engine_candidates(device: torch.device, model: TransformerNet, precision: str = "auto", backend: str = "auto",
                      network: TransformerNet | None = None, measured: bool = True) -> dict[str, Callable[[], Runner]]:
    """The engines ``model`` may run with on ``device``, as ``{"backend-precision": build runner}``, the reference
    first: those of the engine table (:func:`stst.infer.engines.offered`) the request leaves. A single candidate is
    settled without measuring. ``network``: what the torch engines run on CPUs, when the caller has built it
    (:func:`torch_network`). ``measured``: false for a run that will not time its engines
    (:mod:`stst.infer.measuring`): ``auto`` then skips int8, whose quantizing and check only a measurement repays,
    and compiling (``inductor``).
    """
    rows = _rows(device, model, precision, backend)
    network = torch_network(model, device) if network is None else network
    candidates = {}
    for e in rows:
        int8_graph = None
        if e.needs == LONG_RUN and e is not rows[0] and not measured:
            continue
        if e.needs == FAITHFUL_GRAPH and e is not rows[0] and precision == "auto":
            int8_graph = _faithful_int8(model) if measured else None
            if int8_graph is None:
                continue
        elif e.needs == FAITHFUL_GRAPH:  # int8 asked for: an unfaithful graph is refused now, as a bad model is
            int8_graph = int8.quantized_graph(model)
        candidates[e.name] = _builder(e, model, network, device, int8_graph)
    return candidates


def _rows(device: torch.device, model: TransformerNet, precision: str, backend: str) -> list[Engine]:
    """The engine table's rows a request leaves for ``model`` on ``device`` (:func:`stst.infer.engines.offered`), the
    reference first; ``auto`` without OpenVINO where it would hide a broken model; int8 ones whether or not the
    model's int8 graph is faithful."""
    rows = offered(precision, backend, device.type, device.type == "cpu" and cpu_has_bf16())
    return [e for e in rows if backend != "auto" or not _hides_nan(e, model)]


def choose_engine(device: torch.device, model: TransformerNet, precision: str = "auto",
                  backend: str = "auto", size: tuple[int, int] = SIZE_BUCKETS[0]) -> tuple[str, str]:
    """``(backend, precision)`` to run ``model`` with on ``device`` for images near ``size``.

    Among :func:`engine_candidates`, whichever measures fastest here at the
    nearest of the measured sizes (see :mod:`stst.infer.choice`).
    """
    candidates = engine_candidates(device, model, precision, backend)
    chosen = BY_NAME[decide(model.config.tag, candidates, size_bucket(*size)).engine]
    return chosen.backend, chosen.precision


class Stylizer:
    """A network set up for inference on one device: engine, precision, memory layout, tiling.

    - ``backend`` and ``precision``: ``auto`` is fp16 autocast on CUDA; on
      CPUs the fastest of eager fp32, bf16 autocast (native bf16 only), ONNX
      Runtime and OpenVINO as measured on the machine (:func:`choose_engine`).
    - ``channels_last``: default on CUDA, where cuDNN's convolutions prefer it.
    - ``tile``: a tile size, ``None`` for whole images, or ``auto``: tiles of
      1024 above 4 megapixels, and on CUDA also whenever memory runs out.
      Tiles share the whole image's instance-norm statistics; where a graph engine was chosen they run on the
      graph engine it names for tiles, OpenVINO first (:mod:`stst.infer.tile_graphs`), else in torch.
    - ``compile``: ``torch.compile`` the network (pays off for many images); on CUDA the ``inductor`` engine.
    - On CUDA, runs of photos hand it uint8 photos (:meth:`submit`): they cross the bus as uint8 both ways and
      are scaled, clamped and rounded on the GPU (:mod:`stst.infer.device_pixels`), in chunks that fit
      :data:`stst.infer.sizes.GPU_BATCH_BYTES` as measured on the first image of each size.
    - On CPUs a batch runs image by image in torch, one image per core at a time
      in ONNX Runtime and OpenVINO (as the engines are measured, and ran fastest so), and
      torch runs :func:`torch_network`.
    - ``route``: told the size bucket, the engine, the graph, the most pixels the
      network runs whole and, for an engine that compiles each size, the spare engine and its graph each time
      ONNX Runtime or OpenVINO is chosen (how :mod:`stst.infer.express` learns what it may run without torch);
      with it, the choice counts what the express lane saves (:func:`stst.infer.choice.decide`), and a size
      met once among sizes that do not repeat runs on the spare (:class:`stst.infer.sizes.SizeTally`).
    - ``measure``: time the engines at each new size (cached per machine): in a run of photos (``route``) on
      its own batches, whose outputs stand, so that the timing costs only what the slower candidates take longer;
      elsewhere on random images first. Without it, run on the sound engine
      (:func:`stst.infer.measuring.sound`), for runs too short to pay for the timing.
    - ``lean``: time the engines one at a time, each let go after its turn (:func:`stst.infer.choice.decide`'s
      ``hold``), for a long-lived process whose peak memory counts: the server.
    - ``plan``: told once, with the first route, what the express lane needs to time the graph engines on the next
      run's photos without torch (:class:`stst.infer.express.Plan`).
    """

    def __init__(
        self,
        model: TransformerNet,
        device: torch.device | str | None = None,
        precision: str = "auto",
        tile: TileSetting = "auto",
        channels_last: bool | None = None,
        compile: bool = False,
        backend: str = "auto",
        route: Callable[[tuple[int, int], str, Path, int, tuple[str, Path] | None], None] | None = None,
        measure: bool = True,
        lean: bool = False,
        plan: Callable[[object, list[str], Path, tuple[str, str], int], None] | None = None,
    ) -> None:
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        cuda = self.device.type == "cuda"
        self.model = model.to(self.device).eval()
        if compile and backend not in ("auto", "torch", "inductor"):
            raise StstError(f"--compile applies to the torch backend, not {backend}")
        self.channels_last = cuda if channels_last is None else channels_last
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        network = torch_network(self.model, self.device)  # built once: the measured torch engines run it too
        inductor = compile and cuda and precision in ("auto", "fp16")  # the engine that compiles, on CUDA
        self.network = torch.compile(network, dynamic=True) if compile and not inductor else network
        self.module = self.network  # what the torch engine of the latest batch runs
        # --backend; a graph engine's tiles keep to it
        self.asked_backend = ("inductor" if inductor else "torch") if compile else backend
        self.asked_precision = precision
        self.candidates = engine_candidates(self.device, self.model, precision, self.asked_backend, network,
                                            measured=measure)
        self.measure, self.lean = measure, lean
        self._runners: dict[str, Runner] = {}  # built once, shared by the measurement and the work
        self._engines: dict[tuple[int, int], str] = {}  # measured size -> "backend-precision"
        self._trials: dict[tuple[int, int], Trial] = {}  # size -> the engines' timing on a run's batches
        self._spares: dict[tuple[int, int], str] = {}  # size -> the engine for sizes that do not repeat
        self._trial_names: dict[tuple[int, int], list[str]] = {}  # size -> the candidates its trial began with
        self._warmed: Counter[str] = Counter()  # the warm-ups of the per-size engines a trial times
        self._tally = SizeTally() if route is not None else None  # a run of photos: do its sizes repeat?
        self.route, self.plan = route, plan
        self.backend = self.precision = None  # the engine of the latest batch; settled ones are known now
        if len(self.candidates) == 1:
            self._use(self._engine_at(*SIZE_BUCKETS[0]))
        self.tile = tile
        self._graph_tiles: dict[str, GraphTiles | None] = {}  # by chosen engine: built the first time tiles run
        self._pixels = DevicePixels(self.device)  # uint8 photos in and out (submit)
        self._image_bytes: dict[tuple, int] = {}  # (size, engine) -> the device memory one image took
        if cuda:
            torch.backends.cudnn.benchmark = True  # folders often repeat sizes

    def _runner(self, name: str) -> Runner:
        if name not in self._runners:
            self._runners[name] = self.candidates[name]()
        return self._runners[name]

    def _engine_at(self, height: int, width: int, trial: bool = False) -> str:
        """The engine for images of about this size: measured the first time a size bucket is met (then cached).
        With ``trial`` (whole images of a run of photos on a CPU) the engines are timed on the run's own batches
        instead (:meth:`_try`), and while they are, this is the candidate to time next."""
        bucket = size_bucket(height, width)
        if bucket in self._trials:
            return self._trials[bucket].next()
        if bucket not in self._engines:
            names, tag, lane = list(self.candidates), self._key(), self.route is not None
            measured = self.measure or len(names) == 1
            if trial and measured and self.device.type == "cpu":  # a GPU's compiles are waited for (_compiled)
                names = self._trial_names[bucket] = self._graph_engines() or names
                if len(names) > 1 and cached_choice(tag, names, bucket, lane) is None:
                    self._trials[bucket] = begin_trial(tag, names, bucket, lane)
                    return self._trials[bucket].next()
            if measured and not self._compiled(names, bucket, height, width):
                return names[0]  # while the others compile, unsettled
            # decided before (decide finds it cached), or timed on random images; a lean stylizer's candidates are
            # built for their timing alone, and let go after it (but those built to compile, kept till then)
            builders = {name: (self.candidates[name] if self.lean and name not in self._runners
                               else lambda n=name: self._runner(n)) for name in names}
            self._settle(bucket, decide(tag, builders, bucket, self._timing(height, width), lane=lane,
                                        hold=not self.lean) if measured else self._sound())
        return self._engines[bucket]

    def _compiled(self, names: list[str], bucket: tuple[int, int], height: int, width: int) -> bool:
        """Whether the candidates that compile (on a GPU) are ready to be timed at the timing's size: the first
        time, their compiles start in the background, and the reference runs the batches until they end (10-23 s
        the first time on an H200, issue 48). True where a choice made before needs no timing: its engine compiles
        as it runs (:class:`stst.infer.compiled.Compiled`)."""
        if len(names) < 2 or cached_choice(self._key(), names, bucket, self.route is not None) is not None:
            return True
        size = self._timing_size(height, width)
        waiting = [name for name in names[1:] if BY_NAME[name].backend == "inductor"
                   and not self._runner(name).ready(size or bucket)]
        return not waiting

    def _timing(self, height: int, width: int) -> Measure:
        """How the candidates are timed on random images: at the size bucket's size; on a GPU at the photos' own
        size up to :data:`GPU_TIMING_PIXELS`, which a compiled engine then runs without compiling again (10-23 s
        a size). The choice holds for the whole bucket either way."""
        size = self._timing_size(height, width)
        return time_once if size is None else lambda runner, _: time_once(runner, size)

    def _timing_size(self, height: int, width: int) -> tuple[int, int] | None:
        """The size the candidates are timed at where it is not the size bucket's (None): see :meth:`_timing`."""
        return (height, width) if self.device.type == "cuda" and height * width <= GPU_TIMING_PIXELS else None

    def _key(self) -> str:
        """What the recorded choices know this network by: its width, and on a GPU the GPU's name."""
        tag = self.model.config.tag
        return f"{tag} on {torch.cuda.get_device_name(self.device)}" if self.device.type == "cuda" else tag

    def _graph_engines(self) -> list[str]:
        """The candidates a run of photos times on its batches where it can: the graph engines, which the express
        lane runs next time without importing torch (1.6-3 s). A torch engine must beat every one of them by
        :data:`stst.infer.choice.LANE_SECONDS` an image there, and none came near on the CPUs measured: OpenVINO
        bf16 ran the networks 1.8-2.4x faster than torch's bf16 on 2 Zen 4 cores, and the reference's output is ONNX
        Runtime fp32's within 2e-6. [] where there are none, or the first cannot be set up (its graph cannot be
        written): then all are timed, the reference first."""
        names = [name for name in self.candidates if BY_NAME[name].torch_free]
        try:
            return names if names and self._runner(names[0]) else []
        except StstError:
            return []

    def _settle(self, bucket: tuple[int, int], decision: Decision) -> None:
        """Images near ``bucket`` run on the engine decided; the express lane is told where it runs a graph."""
        log.debug(decision.says(bucket))
        choice = self._engines[bucket] = decision.engine
        if decision.spare:
            self._spares[bucket] = decision.spare
        if self.route is not None and BY_NAME[choice].torch_free:
            spare = decision.spare if decision.spare and BY_NAME[decision.spare].torch_free else None
            self.route(bucket, choice, self._runner(choice).path, AUTO_PIXELS[self.model.config.design],
                       spare and (spare, self._runner(spare).path))
            self._record_plan()
        self._release()

    def _record_plan(self) -> None:
        """Once, where the express lane is told routes: how it may time the graph engines itself next time
        (:class:`stst.infer.express.Plan`): the candidates a run that times them would time here, as
        :meth:`_graph_engines` gives them, int8 ones whatever their fidelity (the lane judges it)."""
        if self.plan is None:
            return
        record, self.plan = self.plan, None
        fp32 = cached_file(graph_name(self.model))
        if fp32 is not None:
            rows = _rows(self.device, self.model, self.asked_precision, self.asked_backend)
            record(self.model.config.tag, [e.name for e in rows if e.torch_free], fp32, int8_names(self.model),
                   AUTO_PIXELS[self.model.config.design])

    def _try(self, bucket: tuple[int, int], name: str, batch: torch.Tensor) -> torch.Tensor | None:
        """``batch`` stylized by candidate ``name`` of the bucket's trial, and timed for it
        (:func:`stst.infer.choice.time_on_batch`); None where the candidate cannot run here (it is left out). The
        trial is recorded after each batch, so that a run that ends before it does leaves it to the next."""
        trial = self._trials[bucket]

        def set_up() -> Runner:
            self._use(name)
            return self.graph if self.graph is not None else self._whole

        out = time_on_batch(trial, name, set_up, batch, self._warmed)
        record_trial(self.model.config.tag, self._trial_names[bucket], bucket, trial)
        if trial.done:
            del self._trials[bucket]
            self._settle(bucket, Decision(trial.choice, "trial", trial.spare))
        else:
            self._release()
        return None if out is None else torch.as_tensor(out)

    def _release(self) -> None:
        """Let go of the runners no size runs on and no trial times any more: an engine holds its graph and
        buffers (seven held 3.5 GB at the end of a 768x512 run's trial of the full network), and a server keeps its
        stylizers."""
        kept = {*self._engines.values(), *self._spares.values(),
                *(name for trial in self._trials.values() for name in trial.timed)}
        for name in [name for name in self._runners if name not in kept]:
            del self._runners[name]

    def _sound(self) -> Decision:
        """The sound engine, untimed; the reference where it cannot be set up (its graph cannot be written)."""
        names = list(self.candidates)
        choice = sound(names)
        try:
            self._runner(choice)
        except StstError:
            choice = names[0]
        return Decision(choice, "unmeasured")

    def _use(self, name: str) -> None:
        self.backend, self.precision = BY_NAME[name].backend, BY_NAME[name].precision
        self.dtype = DTYPES.get(self.precision)  # None for the graph engines: their tiles run in fp32
        self.graph = self._runner(name) if self.backend in GRAPH_BACKENDS else None
        self.module = self._runner(name).module if self.backend == "inductor" else self.network

    def _autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast(self.device.type, dtype=self.dtype) if self.dtype else contextlib.nullcontext()

    def _whole(self, batch: torch.Tensor) -> torch.Tensor:
        if self.graph is not None:
            return torch.as_tensor(self.graph(batch))  # on CPUs one image per core (.onnxruntime_graph, .openvino_graph)
        if self.device.type == "cpu" and len(batch) > 1:
            # One image at a time: its layers' activations stay nearer the cores. Four 640x480 frames of the
            # realtime network ran 10-25% slower as one batch than one by one (2-core Xeon, bf16 and ONNX Runtime).
            # Side by side on one thread each (as ONNX Runtime runs them) was 1.16-1.19x the frames for the
            # network alone in torch, but no faster end to end: there the decoder and encoder need the cores too.
            return torch.cat([self._whole(image[None]) for image in batch])
        if self.device.type == "cuda":
            batch = batch.pin_memory()
        return self._forward(batch.to(self.device, non_blocking=True)).float().clamp_(0, 1).cpu()

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """The network of the latest engine on a batch on its device, the output left there."""
        x = x.contiguous(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)
        with self._autocast():
            return self.module(x)

    @torch.inference_mode()
    def warm(self, height: int, width: int) -> str:
        """The engine whole photos of this size run on, settled now: the compiles its choice waits for, and the
        chosen engine's own, are waited for (a benchmark's warm-up: a run never waits for them); on a CPU whose
        run times its engines on its own batches, the one to time next."""
        bucket = size_bucket(height, width)
        name = self._engine_at(height, width)
        while bucket not in self._engines and bucket not in self._trials:  # compiles that the timing waits for
            time.sleep(0.05)
            name = self._engine_at(height, width)
        self._use(name)
        if isinstance(self.module, Compiled):
            layout = torch.channels_last if self.channels_last else torch.contiguous_format
            with self._autocast():
                self.module.build(_example(self.device, (height, width), layout)).exception()
        return name

    @property
    def takes_uint8(self) -> bool:
        """Whether a run of photos hands this stylizer uint8 photos through :meth:`submit`: on CUDA."""
        return self.device.type == "cuda"

    @property
    def decodes_jpeg(self) -> bool:
        """Whether a run may hand :meth:`submit` JPEG files to decode on the device (nvJPEG): on CUDA."""
        return self.device.type == "cuda"

    @torch.inference_mode()
    def submit(self, pixels: Photos | list[CodedPhoto], prepare: Prepare | None = None,
               finish: Finish | None = None) -> Pending:
        """Start stylizing photos as decoded, uint8 ``(N, H, W, 3)`` (or float32 ``(N, 3, H, W)`` in 0..1: 16-bit
        sources; an array or a list of the photos), or JPEG files of one size to decode on the device
        (:meth:`DevicePixels.decode`), scaled, clamped and rounded on the device (:mod:`stst.infer.device_pixels`); the
        outputs come back as uint8 ``(H, W, 3)`` arrays, None where not finite, through :meth:`Pending.result`, while
        the caller hands over the next batch. ``prepare`` (the 0..1 inputs) and ``finish`` (the inputs and the clamped
        outputs) change them on the device on the way: a clip's steadying. Photos that run in tiles, on a graph engine
        or out of GPU memory take the float path (:meth:`__call__`), the two steps on the CPU; JPEG files for it, or
        that the device's decoder refuses, raise :class:`DecodeFailed` for the caller to decode them."""
        first = pixels[0]
        coded = isinstance(first, CodedPhoto)
        h, w = first.size if coded else first.shape[:2] if first.dtype == np.uint8 else first.shape[-2:]
        tiled = self._tile_for(h, w) is not None
        if not tiled:
            self._use(self._engine_at(h, w))
        if tiled or self.graph is not None:
            if coded:
                raise DecodeFailed("these photos take the float path", refused=False)
            return Ready(self._float_outputs(pixels, prepare, finish))
        try:
            x = self._pixels.decode(pixels) if coded else self._pixels.upload(pixels)
            x = prepare(x) if prepare else x
            y = self._in_chunks(x).float().clamp_(0, 1)
            return self._pixels.download(finish(x, y) if finish else y)
        except torch.OutOfMemoryError:
            if self.tile != "auto":
                raise
        torch.cuda.empty_cache()
        if coded:
            raise DecodeFailed("out of GPU memory for these photos whole", refused=False)
        return Ready(self._float_outputs(pixels, prepare, finish))

    def _float_outputs(self, pixels: Photos, prepare: Prepare | None = None,
                       finish: Finish | None = None) -> list[np.ndarray | None]:
        """:meth:`submit`'s outputs through the float path."""
        floats = [array_pixels(p) if p.dtype == np.uint8 else p for p in pixels]
        images = torch.from_numpy(batched(floats))
        images = prepare(images) if prepare else images
        outputs = self(images)
        outputs = finish(images, outputs) if finish else outputs
        return [to_uint8(image) if all_finite(image) else None for image in outputs]

    def _in_chunks(self, x: torch.Tensor) -> torch.Tensor:
        """The network on a batch on the device, in chunks of as many images as fit :data:`GPU_BATCH_BYTES` and
        half the GPU's free memory; the first two images of a size run alone, to measure what one image takes (two:
        a compiled network specializes a batch of one)."""
        if self.device.type != "cuda" or len(x) == 1:
            return self._forward(x)
        key = (tuple(x.shape[-2:]), self.backend, self.precision)
        outputs, start = [], 0
        if key not in self._image_bytes:
            torch.cuda.reset_peak_memory_stats(self.device)
            before = torch.cuda.memory_allocated(self.device)
            outputs.append(self._forward(x[:2]))
            self._image_bytes[key] = (torch.cuda.max_memory_allocated(self.device) - before) // 2
            start = 2
        if start >= len(x):
            return outputs[0]
        budget = min(GPU_BATCH_BYTES, torch.cuda.mem_get_info(self.device)[0] // 2)
        chunk = fitting_batch(self._image_bytes[key], budget)
        outputs += [self._forward(part) for part in x[start:].split(chunk)]
        return outputs[0] if len(outputs) == 1 else torch.cat(outputs)

    def _tile_engine(self) -> TileEngine | None:
        """Where the chosen engine runs a graph on the CPU, the tiles run on the first of its tile engines
        (:func:`stst.infer.engines.tile_engines`; OpenVINO only for finite weights, as ``auto``) whose graphs can be
        made; else in torch (None)."""
        if self.graph is None or self.device.type != "cpu":
            return None
        chosen = BY_NAME[f"{self.backend}-{self.precision}"]
        if chosen.name not in self._graph_tiles:
            self._graph_tiles[chosen.name] = None
            for e in tile_engines(chosen, self.asked_backend):
                if _hides_nan(e, self.model):
                    continue
                try:
                    self._graph_tiles[chosen.name] = GraphTiles(self.model, e)
                    break
                except StstError as exc:
                    log.debug("tiles not on %s: %s", e.name, exc)
        return self._graph_tiles[chosen.name]

    def _tiled(self, batch: torch.Tensor, tile: int) -> torch.Tensor:
        engine = self._tile_engine()
        with self._autocast() if engine is None else contextlib.nullcontext():
            outputs = [stylize_tiled(self.model, image[None], tile, engine=engine).clamp_(0, 1) for image in batch]
        return outputs[0] if len(outputs) == 1 else torch.cat(outputs)  # huge images: no copy of a single one

    def _tile_for(self, height: int, width: int) -> int | None:
        """The tile size images of this size run in, None for whole: ``--tile``'s, or with ``auto`` above the
        design's :data:`AUTO_PIXELS` (on a GPU several times that, and wherever its memory runs out)."""
        if self.tile != "auto":
            return self.tile
        huge = runs_in_tiles(height, width, self.model.config.design, gpu=self.device.type == "cuda")
        return AUTO_TILE if huge else None

    @torch.inference_mode()
    def __call__(self, batch: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Stylize a ``(N, 3, H, W)`` batch of 0..1 images (a tensor or an array); returns 0..1 float32 on the CPU."""
        batch = torch.as_tensor(batch)
        h, w = batch.shape[-2:]
        tile = self._tile_for(h, w)
        if tile:
            self._use(self._engine_at(tile, tile))  # tiles follow the choice at the tile size
            return self._tiled(batch, tile)
        bucket = size_bucket(h, w)
        repeats = self._tally is None or self._tally.pays((h, w), len(batch))
        while True:
            name = self._engine_at(h, w, trial=self.route is not None)
            if bucket not in self._trials:
                break
            out = self._try(bucket, name, batch)
            if out is not None:
                return out
        if not repeats and bucket in self._spares:
            name = self._spares[bucket]  # a size met once, among sizes that do not repeat: not worth a compile
        self._use(name)
        try:
            return self._whole(batch)
        except torch.OutOfMemoryError:
            if self.device.type != "cuda" or self.tile != "auto":
                raise
        for tile in (AUTO_TILE, AUTO_TILE // 2):  # out of GPU memory: fall back to tiles
            torch.cuda.empty_cache()
            try:
                return self._tiled(batch, tile)
            except torch.OutOfMemoryError:
                continue
        raise StstError(f"out of GPU memory even in tiles of {AUTO_TILE // 2}; try --device cpu")


def open_stylizer(model_path: str | Path, device: torch.device, precision: str = "auto", tile: TileSetting = "auto",
                  compile: bool = False, backend: str = "auto", lane: bool = False,
                  measure: bool = True, lean: bool = False) -> Callable[[torch.Tensor], torch.Tensor]:
    """The network in ``model_path`` (a stst .pth, or an exported .onnx run by ONNX Runtime) ready to stylize.

    ``lane``: a run of photos in one process, which the express lane (:mod:`stst.infer.express`) could serve
    next time. On a machine without a GPU such a run records the graphs that ONNX Runtime is chosen to run, and
    the lane runs them next time without torch. ``measure``: see :class:`Stylizer` (an unmeasured choice is
    recorded apart, and only runs that do not measure take it); ``lean``: see :class:`Stylizer`.
    """
    if Path(model_path).suffix.lower() == ".onnx":
        if tile not in ("auto", None):
            raise StstError("--tile is not available for ONNX models")
        return OnnxStylizer(model_path, cuda=device.type == "cuda")
    model, _ = load_model(model_path, device)
    route = plan = None
    if lane and device.type == "cpu" and express.serves(tile, compile) and not _accelerated():
        key = express.request_key(Path(model_path), precision, backend, measure)
        route = functools.partial(express.record, key)
        plan = functools.partial(express.record_plan, express.request_key(Path(model_path), precision, backend))
    return Stylizer(model, device, precision=precision, tile=tile, compile=compile, backend=backend, route=route,
                    measure=measure, lean=lean, plan=plan)


def _accelerated() -> bool:
    """Whether ``--device auto`` would pick a GPU here: then no CPU choice may be taken for it."""
    return torch.cuda.is_available() or torch.backends.mps.is_available()


def stylize_tensor(model: TransformerNet, batch: torch.Tensor) -> torch.Tensor:
    """Stylize a ``(N, 3, H, W)`` batch of 0..1 images whole, in eager fp32, on the model's device; returns 0..1 on the CPU."""
    return Stylizer(model, precision="fp32", tile=None, channels_last=False, backend="torch")(batch)


def stylize_image(model: TransformerNet, image: Image.Image) -> Image.Image:
    """Stylize one Pillow image (any mode); returns an RGB image of the same size."""
    out = stylize_tensor(model, torch.from_numpy(rgb_pixels(image))[None])[0]
    return Image.fromarray(to_uint8(out), "RGB")
