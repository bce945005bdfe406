"""How clips are stylized and encoded, as one value; torch-free, so that a run is planned before torch loads."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from ..base.limits import DEFAULT_MAX_PIXELS
from ..infer.look import Look
from ..model.bundled import split_tier

DEFAULT_CRF = 18
DEFAULT_DENOISE = 0.8
# The tiers whose clips take the quick path. The light tier's flicker on cup.mp4 (640x480, 90 frames; warping error
# against frame by frame) was 0.72x with the denoiser's flow at 320 px and 0.81x at 640, for 19 ms a frame instead
# of 47; the full tier keeps 640: its denoised frames keep more of their detail (Laplacian 0.67x the source's
# against 0.61x).
QUICK_TIERS = ("light", "realtime")
# On a CPU the quick tiers' frames reach the network at this scale (a quarter of the work at 0.5; strokes twice as
# big, the frame's fine detail added back), their long side not below QUICK_MIN_SIDE: camera rate on two AVX2
# cores (docs/video.md).
QUICK_SCALE = 0.5
QUICK_MIN_SIDE = 320
# ... and each output takes this much of the previous one along the denoiser's flow: the flicker under half
# of frame by frame, for a little of the strokes' crispness (docs/video.md).
QUICK_BLEND = 0.2


@dataclass(frozen=True)
class VideoSettings:
    """How clips are stylized and encoded; one value travels from the CLI or the server to :func:`stylize_video`.

    ``max_size`` shrinks frames so the long side is at most that; clips whose
    frames are larger than ``max_pixels`` are refused from the stream's
    declared size, before decoding. ``temporal`` > 0 blends each frame with
    the previous output along the optical flow (:class:`stst.video.temporal.FlowBlend`,
    less flicker, softer strokes; None: :meth:`blend_weight`). ``denoise`` is
    the strength of the temporal noise filter on the source frames along the
    optical flow (:class:`stst.video.temporal.FlowDenoiser`, less flicker; 0
    is off). ``dark`` keeps dark frames dark (:class:`stst.video.smoothing.DarkKeeper`;
    a fade from black then stays continuous instead of starting from a full
    painting). ``quick`` keeps the rest of the path up with a fast network
    (the light and realtime tiers): the denoiser's flow at ``QUICK_FLOW_SIDE``
    pixels, the encoder's fast settings (:data:`stst.video.encoders.QUICK_ENCODING`), a light blend
    along the denoiser's flow (``QUICK_BLEND``) and, on a CPU (``device``),
    the network on frames shrunk to ``QUICK_SCALE``. ``scale`` sets that
    shrink for any tier (1: the network sees whole frames).
    """

    max_size: int | None = None
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    batch_size: int = 4
    crf: int = DEFAULT_CRF
    codec: str | None = None
    temporal: float | None = None  # None: see blend_weight
    denoise: float = DEFAULT_DENOISE
    dark: bool = True
    quick: bool = False
    scale: float | None = None  # None: see network_scale
    device: str = "cpu"  # the type of device the network runs on

    def for_model(self, model_name: str) -> VideoSettings:
        """These settings for the named model: a light or realtime tier gets the clip path that keeps up with it."""
        return replace(self, quick=split_tier(model_name)[1] in QUICK_TIERS)

    @property
    def blend_rides(self) -> bool:
        """Whether the blend takes the denoiser's flow instead of computing its own: the quick tiers, where the
        denoiser runs."""
        return self.quick and bool(self.denoise)

    def blend_weight(self) -> float:
        """How much of the previous output each frame takes along the flow: ``temporal`` where set, else
        ``QUICK_BLEND`` for the quick tiers where the denoiser runs (the blend rides on its flow), else 0."""
        if self.temporal is not None:
            return self.temporal
        return QUICK_BLEND if self.blend_rides else 0.0

    def network_scale(self, width: int, height: int) -> float:
        """The scale at which frames of ``width`` x ``height`` reach the network: ``scale`` where set, else
        ``QUICK_SCALE`` for the quick tiers on a CPU (their long side not below ``QUICK_MIN_SIDE``), else 1."""
        if self.scale is not None:
            return self.scale
        if not self.quick or self.device != "cpu":
            return 1.0
        return min(1.0, max(QUICK_SCALE, QUICK_MIN_SIDE / max(width, height)))

    def around(self, stylizer: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """``stylizer`` on each batch of frames (N, 3, H, W) at :meth:`network_scale` of their size, enlarged back
        with the frames' fine detail added (the stroke scale of :class:`stst.infer.look.Look`)."""
        def run(frames: Any) -> Any:
            scale = self.network_scale(frames.shape[-1], frames.shape[-2])
            return stylizer(frames) if scale == 1 else Look(stroke_scale=1 / scale).apply(stylizer, frames)

        return run
