"""Less flicker in stylized video, along the optical flow of the source: its noise filtered over time before the
network (on by default), or each output blended with the previous one after it (an option).

A feed-forward network magnifies small changes of its input: the sensor and
compression noise of a still scene, new in every frame, comes out as strokes
that boil. :class:`FlowDenoiser` is a motion-compensated recursive filter of
the *source* frames, the classic video noise reducer: the previous filtered
frame is carried onto this one along the flow, and where the flow is reliable
(forward-backward check) and the two agree (no cut, no sudden light), each
pixel is pulled towards it by ``strength``. The carried frame is first scaled
to this frame's mean light: a fade changes every pixel by less than the gate
lets through, and without it the filtered frames lagged up to three times
behind a fade, which the dark-frame dimming then showed as a jump. The
network then sees the same picture wherever nothing changed, and every
output is still a full stylization of one photo, so the strokes stay as
crisp as in a still. Flow comes from DIS at its fast preset, on frames
shrunk to at most ``FLOW_SIDE`` pixels; only the carry and the blend touch
the full frame. On two CPU cores
of a Xeon it costs 36 ms per 640x480 frame and 92 ms per 1920x1440 one
(``scripts/bench_video.py``), in the decoding thread beside the network.

:class:`FlowBlend` is the stronger and costlier lever. Ruder, Dosovitskiy,
Brox, "Artistic Style Transfer for Videos" (GCPR 2016) make frame t start from the warped stylization of frame t-1; for a
feed-forward network the same idea is a blend after the fact: where the flow
of the *source* frames is reliable (forward-backward check), the output is
``weight * warped previous output + (1 - weight) * this frame's stylization``;
where it is not (occlusions, cuts, fast motion), this frame's own
stylization, so moving objects do not leave ghosts. Since the previous output
was itself blended, strokes are carried along motion trajectories (an
exponential moving average along the flow). DIS flow from OpenCV; measure the
result with a different flow method (Farneback) so that the metric does not
reward its own flow's mistakes. On the quick tiers' path (a light blend by
default) it takes the flow the denoiser has just computed for the frame
(:attr:`FlowDenoiser.motion`) instead of computing one of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..base.imageio import shrunk_size
from ..base.opencv import opencv
from .flow import gray, reliable_flow, warp
from .settings import DEFAULT_DENOISE

DEFAULT_WEIGHT = 0.6
DENOISE_AGREE = 0.1  # local mean absolute grey difference (0..1) up to which the carried frame is trusted fully ...
DENOISE_WINDOW = 5  # ... over this many pixels; from 2x as much on, not at all (a cut, a flash, a flow error)
FADE_GAIN = (0.25, 4.0)  # how far the carried frame's light may be scaled to this frame's (a fade); not more, so
# that a black frame's noise is not blown up into the first frame of a fade from black
FLOW_SIDE = 640  # the long side (pixels) of the frames the filter's flow is computed on
QUICK_FLOW_SIDE = 320  # ... for the quick tiers (VideoSettings.quick): 19 ms a 640x480 frame instead of 47
Motion = tuple[np.ndarray, np.ndarray]  # a frame's flow back to the one before (H, W, 2), and where it is reliable


@dataclass(frozen=True)
class Carry:
    """How the previous filtered frame comes onto this one (:class:`FlowGate`): the flow back to it and the weight
    it takes, at the flow's size, and the gain that follows a fade."""

    backward: np.ndarray  # (h, w, 2) float32, at the flow's size
    weight: np.ndarray  # (h, w) float32
    gain: np.float32
    scale: float  # of the flow's size to the frame's


class FlowGate:
    """The flow's side of :class:`FlowDenoiser`, on shrunk grey frames: per frame, how the previous filtered frame is
    carried onto it (a :class:`Carry`), with a shrunk grey copy of the filter's state filtered alike. Torch-free and
    in order: the decoding thread runs it, and the full frames are carried on the CPU (:class:`FlowDenoiser`) or on
    a GPU (:class:`stst.video.device_steady.DeviceDenoiser`)."""

    def __init__(self, strength: float = DEFAULT_DENOISE, side: int = FLOW_SIDE) -> None:
        if not 0.0 <= strength < 1.0:
            raise ValueError(f"denoise strength {strength} is not in [0, 1)")
        self.strength, self.side = strength, side
        # shrunk grey source frame (uint8, for the flow), its filtered copy (float32), and the full frame's shape
        self.previous: tuple[np.ndarray, np.ndarray, tuple[int, ...]] | None = None
        # the last frame's flow back to the one before and where it is reliable, at the flow's size (the quick
        # clip path blends the outputs along it: FlowBlend's motion)
        self.motion: Motion | None = None

    def __call__(self, rgb: np.ndarray) -> Carry | None:
        """How the previous filtered frame comes onto ``rgb`` ((H, W, 3) uint8); None for a first frame, a frame of
        a new size, or strength 0."""
        cv2 = opencv()
        h, w = rgb.shape[:2]
        scale = min(1.0, self.side / max(h, w))  # of the flow's vectors, too
        small = gray(rgb if scale == 1 else cv2.resize(rgb, shrunk_size(w, h, self.side), interpolation=cv2.INTER_AREA))
        small_filtered = small.astype(np.float32)
        self.motion = carry = None
        if self.previous is not None and self.strength > 0 and self.previous[2] == rgb.shape:
            small0, small_filtered0, _ = self.previous
            backward, trusted = reliable_flow(small, small0, "dis-fast")
            self.motion = backward, trusted
            carried = warp(small_filtered0, backward)
            # a fade changes every pixel by less than the gate lets through: the carry follows the light
            gain = np.float32(np.clip((small_filtered.mean() + 0.1) / (carried.mean() + 0.1), *FADE_GAIN))
            carried *= gain
            change = cv2.blur(cv2.absdiff(carried, small_filtered), (DENOISE_WINDOW, DENOISE_WINDOW)) / 255
            weight = (self.strength * trusted * np.clip(2 - change / DENOISE_AGREE, 0, 1)).astype(np.float32)
            small_filtered = cv2.blendLinear(carried, small_filtered, weight, 1 - weight)
            carry = Carry(backward, weight, gain, scale)
        self.previous = (small, small_filtered, rgb.shape)
        return carry


class FlowDenoiser:
    """Stateful per-clip filter: call it on each source frame in order.

    ``strength`` in [0, 1) is the weight of the carried previous frame where it
    is trusted: 0.8 averages about the last 9 frames of a still scene and cuts
    its noise to a third. ``side`` is the long side the flow is computed at
    (smaller frames as they are). The first frame, and any frame of a new
    size, pass unchanged.
    """

    def __init__(self, strength: float = DEFAULT_DENOISE, side: int = FLOW_SIDE) -> None:
        self.gate = FlowGate(strength, side)
        self.frame: np.ndarray | None = None  # the last filtered frame, float32

    @property
    def motion(self) -> Motion | None:
        """The last frame's flow back to the one before and where it is reliable (:attr:`FlowGate.motion`)."""
        return self.gate.motion

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """``rgb``: (H, W, 3) uint8; returns the filtered frame, (H, W, 3) uint8.

        The flow, the check and the gate work on the shrunk grey frames (:class:`FlowGate`); only the carry and the
        blend touch the full frame.
        """
        cv2 = opencv()
        carry = self.gate(rgb)
        frame = rgb.astype(np.float32)
        if carry is not None:
            h, w = rgb.shape[:2]
            backward, weight = carry.backward, carry.weight
            if carry.scale < 1:
                backward = cv2.resize(backward, (w, h), interpolation=cv2.INTER_LINEAR) / carry.scale
                weight = cv2.resize(weight, (w, h), interpolation=cv2.INTER_LINEAR)
            warped = warp(self.frame, backward)
            warped *= carry.gain
            frame = cv2.blendLinear(warped, frame, weight, 1 - weight)
        self.frame = frame
        return cv2.convertScaleAbs(frame)  # rounded, saturated to uint8


def checked_weight(weight: float) -> float:
    """A blend's weight of the previous output, which must be in [0, 1) (1 would never take a new frame)."""
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"temporal blend weight {weight} is not in [0, 1)")
    return weight


class FlowBlend:
    """Stateful per-clip blender: call it on each frame in order with the source and the stylized frame, and
    the denoiser's :attr:`FlowDenoiser.motion` of that frame where it should ride on that flow instead of its own
    (``method``)."""

    def __init__(self, weight: float = DEFAULT_WEIGHT, method: str = "dis") -> None:
        self.weight, self.method = checked_weight(weight), method
        self.previous: tuple[np.ndarray, np.ndarray] | None = None

    def __call__(self, source: np.ndarray, stylized: torch.Tensor, motion: Motion | None = None) -> torch.Tensor:
        """``source``: (H, W, 3) uint8 RGB frame; ``stylized``: (3, H, W) 0..1; returns the blended (3, H, W)."""
        g = gray(source) if motion is None else None
        out = stylized.permute(1, 2, 0).contiguous().numpy()
        if self.previous is not None and self.weight > 0 and self.previous[1].shape == out.shape:
            g0, o0 = self.previous
            if motion is not None:
                backward, mask = _enlarged(motion, out.shape[:2])
            elif g0 is not None:
                backward, mask = reliable_flow(g, g0, self.method)
            else:  # the previous frame had no flow of its own, and this one brings none
                backward, mask = None, None
            if backward is not None:
                weight = mask.astype(np.float32) * np.float32(self.weight)  # 0 where the flow is not reliable
                out = opencv().blendLinear(warp(o0, backward), out, weight, 1 - weight)
        self.previous = (g, out)
        return torch.from_numpy(out).permute(2, 0, 1)


def _enlarged(motion: Motion, size: tuple[int, int]) -> Motion:
    """The denoiser's flow and reliable pixels, computed on shrunk frames, at the frames' ``size`` (H, W)."""
    cv2 = opencv()
    backward, trusted = motion
    h, w = size
    if backward.shape[:2] == size:
        return motion
    scale = w / backward.shape[1]
    backward = cv2.resize(backward, (w, h), interpolation=cv2.INTER_LINEAR) * np.float32(scale)
    return backward, cv2.resize(trusted.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
