"""Steadier video from a still-image network: instance-norm statistics carried across frames, dark frames kept dark.

A frame stylized alone is normalised by its own instance-norm statistics, so
as content moves through the picture whole frames pump in colour and
brightness. :class:`StatisticsSmoother` replaces each frame's statistics, at
every norm layer, by an exponential moving average over the frames so far,
restarted at a scene cut (a frame whose small grey thumbnail differs from the
previous one by more than ``cut``, mean absolute difference on 0..1).

Instance norm also throws away the absolute light level: a black frame and a
mid-grey one come out the same painting, so a fade from black would jump
from a full painting to black. :func:`keep_dark` dims each output in
proportion to its source's mean luma below ``DARK``: black stays black, and
the fade is continuous.
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


def keep_dark(frames: torch.Tensor, outputs: torch.Tensor, dark: float = DARK) -> torch.Tensor:
    """``outputs`` scaled by min(1, mean luma of the source frame / ``dark``), frame by frame."""
    gain = (luminance(frames).mean((1, 2, 3), keepdim=True) / dark).clamp(max=1)
    return outputs * gain.to(outputs.dtype)


class StatisticsSmoother:
    """Per-clip state: the moving average of every norm layer's statistics and the last frame's thumbnail."""

    def __init__(self, model: TransformerNet, momentum: float = DEFAULT_MOMENTUM, cut: float = CUT) -> None:
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"statistics momentum {momentum} is not in [0, 1)")
        self.model, self.momentum, self.cut = model, momentum, cut
        self.state: dict[torch.nn.Module, tuple[torch.Tensor, torch.Tensor]] = {}
        self.thumbnail: torch.Tensor | None = None
        self.cuts = 0

    def _new_shots(self, batch: torch.Tensor) -> list[bool]:
        """For each frame in order: does it start a new shot (or the clip)?"""
        thumbnails = F.adaptive_avg_pool2d(luminance(batch.float()), 32)
        starts = []
        for thumbnail in thumbnails:
            new = self.thumbnail is None or (thumbnail - self.thumbnail).abs().mean().item() > self.cut
            self.cuts += new and self.thumbnail is not None
            starts.append(new)
            self.thumbnail = thumbnail
        return starts

    @contextlib.contextmanager
    def applied(self, batch: torch.Tensor) -> Iterator[None]:
        """Within this block the model's next forward pass over ``batch`` (frames in order) uses smoothed statistics."""
        starts = self._new_shots(batch)
        keep = self.momentum

        def normalise(module, inputs, _output):
            x = inputs[0]
            mean, var = instance_statistics(x.float())
            state = self.state.get(module)
            means, variances = [], []
            for i, start in enumerate(starts):
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
