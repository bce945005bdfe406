"""Optical flow between video frames, and where it can be trusted (a forward-backward check, Ruder et al. 2016).

Uses OpenCV (``opencv-python-headless``): DIS flow by default, Farneback as
an independent second method.
"""

from __future__ import annotations

import functools

import numpy as np

from ..base.opencv import opencv

FLOW_METHODS = ("dis", "dis-fast", "farneback")
CUT = 0.2  # mean absolute difference of 32x32 grey thumbnails (0..1) that starts a new shot
DIS_MIN_SIDE = 12  # OpenCV's DIS refuses frames whose sides are both shorter; Farneback takes them


def flow(a: np.ndarray, b: np.ndarray, method: str = "dis") -> np.ndarray:
    """Dense flow from grayscale uint8 frame ``a`` to ``b``: a(x) ~ b(x + flow(x)), (H, W, 2) float32.

    ``dis`` is DIS at its medium preset, ``dis-fast`` at its fast one (about
    5x faster; for the video path, where the frames come every few ms). Frames
    below :data:`DIS_MIN_SIDE` on both sides (a thumbnail clip) get Farneback's.
    """
    cv2 = opencv()
    if method in ("dis", "dis-fast") and max(a.shape[:2]) >= DIS_MIN_SIDE:
        preset = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM if method == "dis" else cv2.DISOPTICAL_FLOW_PRESET_FAST
        return cv2.DISOpticalFlow_create(preset).calc(a, b, None)
    if method in FLOW_METHODS:
        return cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 4, 21, 3, 7, 1.5, 0)
    raise ValueError(f"unknown flow method '{method}' (use {' or '.join(FLOW_METHODS)})")


@functools.lru_cache(maxsize=4)
def pixel_grid(h: int, w: int) -> np.ndarray:
    """(H, W, 2) float32 pixel coordinates (x, y), kept for the few frame sizes of a run."""
    y, x = np.indices((h, w), dtype=np.float32)
    grid = np.stack([x, y], -1)
    grid.flags.writeable = False
    return grid


def warp(image: np.ndarray, flow_to_source: np.ndarray) -> np.ndarray:
    """``image`` sampled at x + flow(x): the previous frame carried onto the current one."""
    cv2 = opencv()
    where = pixel_grid(*flow_to_source.shape[:2]) + flow_to_source
    return cv2.remap(image, where, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def reliable(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Pixels of frame t whose flow to t-1 and back agrees (not occluded, not at a motion boundary), (H, W) bool.

    Ruder, Dosovitskiy, Brox 2016: |b + f(x + b)|^2 < 0.01 (|b|^2 + |f(x + b)|^2) + 0.5.
    """
    there = warp(forward, backward)
    return (_squared_length(backward + there)
            < 0.01 * (_squared_length(backward) + _squared_length(there)) + 0.5)


_PAIR = np.ones(2, dtype=np.float32)


def _squared_length(vectors: np.ndarray) -> np.ndarray:
    """``|v|^2`` of (H, W, 2) float32 vectors, (H, W): the same sums as ``np.square(v).sum(-1)``, but numpy's sum
    over a last axis of 2 took 1.6 ms at 320x240 (two thirds of the flow check) where this product takes 0.07."""
    return np.square(vectors) @ _PAIR


def reliable_flow(current: np.ndarray, previous: np.ndarray, method: str = "dis") -> tuple[np.ndarray, np.ndarray]:
    """The flow from grey frame ``current`` back to ``previous`` (for :func:`warp`) and where it is reliable."""
    backward = flow(current, previous, method)
    return backward, reliable(backward, flow(previous, current, method))


def gray(rgb: np.ndarray) -> np.ndarray:
    return opencv().cvtColor(rgb, opencv().COLOR_RGB2GRAY)
