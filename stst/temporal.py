"""Less flicker in stylized video: each frame blended with the previous output carried along the optical flow.

Ruder, Dosovitskiy, Brox, "Artistic Style Transfer for Videos" (GCPR 2016)
make frame t start from the warped stylization of frame t-1; for a
feed-forward network the same idea is a blend after the fact: where the flow
of the *source* frames is reliable (forward-backward check), the output is
``weight * warped previous output + (1 - weight) * this frame's stylization``;
where it is not (occlusions, cuts, fast motion), this frame's own
stylization, so moving objects do not leave ghosts. Since the previous output
was itself blended, strokes are carried along motion trajectories (an
exponential moving average along the flow). DIS flow from OpenCV; measure the
result with a different flow method (Farneback) so that the metric does not
reward its own flow's mistakes.
"""

from __future__ import annotations

import numpy as np
import torch

from .flicker import flow, gray, reliable, warp

DEFAULT_WEIGHT = 0.6


class FlowBlend:
    """Stateful per-clip blender: call it on each frame in order with the source and the stylized frame."""

    def __init__(self, weight: float = DEFAULT_WEIGHT, method: str = "dis") -> None:
        if not 0.0 <= weight < 1.0:
            raise ValueError(f"temporal blend weight {weight} is not in [0, 1)")
        self.weight, self.method = weight, method
        self.previous: tuple[np.ndarray, np.ndarray] | None = None

    def __call__(self, source: np.ndarray, stylized: torch.Tensor) -> torch.Tensor:
        """``source``: (H, W, 3) uint8 RGB frame; ``stylized``: (3, H, W) 0..1; returns the blended (3, H, W)."""
        g = gray(source)
        out = stylized.permute(1, 2, 0).contiguous().numpy()
        if self.previous is not None and self.weight > 0:
            g0, o0 = self.previous
            backward, forward = flow(g, g0, self.method), flow(g0, g, self.method)
            mask = reliable(backward, forward)[..., None]
            out = np.where(mask, self.weight * warp(o0, backward) + (1 - self.weight) * out, out).astype(np.float32)
        self.previous = (g, out)
        return torch.from_numpy(out).permute(2, 0, 1)
