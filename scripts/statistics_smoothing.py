"""A lever the video benchmark measures, not part of the product: instance-norm statistics carried across frames.

A frame stylized alone is normalised by its own instance-norm statistics, so
as content moves through the picture whole frames pump in colour and
brightness. :class:`StatisticsSmoother` replaces each frame's statistics, at
every norm layer, by an exponential moving average over the frames so far,
restarted at a scene cut. It lost to the flow denoiser on flicker
(docs/video.md), so stst does not use it; ``scripts/bench_video.py`` still
measures it beside the product's path.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch

from stst.model.network import TransformerNet, instance_statistics, norm_layers, normalise_with
from stst.video.flow import CUT
from stst.video.smoothing import ShotCuts, thumbnails


class StatisticsSmoother:
    """Per-clip state: the moving average of every norm layer's statistics and where shots start."""

    def __init__(self, model: TransformerNet, momentum: float = 0.9, cut: float = CUT) -> None:
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
