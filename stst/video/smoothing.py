"""Steadier video from a still-image network: instance-norm statistics carried across frames, dark frames kept dark.

A frame stylized alone is normalised by its own instance-norm statistics, so
as content moves through the picture whole frames pump in colour and
brightness. :class:`StatisticsSmoother` replaces each frame's statistics, at
every norm layer, by an exponential moving average over the frames so far,
restarted at a scene cut (a frame whose small grey thumbnail differs from the
previous one by more than ``cut``, mean absolute difference on 0..1).

Instance norm also throws away the absolute light level: a black frame and a
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

import contextlib
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F

from ..infer.look import luminance
from ..model.network import TransformerNet, instance_statistics, norm_layers, normalise_with
from .flicker import CUT

DEFAULT_MOMENTUM = 0.9
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
        """For each of ``small`` (:func:`thumbnails` of frames in order): does its frame start a new shot (or the clip)?"""
        starts = []
        for thumbnail in small:
            new = self.thumbnail is None or (thumbnail - self.thumbnail).abs().mean().item() > self.cut
            self.count += new and self.thumbnail is not None
            starts.append(new)
            self.thumbnail = thumbnail
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
        gains = []
        small = thumbnails(frames)  # their mean is the frame's mean luma (exactly where 32 divides the size)
        for start, luma in zip(self.cuts(small), small.mean((1, 2, 3)).tolist()):
            if start:
                self.light, self.gain = luma, 1.0
            else:
                self.light = self.momentum * self.light + (1 - self.momentum) * luma
            self.gain = min(1.0, self.gain + self.rise, luma / max(self.dark, min(self.light, self.top)))
            gains.append(self.gain)
        if min(gains) >= 1.0:  # most frames: nothing to dim, no pass over the outputs
            return outputs
        return outputs * torch.tensor(gains, dtype=outputs.dtype).view(-1, 1, 1, 1)


class StatisticsSmoother:
    """Per-clip state: the moving average of every norm layer's statistics and where shots start."""

    def __init__(self, model: TransformerNet, momentum: float = DEFAULT_MOMENTUM, cut: float = CUT) -> None:
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"statistics momentum {momentum} is not in [0, 1)")
        self.model, self.momentum = model, momentum
        self.state: dict[torch.nn.Module, tuple[torch.Tensor, torch.Tensor]] = {}
        self.cuts = ShotCuts(cut)

    @contextlib.contextmanager
    def applied(self, batch: torch.Tensor) -> Iterator[None]:
        """Within this block the model's forward passes over ``batch`` (frames in order; in one pass, or image by
        image as the CPU engines run it) use smoothed statistics."""
        starts = self.cuts(thumbnails(batch))
        keep = self.momentum
        seen: dict[torch.nn.Module, int] = {}  # frames of the batch each norm layer has normalised so far

        def normalise(module, inputs, _output):
            x = inputs[0]
            mean, var = instance_statistics(x.float())
            state = self.state.get(module)
            means, variances = [], []
            first = seen.get(module, 0)
            seen[module] = first + len(x)
            for i, start in enumerate(starts[first:first + len(x)]):
                if state is None or start:
                    state = (mean[i], var[i])
                else:
                    state = (keep * state[0] + (1 - keep) * mean[i], keep * state[1] + (1 - keep) * var[i])
                means.append(state[0])
                variances.append(state[1])
            self.state[module] = state
            return normalise_with(module, x, torch.stack(means).to(x.dtype), torch.stack(variances).to(x.dtype))

        handles = [m.register_forward_hook(normalise) for m in norm_layers(self.model)]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def around(self, stylizer: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
        """``stylizer`` (running this model in torch, untiled) with the statistics smoothed across calls."""
        def run(batch: torch.Tensor) -> torch.Tensor:
            with self.applied(batch):
                return stylizer(batch)
        return run
