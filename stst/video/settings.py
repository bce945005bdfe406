"""How clips are stylized and encoded, as one value; torch-free, so that a run is planned before torch loads."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..base.limits import DEFAULT_MAX_PIXELS
from ..model.bundled import split_tier

DEFAULT_CRF = 18
DEFAULT_DENOISE = 0.8


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
    continuous instead of starting from a full painting). ``realtime`` keeps
    the rest of the path up with a network at camera rate (the realtime tier):
    the denoiser's flow at ``REALTIME_FLOW_SIDE`` pixels and the encoder's
    fast settings (``REALTIME_ENCODING``).
    """

    max_size: int | None = None
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    batch_size: int = 4
    crf: int = DEFAULT_CRF
    codec: str | None = None
    temporal: float = 0.0
    denoise: float = DEFAULT_DENOISE
    dark: bool = True
    realtime: bool = False

    def for_model(self, model_name: str) -> VideoSettings:
        """These settings for the named model: a realtime tier gets the clip path that keeps up with it."""
        return replace(self, realtime=split_tier(model_name)[1] == "realtime")
