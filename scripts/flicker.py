"""The flicker metric of the video benchmark and tests: the warping error of Lai et al. 2018 (not needed by stst).

Lai, Huang, Wang, Shechtman, Yumer, Yang, "Learning Blind Video Temporal
Consistency" (ECCV 2018): the optical flow of the *source* frames carries
stylized frame t-1 onto frame t; where the flow is reliable (a forward-backward
check, Ruder et al. 2016), the mean squared RGB difference (0..1 values)
between stylized frame t and that warped frame, averaged over the clip. Lower
is steadier; the source clip's own value is the floor set by lighting changes
and flow errors. Scene cuts are found as the product finds them
(:class:`stst.video.smoothing.ShotCuts`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from stst.base.opencv import opencv
from stst.video.flow import gray, reliable_flow, warp
from stst.video.smoothing import ShotCuts, thumbnails


def warping_error(source: Iterable[np.ndarray], stylized: Iterable[np.ndarray], method: str = "dis",
                  across_cuts: bool = False) -> float:
    """Mean warping error of ``stylized`` frames against the motion of ``source`` frames (RGB uint8, equal sizes).

    Pairs of frames across a scene cut are left out unless ``across_cuts``:
    there the flow matches unrelated pictures, and the error measures the new
    shot, not flicker. Clips without cuts get the same value either way.
    """
    errors = []
    previous = None
    cuts = ShotCuts()
    for src, out in zip(source, stylized):
        if src.shape[:2] != out.shape[:2]:
            src = opencv().resize(src, (out.shape[1], out.shape[0]), interpolation=opencv().INTER_AREA)
        g, o = gray(src), out.astype(np.float32) / 255
        [cut] = cuts(thumbnails(torch.from_numpy(src).permute(2, 0, 1)[None].float() / 255))
        if previous is not None and (across_cuts or not cut):
            g0, o0 = previous
            backward, mask = reliable_flow(g, g0, method)
            if mask.any():
                errors.append(float(np.square(o - warp(o0, backward))[mask].mean()))
        previous = (g, o)
    if not errors:
        raise ValueError("need at least two frames with reliable flow")
    return float(np.mean(errors))


def read_frames(path: str | Path, limit: int | None = None) -> Iterator[np.ndarray]:
    """RGB uint8 frames of a clip, upright as stored (rotation metadata is not applied)."""
    import av

    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if limit is not None and i >= limit:
                return
            yield frame.to_ndarray(format="rgb24")
