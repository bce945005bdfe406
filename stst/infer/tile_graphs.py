"""Huge images in tiles on a graph engine (OpenVINO or ONNX Runtime), where one is chosen: the tiles share the whole
image's instance-norm statistics (:mod:`stst.infer.tiling`), which a plain graph cannot take from outside.

So a model gets two more graphs: one that gives the statistics of every norm layer for an image, and one that
stylizes a tile with statistics given as inputs. Both are exported as the model's own graph is, from its inference
form (:func:`stst.model.export.onnx_graph`; its norms are the model's own modules, and where they work on a
channel's 4 phases they see them together), and cached beside it. Which engine runs them is the
engine table's word (:attr:`stst.infer.engines.Engine.tiles`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..model.export import DYNAMIC_AXES, onnx_graph
from ..model.network import TransformerNet, norm_layers
from ..model.rewrite import inference_form
from .caches import cached_file, graph_name
from .engines import Engine
from .tiling import Stats, recorded_statistics, shared_statistics


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
    path.write_bytes(onnx_graph(module, example, inputs, outputs, dynamic))


def _flat_names(model: TransformerNet) -> list[str]:
    """The statistics' names as graph inputs and outputs: mean0, var0, mean1, ..."""
    return [f"{kind}{i}" for i in range(len(norm_layers(model))) for kind in ("mean", "var")]


class GraphTiles:
    """A model's statistics and tile graphs on a graph engine's CPU runner (exported the first time)."""

    def __init__(self, model: TransformerNet, engine: Engine) -> None:
        model = model.cpu().eval()
        self.engine = engine
        self.norms = norm_layers(model)
        flat = _flat_names(model)
        form = inference_form(model)  # the same norm modules as the model's
        # the wrappers in eval mode: the exporter restores their mode afterwards, and with it the form's
        image = torch.rand(1, 3, 64, 96)
        stats_path = cached_file(graph_name(model, "stats"), lambda path: _export(
            _Statistics(form).eval(), (image,), ["image"], flat, {"image": DYNAMIC_AXES}, path))
        tile_path = cached_file(graph_name(model, "tiles"), lambda path: _export(
            _Tile(form).eval(), (image * 255, *_Statistics(form)(image)), ["tile", *flat], ["stylized"],
            {"tile": DYNAMIC_AXES, "stylized": DYNAMIC_AXES}, path))
        # ONNX Runtime's memory arena keeps a tile's peak working set for good: for Johnson's design (a 9x9
        # convolution over 32 channels at full resolution) 3.8 GiB for a 12 MP photo against 2.2 GiB without it,
        # though faster (docs/performance.md); the realtime design's full-resolution layers are small, so it keeps it.
        self._arena = model.config.design == "realtime"
        self._stats_path = stats_path
        self._tiles = engine.graph_runner(tile_path, arena=self._arena)

    def statistics(self, image: torch.Tensor) -> Stats:
        """Every norm layer's statistics of a ``(1, 3, H, W)`` 0..1 image, as :func:`stst.infer.tiling.norm_statistics`."""
        # set up for each image and let go after: OpenVINO keeps a compiled model's working memory (a 4096x4096
        # photo's peak was 2.50 GiB with it)
        values = self.engine.graph_runner(self._stats_path, arena=self._arena).run({"image": image.numpy()})
        return {norm: (torch.from_numpy(values[2 * i]), torch.from_numpy(values[2 * i + 1]))
                for i, norm in enumerate(self.norms)}

    def body(self, part: torch.Tensor, stats: Stats) -> torch.Tensor:
        """The network proper on a padded, scaled ``(1, 3, h, w)`` tile, normalised with ``stats``."""
        feed = {"tile": part.numpy()}
        for i, norm in enumerate(self.norms):
            feed[f"mean{i}"], feed[f"var{i}"] = (t.numpy() for t in stats[norm])
        return torch.from_numpy(self._tiles.run(feed)[0])
