"""A clip's steadying where its network runs (a GPU): the full-frame steps of :mod:`stst.video.temporal` in torch.

At 1080p the denoiser's carry and the outputs' blend touch two million pixels a frame, as many as converting the
frames to float and back: on a GPU that is the CPU's work that would hold the network back. The flow stays small and
on the CPU (:class:`stst.video.temporal.FlowGate`, in the decoding thread); here the previous filtered frame and the
previous output are carried along it on the device: ``grid_sample`` (bilinear, edges repeated) for OpenCV's
``remap`` with ``BORDER_REPLICATE``, ``interpolate`` (bilinear, half-pixel centres; nearest for the reliable pixels)
for its ``resize``. The same steps as the CPU's, in float32, within float rounding (tested on the CPU).
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

from .temporal import Carry, Motion, checked_weight


@functools.lru_cache(maxsize=4)
def _pixel_grid(h: int, w: int, device: torch.device) -> torch.Tensor:
    y, x = torch.meshgrid(torch.arange(h, dtype=torch.float32, device=device),
                          torch.arange(w, dtype=torch.float32, device=device), indexing="ij")
    return torch.stack([x, y], -1)


def warp(image: torch.Tensor, backward: torch.Tensor) -> torch.Tensor:
    """``image`` (C, H, W) sampled at x + backward(x) ((H, W, 2), pixels): :func:`stst.video.flow.warp` on a device."""
    h, w = backward.shape[:2]
    where = _pixel_grid(h, w, backward.device) + backward
    scale = torch.tensor([2 / max(w - 1, 1), 2 / max(h - 1, 1)], device=backward.device)
    grid = (where * scale - 1)[None]
    return F.grid_sample(image[None], grid, mode="bilinear", padding_mode="border", align_corners=True)[0]


def _to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array)).to(device, non_blocking=True)


def enlarged_flow(backward: np.ndarray, size: tuple[int, int], device: torch.device, factor: float) -> torch.Tensor:
    """A flow computed on shrunk frames ((h, w, 2), pixels there) at ``size`` (H, W), its vectors times ``factor``
    (as the CPU's steps scale them); as it is where it has that size."""
    flow = _to_device(backward, device)
    if tuple(flow.shape[:2]) == size:
        return flow
    return F.interpolate(flow.permute(2, 0, 1)[None], size=size, mode="bilinear", align_corners=False)[0].permute(
        1, 2, 0) * factor


def _enlarged(plane: np.ndarray, size: tuple[int, int], device: torch.device, mode: str) -> torch.Tensor:
    """An (h, w) plane at ``size`` (H, W) on ``device``: ``bilinear`` as OpenCV's INTER_LINEAR, ``nearest`` as its
    INTER_NEAREST."""
    values = _to_device(plane.astype(np.float32, copy=False), device)
    if tuple(values.shape) == size:
        return values
    if mode == "nearest":
        return F.interpolate(values[None, None], size=size, mode="nearest")[0, 0]
    return F.interpolate(values[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]


class DeviceDenoiser:
    """The full-frame half of :class:`stst.video.temporal.FlowDenoiser` on the frames' device: each frame of a batch
    (in order) with the :class:`Carry` its :class:`FlowGate` gave it."""

    def __init__(self) -> None:
        self.frame: torch.Tensor | None = None  # the last filtered frame, (3, H, W) float32 in 0..255

    def __call__(self, frames: torch.Tensor, carries: list[Carry | None]) -> torch.Tensor:
        """``frames``: (N, 3, H, W) in 0..1 (uint8 photos divided by 255); returns them filtered and rounded to
        uint8's levels, as the CPU's filter hands them on, in 0..1."""
        out = []
        for x, carry in zip(frames, carries):
            frame = (x.float() * 255).round_()  # the decoded bytes, exactly
            if carry is not None and self.frame is not None and self.frame.shape == frame.shape:
                size = tuple(frame.shape[-2:])
                backward = enlarged_flow(carry.backward, size, frame.device, 1 / carry.scale)
                weight = _enlarged(carry.weight, size, frame.device, "bilinear")
                warped = warp(self.frame.to(frame.device), backward) * float(carry.gain)
                frame = warped * weight + frame * (1 - weight)
            self.frame = frame
            out.append(frame.round().clamp_(0, 255))
        return torch.stack(out).div_(255)


class DeviceBlend:
    """:class:`stst.video.temporal.FlowBlend` riding on the denoiser's flow, on the outputs' device."""

    def __init__(self, weight: float) -> None:
        self.weight = checked_weight(weight)
        self.previous: torch.Tensor | None = None  # the last blended output, (3, H, W) float32

    def __call__(self, outputs: torch.Tensor, motions: list[Motion | None]) -> torch.Tensor:
        """``outputs`` (N, 3, H, W) in 0..1, each blended with the one before along its frame's ``motions``."""
        out = []
        for y, motion in zip(outputs.float(), motions):
            if self.previous is not None and motion is not None and self.previous.shape == y.shape and self.weight:
                size = tuple(y.shape[-2:])
                backward = enlarged_flow(motion[0], size, y.device, size[1] / motion[0].shape[1])
                weight = _enlarged(motion[1], size, y.device, "nearest") * self.weight
                y = warp(self.previous.to(y.device), backward) * weight + y * (1 - weight)
            self.previous = y
            out.append(y)
        return torch.stack(out)
