"""Stylizing huge images in bounded memory: overlapping tiles with shared instance-norm statistics.

Instance norm normalises each feature map by its own mean and variance, so
tiles stylized independently come out in slightly different colours. Here the
statistics of every norm layer are taken once from the whole image, shrunk so
that it fits in memory, and every tile is normalised with those. Tiles start on
the network's stride grid (multiples of 4) and carry a context margin larger
than the network's receptive field radius (54 pixels in Johnson's design, 43
in the realtime one), which is discarded; the remaining overlap is blended
with linear (feathered) weights. Beyond the margins every tile computes the
same values from the same statistics, so the feather only hides float
rounding (and bf16's): narrow, as the margin, since every pixel of overlap is
computed twice. With statistics from the unshrunk image the result equals the
untiled one up to float rounding.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..base.imageio import shrunk_size
from ..model.network import (SIZE_MULTIPLE, TransformerNet, instance_statistics, norm_layers, normalise_with,
                      padded_index)

MARGIN = 56  # discarded context on inner tile edges, > receptive field radius (a multiple of 4)
FEATHER = 8  # width of the linear blend between neighbouring tiles
OVERLAP = 2 * MARGIN + FEATHER
MIN_TILE = 256  # tiles advance by tile - OVERLAP: at least 136 pixels
STATS_SIZE = 1024  # long side of the shrunk image whose norm statistics all tiles share


Stats = dict[nn.Module, tuple[torch.Tensor, torch.Tensor]]


class TileEngine:
    """What runs the tiles: the whole image's statistics, then the network proper on each tile with them. In
    torch here; :class:`stst.infer.tile_graphs.GraphTiles` runs both on a graph engine."""

    def __init__(self, model: TransformerNet) -> None:
        self.model = model

    def statistics(self, image: torch.Tensor) -> Stats:
        return norm_statistics(self.model, image, size=None)

    def body(self, part: torch.Tensor, stats: Stats) -> torch.Tensor:
        with shared_statistics(self.model, stats):
            return self.model.body(part.to(next(self.model.parameters()).device))


def shrunk(image: torch.Tensor, size: int) -> torch.Tensor:
    """``image`` shrunk to long side ``size`` (as it is where it is smaller)."""
    h, w = image.shape[-2:]
    width, height = shrunk_size(w, h, size)
    if (width, height) != (w, h):
        image = F.interpolate(image, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    return image


@torch.inference_mode()
def norm_statistics(model: TransformerNet, image: torch.Tensor, size: int | None = STATS_SIZE) -> Stats:
    """Per-channel mean and variance at every instance norm, from ``image`` shrunk to long side ``size`` (None:
    as it is)."""
    return recorded_statistics(model, shrunk(image, size) if size else image)


def recorded_statistics(model: TransformerNet, image: torch.Tensor) -> Stats:
    """Every instance norm's input statistics in ``model``'s forward pass over ``image`` (traceable: the tile
    graphs' export records it)."""
    stats: Stats = {}

    def record(module, inputs):
        stats[module] = instance_statistics(inputs[0])

    handles = [m.register_forward_pre_hook(record) for m in norm_layers(model)]
    try:
        model(image)
    finally:
        for handle in handles:
            handle.remove()
    return stats


@contextlib.contextmanager
def shared_statistics(model: TransformerNet, stats: Stats) -> Iterator[None]:
    """Within this block every instance norm of ``model`` uses ``stats`` instead of its input's own."""

    def normalise(module, inputs, _output):
        return normalise_with(module, inputs[0], *stats[module])

    handles = [m.register_forward_hook(normalise) for m in norm_layers(model)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _spans(length: int, tile: int) -> list[tuple[int, int]]:
    """Tile origins and sizes along one side: as few tiles of at most ``tile`` as cover it with OVERLAP between
    neighbours, spread evenly (origins on multiples of 4) and all of one size, the last pushed back to the edge by
    the rounding (under 4 pixels a tile). Even tiles, not full ones and a last one pushed back over its neighbour: a
    4000x3000 photo in tiles of 1024 is 15 MP of work, not 21; one size: an engine that compiles each size
    (OpenVINO) compiles once."""
    if length <= tile:
        return [(0, length)]
    count = -(-(length - OVERLAP) // (tile - OVERLAP))
    step = -(-(length - OVERLAP) // (count * SIZE_MULTIPLE)) * SIZE_MULTIPLE
    size = step + OVERLAP
    return [(min(i * step, length - size), size) for i in range(count)]


def _ramp(start: int, tile: int, total: int) -> torch.Tensor:
    """Blend weights along one side of a tile: 0 in the discarded margin, rising over FEATHER, 1 inside."""
    pos = torch.arange(tile, dtype=torch.float32)
    weight = torch.ones(tile)
    if start > 0:  # an inner edge before this tile
        weight = torch.minimum(weight, ((pos - MARGIN + 0.5) / FEATHER).clamp(0, 1))
    if start + tile < total:  # an inner edge after it
        weight = torch.minimum(weight, ((tile - pos - MARGIN - 0.5) / FEATHER).clamp(0, 1))
    return weight


@torch.inference_mode()
def stylize_tiled(model: TransformerNet, image: torch.Tensor, tile: int, stats_size: int = STATS_SIZE,
                  engine: TileEngine | None = None) -> torch.Tensor:
    """Stylize one ``(1, 3, H, W)`` 0..1 image in tiles of ``tile`` pixels, on ``engine`` (default: torch, on the
    model's device); returns the unclamped output. Beside the image and the output only a strip of tiles is held:
    the tiles are read from the image as padded (:func:`padded_index`), and the output keeps no padding."""
    if tile < MIN_TILE or tile % SIZE_MULTIPLE:
        raise ValueError(f"tile size must be a multiple of {SIZE_MULTIPLE} and at least {MIN_TILE}")
    engine = engine or TileEngine(model)
    device = next(model.parameters()).device
    stats = engine.statistics(shrunk(image, stats_size).to(device))
    h, w = image.shape[-2:]
    (row_index, top), (column_index, left) = padded_index(h, model.border), padded_index(w, model.border)
    row_index, column_index = row_index.to(image.device), column_index.to(image.device)  # a GPU's frames stay there
    ph, pw = len(row_index), len(column_index)
    rows, columns = _spans(ph, tile), _spans(pw, tile)
    out = torch.zeros(3, h, w)
    for y0, th in rows:
        strip = image.index_select(-2, row_index[y0 : y0 + th])
        wy, (y1, y2), (ty1, ty2) = _ramp(y0, th, ph), *_kept(y0, th, top, h)
        for x0, tw in columns:
            part = strip.index_select(-1, column_index[x0 : x0 + tw]).mul_(model.pixel_scale)
            result = engine.body(part, stats)[0].float().cpu()
            weight = wy[ty1:ty2, None] * _ramp(x0, tw, pw)[None, :]
            (x1, x2), (tx1, tx2) = _kept(x0, tw, left, w)
            out[:, y1:y2, x1:x2].addcmul_(result[:, ty1:ty2, tx1:tx2], weight[:, tx1:tx2])
    # the tiles form a grid and each one's weight is a row ramp times a column ramp, so their sum is too (divided
    # by one and then the other: their product would be another image's worth of memory)
    out /= (_ramp_sum(rows, ph)[top : top + h] * model.pixel_scale)[:, None]
    out /= _ramp_sum(columns, pw)[None, left : left + w]
    return out[None]


def _kept(start: int, size: int, offset: int, length: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Where a tile at ``start`` (of ``size``, in padded pixels) lands in the unpadded output of ``length`` that
    begins at ``offset``, and which of its own pixels land there."""
    first, last = max(start, offset), min(start + size, offset + length)
    return (first - offset, last - offset), (first - start, last - start)


def _ramp_sum(spans: list[tuple[int, int]], total: int) -> torch.Tensor:
    """The blend weights of all the tiles along one side, added up."""
    weight = torch.zeros(total)
    for start, size in spans:
        weight[start : start + size] += _ramp(start, size, total)
    return weight
