"""How clips are stylized and encoded, as one value; torch-free, so that a run is planned before torch loads."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..base.limits import DEFAULT_MAX_PIXELS
from ..model.bundled import split_tier

DEFAULT_CRF = 18
DEFAULT_DENOISE = 0.8
# The tiers whose clips take the quick path. The light tier's flicker on cup.mp4 (640x480, 90 frames; warping error
# against frame by frame) was 0.72x with the denoiser's flow at 320 px and 0.81x at 640, for 19 ms a frame instead
# of 47; the full tier keeps 640: its denoised frames keep more of their detail (Laplacian 0.67x the source's
# against 0.61x).
QUICK_TIERS = ("light", "realtime")


@dataclass(frozen=True)
class VideoSettings:
    """How clips are stylized and encoded; one value travels from the CLI or the server to :func:`stylize_video`.

    ``max_size`` shrinks frames so the long side is at most that; clips whose
    frames are larger than ``max_pixels`` are refused from the stream's
    declared size, before decoding. ``temporal``
    > 0 blends each frame with the previous output along the optical flow
    (:class:`stst.video.temporal.FlowBlend`, less flicker, softer strokes).
    ``denoise`` is the strength of the temporal noise filter on the source
    frames along the optical flow (:class:`stst.video.temporal.FlowDenoiser`,
    less flicker; 0 is off). ``dark`` keeps dark frames dark
    (:class:`stst.video.smoothing.DarkKeeper`; a fade from black then stays
    continuous instead of starting from a full painting). ``quick`` keeps
    the rest of the path up with a fast network (the light and realtime
    tiers): the denoiser's flow at ``QUICK_FLOW_SIDE`` pixels and the
    encoder's fast settings (``QUICK_ENCODING``).
    """

    max_size: int | None = None
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    batch_size: int = 4
    crf: int = DEFAULT_CRF
    codec: str | None = None
    temporal: float = 0.0
    denoise: float = DEFAULT_DENOISE
    dark: bool = True
    quick: bool = False

    def for_model(self, model_name: str) -> VideoSettings:
        """These settings for the named model: a light or realtime tier gets the clip path that keeps up with it."""
        return replace(self, quick=split_tier(model_name)[1] in QUICK_TIERS)
