"""The palette: how far a picture's colours are from a painting's, and a loss that pulls them there.

Gram style loss and LPIPS to the photo both reward pictures that stay near the photo: a model can beat a peer
on both and still look like the photo darkened. The palette distance measures what the eye saw then: the
sliced Wasserstein distance (the mean, over random directions, of the 1-D earth mover's distance between the
projected colours) between the picture's colours and the painting's in CIELAB, where a unit is about one
just-noticeable difference. It compares whole colour distributions, not just their means and spreads: a
picture with the painting's mean colour but none of its light and dark passages stays far. Heitz et al.,
"A Sliced Wasserstein Loss for Neural Texture Synthesis" (CVPR 2021), use the same distance as a loss;
:class:`PaletteLoss` does so on the network's output colours, and :func:`fit_colours` fits a colour transform
of a trained network's output by it.
"""

from __future__ import annotations

import numpy as np
import torch

from ..base.cores import side_by_side
from ..base.machine import cpu_cores

# sRGB (D65) to CIE XYZ, and the D65 white.
_RGB_TO_XYZ = ((0.4124564, 0.3575761, 0.1804375), (0.2126729, 0.7151522, 0.0721750), (0.0193339, 0.1191920, 0.9503041))
_WHITE = (0.95047, 1.0, 1.08883)
_DELTA = 6 / 29

# The yardstick's sampling: pixels of each picture and of the painting, and projection directions.
PIXELS = 20_000
DIRECTIONS = 128
# The colour fit (fit_colours): output pixels, directions, Adam steps and rate. About 1 s on 2 cores;
# twice the steps moved the held-out palette 0.2-0.4 further and the Gram loss up by a quarter to two fifths
# (docs/training.md).
FIT_PIXELS = 8192
FIT_DIRECTIONS = 32
FIT_STEPS = 100
FIT_RATE = 0.03
# Keys below which one thread sorts faster than the cores together: handing rows to a pool costs more than the
# half it saves (2 Zen 4 cores: the colour fit's 262,144 keys 8.8 ms in one thread, 11.8 ms split; the quick
# step's 2,097,152 102 ms and 64 ms; docs/training.md, "The sort").
SPLIT_KEYS = 1 << 19


def lab(rgb: torch.Tensor) -> torch.Tensor:
    """CIELAB (D65) of sRGB colours in 0..1 with the channels in dimension -3 (``(..., 3, H, W)``); differentiable."""
    c = (rgb if rgb.dtype in (torch.float32, torch.float64) else rgb.float()).clamp(0, 1)  # fp32 under autocast
    linear = torch.where(c <= 0.04045, c / 12.92, ((c.clamp_min(0.04045) + 0.055) / 1.055) ** 2.4)
    matrix = torch.tensor(_RGB_TO_XYZ, dtype=c.dtype, device=c.device)
    matrix = matrix / torch.tensor(_WHITE, dtype=c.dtype, device=c.device)[:, None]
    xyz = torch.einsum("ij,...jhw->...ihw", matrix, linear)
    f = torch.where(xyz > _DELTA**3, xyz.clamp_min(_DELTA**3) ** (1 / 3), xyz / (3 * _DELTA**2) + 4 / 29)
    x, y, z = f.unbind(-3)
    return torch.stack([116 * y - 16, 500 * (x - y), 200 * (y - z)], -3)


def colours(images: torch.Tensor) -> torch.Tensor:
    """The CIELAB colours of ``(N, 3, H, W)`` or ``(3, H, W)`` images in 0..1 as one ``(pixels, 3)`` table."""
    return lab(images).movedim(-3, -1).reshape(-1, 3)


def sample(table: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` rows of ``table``, without repeats where it has that many."""
    if len(table) >= count:
        return table[torch.randperm(len(table), generator=generator)[:count]]
    return table[torch.randint(len(table), (count,), generator=generator)]


def directions(count: int, generator: torch.Generator) -> torch.Tensor:
    """``(3, count)`` random unit vectors, evenly spread over the sphere."""
    d = torch.randn(3, count, generator=generator)
    return d / d.norm(dim=0, keepdim=True)


def sort_rows(x: torch.Tensor) -> torch.Tensor:
    """``x`` sorted along its last dimension, differentiably: ``torch.sort(x, dim=-1).values``, and on the CPU faster.

    Why: the palette term sorts 32 projections of every pixel of a batch each step, and on a CPU torch.sort takes
    2.5-4x as long as numpy's argsort (SIMD sorting networks, AVX2 or AVX-512) on the same rows: the term took 118 ms
    of a quick step of about 1.2 s on 2 Xeon cores, 54 ms so (docs/training.md). There numpy finds the order, the
    rows split among the cores (:func:`stst.base.cores.side_by_side`), and a gather takes the values, through which
    the gradient flows as through torch.sort's; below :data:`SPLIT_KEYS` one thread sorts them all.
    """
    if x.device.type != "cpu":
        return torch.sort(x, dim=-1).values
    keys = x.detach() if x.dtype in (torch.float32, torch.float64) else x.detach().float()  # bf16 under autocast
    rows = keys.reshape(-1, x.shape[-1]).numpy()
    threads = min(len(rows), cpu_cores()) if x.numel() >= SPLIT_KEYS else 1
    bounds = np.linspace(0, len(rows), threads + 1).astype(int)
    parts = side_by_side(lambda part: np.argsort(rows[part], axis=-1), [slice(*b) for b in zip(bounds, bounds[1:])])
    return torch.gather(x, -1, torch.from_numpy(np.concatenate(parts)).view(x.shape))


def quantiles(values: torch.Tensor, count: int) -> torch.Tensor:
    """``count`` evenly spaced quantiles of each row of sorted ``values`` (the last dimension: samples)."""
    if values.shape[-1] == count:
        return values
    at = ((torch.arange(count, device=values.device) + 0.5) * values.shape[-1] / count).long()
    return values[..., at.clamp(max=values.shape[-1] - 1)]


def projected(table: torch.Tensor, axes: torch.Tensor) -> torch.Tensor:
    """Colour tables (``(..., pixels, 3)``) projected on ``axes`` (``(3, K)``): ``(..., K, pixels)``, each row
    sorted."""
    return sort_rows(axes.T.to(table) @ table.transpose(-1, -2))


def sorted_distance(pictures: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The mean 1-D earth mover's distance between sorted projections ``pictures`` (``(..., K, pixels)``) and
    ``target`` (``(K, pixels')``), whose quantiles stand in for it where the sizes differ."""
    return (pictures - quantiles(target, pictures.shape[-1]).to(pictures)).abs().mean()


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, axes: torch.Tensor) -> torch.Tensor:
    """The mean over ``axes`` (``(3, K)``) of the 1-D earth mover's distance between colour tables ``a`` and
    ``b`` projected on each."""
    return sorted_distance(projected(a, axes), projected(b, axes))


def palette_distance(picture: torch.Tensor, painting: torch.Tensor, seed: int = 0) -> float:
    """The palette yardstick: sliced Wasserstein distance in CIELAB (:data:`PIXELS` pixels of each,
    :data:`DIRECTIONS` directions, the same for every call with one ``seed``) between a picture and a painting,
    each ``(3, H, W)`` or ``(1, 3, H, W)`` in 0..1. 0 is the painting's own palette."""
    generator = torch.Generator().manual_seed(seed)
    a = sample(colours(picture.detach().cpu()), PIXELS, generator)
    b = sample(colours(painting.detach().cpu()), PIXELS, generator)
    return sliced_wasserstein(a, b, directions(DIRECTIONS, generator)).item()


class PaletteLoss:
    """The palette distance of a stylized batch to the painting, as a training loss with its weight.

    Every pixel of each picture is compared with as many quantiles of ``target``, the painting's CIELAB colours
    (or the mixed paintings', by weight), along ``count`` directions (the sort is differentiable). The directions
    are drawn once, from a fixed seed: in three dimensions a few dozen of them pin a distribution down, and a loss
    that draws nothing per step gives a resumed run the losses of an uninterrupted one.
    """

    def __init__(self, target: torch.Tensor, weight: float, count: int = 32) -> None:
        self.weight = weight
        self.axes = directions(count, torch.Generator().manual_seed(0)).to(target.device)
        # the painting's side, (K, pixels): the same every step, so projected and sorted once
        self.target = projected(target, self.axes)

    def __call__(self, output: torch.Tensor) -> torch.Tensor:
        """The mean over the batch of each picture's distance: per picture, as the yardstick measures, and
        so the same whether one process sees the batch or several see shares of it."""
        pictures = projected(lab(output).flatten(2).transpose(1, 2), self.axes)  # (N, K, pixels)
        return self.weight * sorted_distance(pictures, self.target)


def fit_colours(outputs: torch.Tensor, target: torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The affine map of RGB, ``(matrix (3, 3), shift (3,))``, that brings a network's outputs (a ``(pixels, 3)``
    table of RGB values, not clamped) nearest to the palette of ``target`` (CIELAB colours, ``(pixels, 3)``)
    once mapped and clamped to 0..1, by the palette distance.

    Why: in a few minutes of training the palette term moves the colours only part of the way on paintings far
    from the starting network's (bright, many-coloured ones), and twelve numbers fitted to the finished network's
    outputs move them the rest of the way in a second. An affine map of the output folds exactly into the last
    layer (:func:`stst.model.network.recolour`): free at inference, and every engine runs it.
    """
    generator = torch.Generator().manual_seed(seed)
    rows = sample(outputs.detach().float().cpu(), FIT_PIXELS, generator)
    axes = directions(FIT_DIRECTIONS, generator)
    goal = quantiles(projected(target.float().cpu(), axes), FIT_PIXELS)  # once, not at every step
    matrix = torch.eye(3, dtype=rows.dtype, requires_grad=True)  # float32 also where float64 is torch's default
    shift = torch.zeros(3, dtype=rows.dtype, requires_grad=True)
    optimizer = torch.optim.Adam([matrix, shift], lr=FIT_RATE)
    for _ in range(FIT_STEPS):
        mapped = (rows @ matrix.T + shift).clamp(0, 1)
        distance = sorted_distance(projected(lab(mapped.T[..., None])[..., 0].T, axes), goal)
        optimizer.zero_grad()
        distance.backward()
        optimizer.step()
    return matrix.detach(), shift.detach()
