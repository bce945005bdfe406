"""The inference engine: a network set up on one device with its engine, precision, memory layout and tiling."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Literal, Union

import torch
from PIL import Image

from . import onnxrt
from ..base.errors import StstError
from ..base.imageio import rgb_tensor, to_uint8
from ..model.export import require
from ..model.network import TransformerNet
from .precision import PRECISIONS, cpu_has_bf16, fastest
from .tiling import AUTO_PIXELS, AUTO_TILE, stylize_tiled

TileSetting = Union[int, Literal["auto"], None]
BACKENDS = ("auto", "torch", "onnxruntime")


def _torch_runner(model: TransformerNet, dtype: torch.dtype | None) -> Callable[[torch.Tensor], torch.Tensor]:
    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            return model(x)
    return run


def choose_engine(device: torch.device, model: TransformerNet, precision: str = "auto",
                  backend: str = "auto") -> tuple[str, str]:
    """``(backend, precision)`` to run ``model`` with on ``device``.

    CUDA: torch with fp16 autocast. CPUs: among eager fp32, bf16 autocast
    (only where oneDNN has native bf16) and ONNX Runtime fp32 (where it is
    installed), whichever measures fastest here (see :mod:`stst.infer.precision`);
    an explicit ``precision`` or ``backend`` narrows the candidates.
    """
    if backend not in BACKENDS:
        raise StstError(f"unknown backend '{backend}' (use {', '.join(BACKENDS)})")
    if precision != "auto" and precision not in PRECISIONS:
        raise StstError(f"unknown precision '{precision}' (use auto, fp32, fp16 or bf16)")
    if backend == "onnxruntime":
        if precision not in ("auto", "fp32"):
            raise StstError(f"--backend onnxruntime runs fp32 only, not {precision}")
        require("onnxruntime", "--backend onnxruntime")
        require("onnx", "--backend onnxruntime")
        return "onnxruntime", "fp32"
    if device.type != "cpu":
        return "torch", ("fp16" if device.type == "cuda" else "fp32") if precision == "auto" else precision
    if precision not in ("auto", "fp32"):
        return "torch", precision
    candidates = {"torch-fp32": lambda: _torch_runner(model, None)}
    if precision == "auto" and cpu_has_bf16():
        candidates["torch-bf16"] = lambda: _torch_runner(model, torch.bfloat16)
    if backend == "auto" and onnxrt.available():
        candidates["onnxruntime-fp32"] = lambda: onnxrt.OnnxStylizer(onnxrt.cached_graph(model), device)
    chosen, dtype = fastest(model.config.channels, candidates).split("-")
    return chosen, dtype


class Stylizer:
    """A network set up for inference on one device: engine, precision, memory layout, tiling.

    - ``backend`` and ``precision``: ``auto`` is fp16 autocast on CUDA; on
      CPUs the fastest of eager fp32, bf16 autocast (native bf16 only) and ONNX
      Runtime as measured on the machine (:func:`choose_engine`).
    - ``channels_last``: default on CUDA, where cuDNN's convolutions prefer it.
    - ``tile``: a tile size, ``None`` for whole images, or ``auto``: tiles of
      1024 above 4 megapixels, and on CUDA also whenever memory runs out.
      Tiles always run in torch (they share instance-norm statistics through hooks).
    - ``compile``: ``torch.compile`` the network (pays off for many images).
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
    ) -> None:
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        cuda = self.device.type == "cuda"
        self.model = model.to(self.device).eval()
        if compile and backend == "onnxruntime":
            raise StstError("--compile applies to the torch backend, not onnxruntime")
        self.backend, self.precision = choose_engine(self.device, self.model, precision,
                                                     "torch" if compile else backend)
        self.dtype = PRECISIONS[self.precision]
        self.onnx = (onnxrt.OnnxStylizer(onnxrt.cached_graph(self.model), self.device)
                     if self.backend == "onnxruntime" else None)
        self.channels_last = cuda if channels_last is None else channels_last
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.network = torch.compile(self.model, dynamic=True) if compile else self.model
        self.tile = tile
        if cuda:
            torch.backends.cudnn.benchmark = True  # folders often repeat sizes

    def _autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast(self.device.type, dtype=self.dtype) if self.dtype else contextlib.nullcontext()

    def _whole(self, batch: torch.Tensor) -> torch.Tensor:
        if self.onnx is not None:
            return self.onnx(batch)
        if self.device.type == "cuda":
            batch = batch.pin_memory()
        x = batch.to(self.device, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with self._autocast():
            return self.network(x).float().clamp_(0, 1).cpu()

    def _tiled(self, batch: torch.Tensor, tile: int) -> torch.Tensor:
        with self._autocast():
            return torch.cat([stylize_tiled(self.model, image[None], tile) for image in batch]).clamp_(0, 1)

    @torch.inference_mode()
    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """Stylize a ``(N, 3, H, W)`` batch of 0..1 images; returns 0..1 float32 on the CPU."""
        h, w = batch.shape[-2:]
        tile = (AUTO_TILE if h * w > AUTO_PIXELS else None) if self.tile == "auto" else self.tile
        if tile:
            return self._tiled(batch, tile)
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


def stylize_tensor(model: TransformerNet, batch: torch.Tensor) -> torch.Tensor:
    """Stylize a ``(N, 3, H, W)`` batch of 0..1 images whole, in eager fp32, on the model's device; returns 0..1 on the CPU."""
    return Stylizer(model, precision="fp32", tile=None, channels_last=False, backend="torch")(batch)


def stylize_image(model: TransformerNet, image: Image.Image) -> Image.Image:
    """Stylize one Pillow image (any mode); returns an RGB image of the same size."""
    out = stylize_tensor(model, rgb_tensor(image)[None])[0]
    return Image.fromarray(to_uint8(out), "RGB")
