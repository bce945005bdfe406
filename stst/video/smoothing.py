"""Dark frames kept dark in video from a still-image network, shot by shot.

A new shot starts where a frame's small grey thumbnail differs from the
previous one by more than ``cut`` (mean absolute difference on 0..1). Instance norm throws away the absolute light level: a black frame and a
mid-grey one come out the same painting, so a fade from black would jump
from a full painting to black. :class:`DarkKeeper` dims each output in
proportion to its source's mean luma below ``DARK``: black stays black, and
the fade is continuous. A fade to black is dimmed along its way down from
the shot's recent light (up to ``FADE_TOP``), not only over its last frames
under ``DARK``, and within a shot the dimming lifts by at most ``DARK_RISE``
a frame, so a fade from black comes up over about ten frames, not three: a
jump of 0.5 flickers as much as 25 steps of 0.1 (the warping error is
squared).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..infer.look import luminance
from .flow import CUT

DARK = 0.1  # mean luma (0..1) under which a frame's output is dimmed in proportion
FADE_TOP = 0.25  # the highest light (mean luma) a fade to black is dimmed from: a steady scene is never dimmed,
# and a slow pan into a darker part of a bright scene is not either
LIGHT_MOMENTUM = 0.9  # of the shot's recent light: a fade falls faster than it follows
DARK_RISE = 0.1  # the most the dimming may lift from one frame to the next within a shot (a cut lifts it at once)


def thumbnails(frames: torch.Tensor) -> torch.Tensor:
    """``(N, 1, 32, 32)`` grey thumbnails of ``(N, 3, H, W)`` frames, pooled first: pooling and luma are both
    linear, and one pass over the full frames costs a third of luma then pooling."""
    return luminance(F.adaptive_avg_pool2d(frames.float(), 32))


class ShotCuts:
    """Per-clip state: the last frame's 32x32 grey thumbnail, to tell where a new shot starts (torch, batched)."""

    def __init__(self, cut: float = CUT) -> None:
        self.cut = cut
        self.thumbnail: torch.Tensor | None = None
        self.count = 0

    def __call__(self, small: torch.Tensor) -> list[bool]:
        """For each of ``small`` (:func:`thumbnails` of frames in order): does its frame start a new shot (or the clip)?
        One reading of the device for the batch (a GPU's frames)."""
        before = small[:1] if self.thumbnail is None else self.thumbnail[None].to(small.device)
        changes = (small - torch.cat([before, small[:-1]])).abs().mean((1, 2, 3)).tolist()
        starts = [change > self.cut for change in changes]
        if self.thumbnail is None:
            starts[0] = True
        self.count += sum(starts) - (self.thumbnail is None)
        self.thumbnail = small[-1]
        return starts


class DarkKeeper:
    """Per-clip state: dims each output by min(1, its source's mean luma / max(``DARK``, the shot's recent light up
    to ``FADE_TOP``)), lifting by at most ``DARK_RISE`` a frame within a shot, so that black stays black and fades
    go smoothly all the way."""

    def __init__(self, dark: float = DARK, top: float = FADE_TOP, momentum: float = LIGHT_MOMENTUM,
                 rise: float = DARK_RISE) -> None:
        self.dark, self.top, self.momentum, self.rise = dark, top, momentum, rise
        self.cuts = ShotCuts()
        self.light = self.gain = 1.0  # the shot's recent mean luma (a moving average) and the last frame's gain

    def __call__(self, frames: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
        """``outputs`` of ``frames`` (the next frames of the clip, in order), dimmed frame by frame."""
        return dimmed(outputs, self.gains(frames))

    def gains(self, frames: torch.Tensor) -> list[float]:
        """How much each of ``frames`` (the next frames of the clip, in order) is dimmed: it needs the frames alone,
        so that a GPU learns it before its network runs."""
        gains = []
        small = thumbnails(frames)  # their mean is the frame's mean luma (exactly where 32 divides the size)
        for start, luma in zip(self.cuts(small), small.mean((1, 2, 3)).tolist()):
            if start:
                self.light, self.gain = luma, 1.0
            else:
                self.light = self.momentum * self.light + (1 - self.momentum) * luma
            self.gain = min(1.0, self.gain + self.rise, luma / max(self.dark, min(self.light, self.top)))
            gains.append(self.gain)
        return gains


def dimmed(outputs: torch.Tensor, gains: list[float]) -> torch.Tensor:
    """``outputs`` dimmed by their :meth:`DarkKeeper.gains`, on their device."""
    if min(gains) >= 1.0:  # most frames: nothing to dim, no pass over the outputs
        return outputs
    return outputs * torch.tensor(gains, dtype=outputs.dtype, device=outputs.device).view(-1, 1, 1, 1)
