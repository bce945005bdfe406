"""Controls on the look of a stylized photo, applied around any network: stroke scale, colours, strength.

- ``stroke_scale``: the network runs on the photo shrunk by this factor and its
  output is enlarged back, so the painting's strokes come out this many times
  bigger relative to the photo (and the network does 1/scale^2 of the work).
  The photo's fine luminance detail lost by the shrink is added back, so edges
  stay sharp. 1 is the network as trained.
- ``preserve_colors``: luminance-only transfer (Gatys, Bethge, Hertzmann,
  Shechtman, "Preserving Color in Neural Artistic Style Transfer", 2016): the
  result's luminance (Y of BT.601 YCbCr) with the photo's chroma (Cb, Cr).
  Chosen over colour-histogram matching because it keeps every pixel's own hue
  (a red parrot stays that red) and needs no statistics of the painting; the
  strokes and the painting's light and dark come through. Chroma equals the
  photo's except where the combination leaves the RGB gamut and is clipped.
- ``strength``: a linear blend in RGB between the photo (0) and the full style
  (1): every step moves each pixel the same fraction of the way, so the path is
  smooth and the content loss falls steadily towards 0.

torch is imported when a look is applied, not with this module: the command
line builds a :class:`Look` before it knows whether torch is needed at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from typing import TYPE_CHECKING

from ..base.opencv import opencv

if TYPE_CHECKING:
    import numpy as np
    import torch

# BT.601 luma weights (JPEG's YCbCr).
_LUMA = (0.299, 0.587, 0.114)
MIN_STROKE_SCALE, MAX_STROKE_SCALE = 0.25, 8.0


def luminance(rgb: torch.Tensor) -> torch.Tensor:
    """``(N, 1, H, W)`` BT.601 luma of ``(N, 3, H, W)`` RGB."""
    import torch

    # one weighted sum over the channels: faster than adding scaled channel slices
    return torch.einsum("nchw,c->nhw", rgb, rgb.new_tensor(_LUMA)).unsqueeze(1)


def keep_colors(photo: torch.Tensor, stylized: torch.Tensor) -> torch.Tensor:
    """The stylized luminance with the photo's chroma: RGB + (Y_stylized - Y_photo) on every channel.

    Adding the same amount to R, G and B changes Y by that amount and leaves
    Cb and Cr (differences from Y) as they were, so this is exactly "swap Y".
    """
    return (photo + (luminance(stylized) - luminance(photo))).clamp_(0, 1)


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``x`` (N, C, H, W) resized to ``size`` (H, W): bicubic up, area-averaged down. On a CPU each plane goes through
    OpenCV, about 10x faster than torch's antialiased bicubic: the half-size clip path's enlargements would
    otherwise cost as much as its network (docs/video.md)."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    shrink = size[0] < x.shape[-2]
    if x.device.type != "cpu" or x.dtype != torch.float32:
        return F.interpolate(x, size=size, mode="bicubic", antialias=shrink, align_corners=False)
    cv2 = opencv()
    planes = x.detach().contiguous().reshape(-1, *x.shape[-2:]).numpy()
    how = cv2.INTER_AREA if shrink else cv2.INTER_CUBIC
    out = np.empty((len(planes), *size), np.float32)  # written in place: far faster than stacking new planes
    for plane, resized in zip(planes, out):
        cv2.resize(plane, size[::-1], dst=resized, interpolation=how)
    return torch.from_numpy(out).reshape(*x.shape[:-2], *size)


@dataclass(frozen=True)
class Look:
    """How far from the network's plain output: see the module docstring. The defaults change nothing."""

    stroke_scale: float = 1.0
    preserve_colors: bool = False
    strength: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError(f"strength {self.strength} is not between 0 and 1")
        if not MIN_STROKE_SCALE <= self.stroke_scale <= MAX_STROKE_SCALE:
            raise ValueError(f"stroke scale {self.stroke_scale} is not between {MIN_STROKE_SCALE} and {MAX_STROKE_SCALE}")

    @property
    def plain(self) -> bool:
        return self.stroke_scale == 1.0 and not self.preserve_colors and self.strength == 1.0

    def _strokes(self, network: Callable[[torch.Tensor], torch.Tensor], photo: torch.Tensor) -> torch.Tensor:
        if self.stroke_scale == 1.0:
            return network(photo)
        h, w = photo.shape[-2:]
        small = (max(1, round(h / self.stroke_scale)), max(1, round(w / self.stroke_scale)))
        shrunk = _resize(photo, small)
        out = _resize(network(shrunk).float(), (h, w))
        if self.stroke_scale > 1.0:  # the photo's detail finer than the shrunk copy holds (luma is linear)
            out += luminance(photo - _resize(shrunk, (h, w)))
        return out.clamp_(0, 1)

    def apply(self, network: Callable[[torch.Tensor], torch.Tensor], photo: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Stylize a ``(N, 3, H, W)`` 0..1 batch (a tensor or an array) with ``network`` (0..1 in and out) in
        this look."""
        import torch

        photo = torch.as_tensor(photo)
        if self.strength == 0.0:
            return photo.clone()
        out = self._strokes(network, photo)
        if self.preserve_colors:
            out = keep_colors(photo, out)
        if self.strength < 1.0:
            out = torch.lerp(photo, out, self.strength)
        return out

    def around(self, network: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
        """``network`` itself when plain, else a callable that applies this look."""
        return network if self.plain else lambda photo: self.apply(network, photo)
