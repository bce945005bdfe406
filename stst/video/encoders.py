"""The video encoder a clip is written with, and its options: x264 (or the container's codec) on the CPU's cores, or
NVENC where the network runs on an NVIDIA GPU that has the encoder.

PyAV's wheels carry FFmpeg's NVENC encoders (``h264_nvenc``, ``hevc_nvenc``); they open only where the GPU has NVENC
and its driver's library is there. A data-centre H100 or H200 has no NVENC, most workstation and gaming GPUs do. So
on a GPU run the NVENC twin of the default codec is opened once at the clip's size and taken where it opens; where it
does not (no NVENC, no driver, a size it refuses) the clip goes to the CPU's encoder as on any machine, silently: that
is the common case, not a fault. A codec named with ``--codec`` is used as named.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cache

from .probe import av_module
from .settings import VideoSettings

log = logging.getLogger(__name__)

# The codec each container gets unless --codec names one.
DEFAULT_CODECS = {"webm": "libvpx-vp9"}  # else libx264
DEFAULT_CODEC = "libx264"
# The constant-quality setting each software encoder takes (--crf).
CRF_CODECS = ("libx264", "libx265", "libvpx-vp9")
# Encoder options that keep up with a fast network (VideoSettings.quick): at 640x480 x264's veryfast preset takes
# 4 ms a frame where medium takes 10, for about the same file on our clips.
QUICK_ENCODING = {"libx264": {"preset": "veryfast"}, "libx265": {"preset": "veryfast"},
                  "libvpx-vp9": {"deadline": "realtime", "cpu-used": "8"}}
# The NVENC twin of each software codec, taken on a GPU run where it opens.
NVENC = {"libx264": "h264_nvenc", "libx265": "hevc_nvenc"}
# NVENC's presets run p1 (fastest) to p7 (best); p4 is its middle, p1 keeps up with a fast network.
NVENC_PRESET, NVENC_QUICK_PRESET = "p4", "p1"


@dataclass(frozen=True)
class Encoder:
    """A video encoder by FFmpeg's name, with the options it is opened with."""

    name: str
    options: dict[str, str] = field(default_factory=dict)


def software_encoder(codec: str, settings: VideoSettings) -> Encoder:
    """``codec`` with ``--crf`` where it takes one, and its fast settings for the quick tiers."""
    options = {"crf": str(settings.crf)} if codec in CRF_CODECS else {}
    if codec == "libvpx-vp9":
        options["b"] = "0"  # constant quality, no bitrate target
    if settings.quick:
        options.update(QUICK_ENCODING.get(codec, {}))
    return Encoder(codec, options)


def nvenc_encoder(codec: str, settings: VideoSettings) -> Encoder:
    """The NVENC twin of ``codec`` at constant quality ``--crf`` (NVENC's ``cq``, on its own scale: not x264's file
    for the same number)."""
    preset = NVENC_QUICK_PRESET if settings.quick else NVENC_PRESET
    return Encoder(NVENC[codec], {"rc": "vbr", "cq": str(settings.crf), "b": "0", "preset": preset})


@cache
def opens(name: str, options: tuple[tuple[str, str], ...], width: int, height: int) -> bool:
    """Whether FFmpeg opens encoder ``name`` with ``options`` for yuv420p frames of ``width`` x ``height`` on this
    machine (a hardware encoder needs its chip and driver): tried once per process and size."""
    av = av_module()
    try:
        context = av.CodecContext.create(name, "w")
        context.width, context.height, context.pix_fmt = width, height, "yuv420p"
        context.time_base, context.framerate = Fraction(1, 25), Fraction(25)
        context.options = dict(options)
        context.open()
    except (av.FFmpegError, OSError, ValueError) as exc:
        log.info("%s does not open for %dx%d frames here (%s): the clip is encoded on the CPU", name, width, height,
                 exc)
        return False
    return True


def choose_encoder(fmt: str, settings: VideoSettings, size: tuple[int, int]) -> Encoder:
    """The encoder for a clip in container ``fmt`` of frames ``size`` (even sides): ``--codec`` as named, else the
    container's codec, or its NVENC twin where the network runs on CUDA and NVENC opens at that size."""
    codec = settings.codec or DEFAULT_CODECS.get(fmt, DEFAULT_CODEC)
    if settings.codec is None and settings.device == "cuda" and codec in NVENC:
        hardware = nvenc_encoder(codec, settings)
        if opens(hardware.name, tuple(sorted(hardware.options.items())), *size):
            return hardware
    return software_encoder(codec, settings)
