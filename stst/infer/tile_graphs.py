"""Huge images in tiles on ONNX Runtime, where it is the engine chosen: the tiles share the whole image's
instance-norm statistics (:mod:`stst.infer.tiling`), which a plain graph cannot take from outside.

So a model gets two more graphs: one that gives the statistics of every norm layer for an image, and one that
stylizes a tile with statistics given as inputs. Both come from the plain network (not its inference form, whose
norms may see a channel's phases apart) and are cached beside the model's graph.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..base.machine import require
from ..model.network import TransformerNet, norm_layers
from .caches import cached_file, graph_name
from .onnxruntime_graph import session_options
from .tiling import Stats, recorded_statistics, shared_statistics

_DYNAMIC = {0: "batch", 2: "height", 3: "width"}


class _Statistics(nn.Module):
    """The model's forward pass, answering every norm layer's input statistics (mean0, var0, mean1, ...)."""

    def __init__(self, model: TransformerNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        stats = recorded_statistics(self.model, x)
        return tuple(t for norm in norm_layers(self.model) for t in stats[norm])


class _Tile(nn.Module):
    """The network proper on a padded, scaled tile, each norm layer normalising with the statistics given."""

    def __init__(self, model: TransformerNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, *flat: torch.Tensor) -> torch.Tensor:
        stats = {norm: (flat[2 * i], flat[2 * i + 1]) for i, norm in enumerate(norm_layers(self.model))}
        with shared_statistics(self.model, stats):
            return self.model.body(x)


def _export(module: nn.Module, example: tuple[torch.Tensor, ...], inputs: list[str], outputs: list[str],
            dynamic: dict[str, dict[int, str]], path: Path) -> None:
    require("onnx", "Tiles on ONNX Runtime")
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter's deprecation and tracer warnings
        torch.onnx.export(module, example, buffer, dynamo=False, input_names=inputs, output_names=outputs,
                          dynamic_axes=dynamic)
    path.write_bytes(buffer.getvalue())


def _flat_names(model: TransformerNet) -> list[str]:
    """The statistics' names as graph inputs and outputs: mean0, var0, mean1, ..."""
    return [f"{kind}{i}" for i in range(len(norm_layers(model))) for kind in ("mean", "var")]


class GraphTiles:
    """A model's statistics and tile graphs on ONNX Runtime's CPU provider (exported the first time)."""

    def __init__(self, model: TransformerNet) -> None:
        require("onnxruntime", "Tiles on ONNX Runtime")
        import onnxruntime as ort

        model = model.cpu().eval()
        self.norms = norm_layers(model)
        flat = _flat_names(model)
        # the wrappers in eval mode: the exporter restores their mode afterwards, and with it the model's
        image = torch.rand(1, 3, 64, 96)
        stats_path = cached_file(graph_name(model, "stats"), lambda path: _export(
            _Statistics(model).eval(), (image,), ["image"], flat, {"image": _DYNAMIC}, path))
        tile_path = cached_file(graph_name(model, "tiles"), lambda path: _export(
            _Tile(model).eval(), (image * 255, *_Statistics(model).eval()(image)), ["tile", *flat], ["stylized"],
            {"tile": _DYNAMIC, "stylized": _DYNAMIC}, path))
        options = session_options()
        # ONNX Runtime's memory arena keeps a tile's peak working set for good: for Johnson's design (a 9x9
        # convolution over 32 channels at full resolution) 3.8 GiB for a 12 MP photo, against 2.2 GiB without it
        # (and 80 s against 104 s, 2 AVX2 cores). The realtime design's full-resolution layers are small: 1.7 GiB
        # with it, 1.4 without, and 7.5 s against 10.9, so it keeps the arena.
        options.enable_cpu_mem_arena = model.config.design == "realtime"
        self._stats = ort.InferenceSession(str(stats_path), options, providers=["CPUExecutionProvider"])
        self._tiles = ort.InferenceSession(str(tile_path), options, providers=["CPUExecutionProvider"])

    def statistics(self, image: torch.Tensor) -> Stats:
        """Every norm layer's statistics of a ``(1, 3, H, W)`` 0..1 image, as :func:`stst.infer.tiling.norm_statistics`."""
        values = self._stats.run(None, {"image": np.ascontiguousarray(image.numpy(), dtype=np.float32)})
        return {norm: (torch.from_numpy(values[2 * i]), torch.from_numpy(values[2 * i + 1]))
                for i, norm in enumerate(self.norms)}

    def body(self, part: torch.Tensor, stats: Stats) -> torch.Tensor:
        """The network proper on a padded, scaled ``(1, 3, h, w)`` tile, normalised with ``stats``."""
        feed = {"tile": np.ascontiguousarray(part.numpy(), dtype=np.float32)}
        for i, norm in enumerate(self.norms):
            feed[f"mean{i}"], feed[f"var{i}"] = (t.numpy() for t in stats[norm])
        return torch.from_numpy(self._tiles.run(None, feed)[0])
