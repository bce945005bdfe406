"""Stylizing video clips frame by frame, with PyAV (FFmpeg inside its wheels, no ffmpeg binary needed).

The output keeps the source's frame count and timestamps (variable frame rate
included), its size (cropped to even sides for yuv420p, at most one pixel),
its rotation metadata and every audio stream, copied packet for packet where
the output container holds the codec and re-encoded to AAC/Opus otherwise.
Decoding runs in a thread ahead, encoding in a thread behind, and the network
sees frames in batches. A clip that stops decoding half-way is still written
(a playable file of the frames that decoded) and reported as a failure.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..base.errors import FileProblem, first_line
from ..base.fileio import atomic_path
from ..base.imageio import all_finite, array_pixels, check_pixels, to_uint8
from ..base.prefetch import prefetch
from .device_steady import DeviceBlend, DeviceDenoiser
from .device_yuv import yuv420p
from .encoders import choose_encoder
from .smoothing import DarkKeeper, dimmed
from .probe import SOUND_ALONE, av_module
from .settings import VideoSettings
from .temporal import FLOW_SIDE, QUICK_FLOW_SIDE, FlowBlend, FlowDenoiser, FlowGate

# Output containers by suffix, and the audio codecs each holds without re-encoding.
CONTAINERS = {".mp4": "mp4", ".mov": "mov", ".m4v": "mp4", ".mkv": "matroska", ".webm": "webm"}
AUDIO_COPY = {
    "mp4": {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"},
    "mov": {"aac", "mp3", "alac", "ac3", "eac3", "pcm_s16le", "pcm_s24le"},
    "matroska": None,  # holds anything
    "webm": {"opus", "vorbis"},
}
AUDIO_FALLBACK = {"webm": "libopus"}  # else aac


def even_size(width: int, height: int) -> tuple[int, int]:
    """The size yuv420p frames of ``width`` x ``height`` are encoded at: cropped to even sides, by at most one
    pixel."""
    return width - width % 2, height - height % 2


@dataclass
class ClipReport:
    """What happened to one clip: frames written, and why decoding stopped early, if it did."""

    frames: int
    error: str | None = None
    notes: tuple[str, ...] = ()


def _rotation(source: Path) -> int:
    """Degrees of the display matrix on the first frame (phones record sideways and flag it)."""
    av = av_module()
    try:
        with av.open(str(source)) as container:
            for frame in container.decode(video=0):
                return int(round(getattr(frame, "rotation", 0) or 0))
    except av.FFmpegError:
        pass
    return 0


def _frames(container, video, audio: list) -> Iterator[tuple[str, object]]:
    """Demuxed items in file order: ("frame", VideoFrame), ("packet", audio Packet), finally ("error", str)."""
    av = av_module()
    try:
        for packet in container.demux(video, *audio):
            if packet.stream.type == "video":
                for frame in packet.decode():
                    yield "frame", frame
            elif packet.dts is not None:
                yield "packet", packet
    except av.FFmpegError as exc:
        yield "error", first_line(exc)


def stylize_video(
    stylizer: Callable[[torch.Tensor], torch.Tensor],
    source: str | Path,
    target: str | Path,
    settings: VideoSettings = VideoSettings(),
    progress: bool = True,
    on_frames: Callable[[int, int | None], None] | None = None,
) -> ClipReport:
    """Stylize every frame of ``source`` into ``target`` (written atomically); returns what was done.

    Raises :class:`FileProblem` when nothing could be written (not a clip,
    unknown codec). ``progress`` shows a bar on stderr; ``on_frames(done,
    total)`` hears the same counts (total from the header, None when unknown).
    """
    av = av_module()
    source, target = Path(source), Path(target)
    fmt = CONTAINERS.get(target.suffix.lower())
    if fmt is None:
        raise FileProblem(target, f"cannot write video as {target.suffix or 'a file without suffix'}",
                          f"use one of {', '.join(sorted(CONTAINERS))}")
    if settings.codec and settings.codec not in av.codecs_available:
        raise FileProblem(target, f"the video codec '{settings.codec}' is not in this FFmpeg build")
    try:
        container = av.open(str(source))
    except av.FFmpegError as exc:
        raise FileProblem(source, f"not a readable video ({first_line(exc)})") from None
    with container:
        if not container.streams.video:
            raise FileProblem(source, SOUND_ALONE if container.streams.audio else "has no video stream")
        video = container.streams.video[0]
        video.thread_type = "AUTO"
        audio = list(container.streams.audio)
        width, height = video.codec_context.width, video.codec_context.height
        check_pixels(source, width, height, settings.max_pixels, "each frame of ")
        max_size = settings.max_size
        if max_size and max(width, height) > max_size:
            scale = max_size / max(width, height)
            width, height = max(2, round(width * scale)), max(2, round(height * scale))
        even = even_size(width, height)
        if min(even) < 2:
            raise FileProblem(source, f"frames of {width}x{height} are too small to encode")
        rate = video.average_rate or video.guessed_rate or Fraction(25)
        notes = []
        with atomic_path(target) as tmp, av.open(str(tmp), "w", format=fmt) as out:
            encoder = choose_encoder(fmt, settings, even)
            vout = out.add_stream(encoder.name, rate=rate)
            vout.width, vout.height = even
            vout.pix_fmt = "yuv420p"
            vout.time_base = vout.codec_context.time_base = video.time_base  # exact source timestamps (VFR)
            vout.options = dict(encoder.options)
            rotation = _rotation(source)
            if rotation:
                vout.set_display_rotation(rotation)
            audio_out = {}
            for stream in audio:
                allowed = AUDIO_COPY[fmt]
                kind = stream.codec_context.codec.canonical_name  # "mp3", whichever decoder (mp3float) reads it
                if allowed is None or kind in allowed:
                    audio_out[stream.index] = (out.add_stream_from_template(stream), None)
                else:
                    name = AUDIO_FALLBACK.get(fmt, "aac")
                    encoder = out.add_stream(name, rate=_audio_rate(name, stream.codec_context.sample_rate))
                    audio_out[stream.index] = (encoder, encoder)
                    notes.append(f"audio stream {stream.index} ({kind}) cannot go into "
                                 f"{target.suffix} as it is: re-encoded to {name}")
            report = _pipeline(stylizer, (container, video, audio), (out, vout, audio_out), (width, height),
                               settings, source, _Progress(progress, on_frames, source, video.frames))
            report.notes = tuple(notes)
            if report.frames == 0:
                raise FileProblem(source, f"no frame could be decoded ({report.error or 'empty clip'})")
    return report


def _audio_rate(encoder: str, rate: int | None) -> int:
    """The source's sample rate where ``encoder`` takes it, else its highest (Opus: 48 kHz only and lower)."""
    rates = av_module().codec.Codec(encoder, "w").audio_rates
    return rate if rate and (not rates or rate in rates) else max(rates or [48000])


def _presentation_order(items: Iterator[tuple[str, object]], depth: int = 16) -> Iterator[tuple[str, object]]:
    """``items`` of :func:`_frames`, with the frames' timestamps sorted within ``depth`` frames.

    A decoder hands frames out in display order, but a file with broken
    B-frame timestamps (packets stamped in decoding order) attaches them in
    decoding order: 1, 3, 4, 2, ... Each frame gets the smallest timestamp
    not yet given, so frames keep the source's display times. ``depth`` is
    H.264's longest reordering; frames wait that long, audio does not.
    """
    held: deque = deque()
    stamps: list[int] = []

    def release():
        frame = held.popleft()
        if frame.pts is not None:
            frame.pts = heapq.heappop(stamps)
        return "frame", frame

    for kind, item in items:
        if kind != "frame":
            if kind == "error":
                while held:
                    yield release()
            yield kind, item
            continue
        if item.pts is not None:
            heapq.heappush(stamps, item.pts)
        held.append(item)
        if len(held) > depth:
            yield release()
    while held:
        yield release()


class _Progress:
    """Frames done, for the bar on stderr and for a listener (the server's progress bar)."""

    def __init__(self, bar: bool, listener: Callable[[int, int | None], None] | None, source: Path,
                 total: int) -> None:
        self.bar = tqdm(total=total or None, unit="frame", desc=source.name, disable=not bar, dynamic_ncols=True)
        self.listener = listener
        self.done, self.total = 0, total or None

    def update(self, frames: int) -> None:
        self.done += frames
        self.bar.update(frames)
        if self.listener is not None:
            self.listener(self.done, self.total)

    def close(self, complete: bool) -> None:
        if complete:  # the header may count frames that are not coded (see _truncation)
            self.total = self.bar.total = self.done
            self.bar.refresh()
            if self.listener is not None:
                self.listener(self.done, self.total)
        self.bar.close()


class _Sink:
    """The encoding side of a clip, run in one writer thread: stylized frames at the source's presentation times,
    the audio (copied, or re-encoded from its own timestamps), and the encoders' last packets."""

    def __init__(self, encoding: tuple, video, blend: FlowBlend | None, planes: str = "rgb24") -> None:
        self.av = av_module()
        self.out, self.vout, self.audio_out = encoding
        self.time_base, self.blend, self.planes = video.time_base, blend, planes
        rate = video.average_rate or Fraction(25)
        self.step = max(1, round(1 / (video.time_base * rate))) if video.time_base else 1  # one frame, in pts
        self.frames, self.last_pts, self.end = 0, None, 0.0

    def video(self, frames: list, inputs: list, motions: list, outputs: list) -> None:
        """Encode ``outputs`` (0..1 tensors, or uint8 arrays from a GPU) of ``inputs`` (the decoded ``frames``, with
        the denoiser's flow where the blend rides on it); a missing or repeated pts takes the next free one."""
        for src, photo, motion, rgb in zip(frames, inputs, motions, outputs):
            frame = self.frame(photo, motion, rgb)
            pts = src.pts
            if pts is None or (self.last_pts is not None and pts <= self.last_pts):
                pts = self.last_pts + self.step if self.last_pts is not None else 0
            self.last_pts = pts
            self.end = max(self.end, float((src.pts or 0) * self.time_base))
            frame.pts, frame.time_base = pts, self.time_base
            for packet in self.vout.encode(frame):
                self.out.mux(packet)
            self.frames += 1

    def frame(self, photo, motion, rgb):
        """An output as the encoder takes it: yuv420p planes as a GPU made them (:mod:`stst.video.device_yuv`), or
        rgb24 at the encoder's even size, blended with the last one where the blend runs here (the CPU's path)."""
        if self.planes == "yuv420p":
            return self.av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[..., 0]), format="yuv420p")
        if self.blend is not None:
            rgb = self.blend(to_uint8(photo), rgb, motion)
        pixels = np.ascontiguousarray(to_uint8(rgb)[: self.vout.height, : self.vout.width])
        return self.av.VideoFrame.from_ndarray(pixels, format="rgb24")

    def audio(self, packet) -> None:
        stream, encoder = self.audio_out[packet.stream.index]
        if encoder is None:
            packet.stream = stream
            self.out.mux(packet)
            return
        for frame in packet.decode():  # its timestamp kept: the audio starts where it started beside the video
            for encoded in encoder.encode(frame):
                self.out.mux(encoded)

    def finish(self) -> None:
        for packet in self.vout.encode(None):
            self.out.mux(packet)
        for stream, encoder in self.audio_out.values():
            if encoder is not None:
                for packet in encoder.encode(None):
                    self.out.mux(packet)


def _flow_side(settings: VideoSettings) -> int:
    """The long side of the frames the denoiser's flow is computed on: smaller for the quick tiers."""
    return QUICK_FLOW_SIDE if settings.quick else FLOW_SIDE


class _Steps:
    """What both paths do alike: read a decoded frame's pixels at the clip's ``size`` (width, height)."""

    size: tuple[int, int]

    def read(self, frame) -> tuple:
        """The decoded frame and its pixels at the clip's size, uint8 (H, W, 3)."""
        return frame, frame.to_ndarray(width=self.size[0], height=self.size[1], format="rgb24")


class _HostSteps(_Steps):
    """A clip's frames on the CPU's path: denoised in the decoding thread, the network on float batches (at
    :meth:`VideoSettings.network_scale`), dark frames dimmed here, the blend in the writer thread."""

    depth = 0  # batches in flight: none, the network runs when it is handed one
    stages = 1  # threads that decode: reading and filtering in one, beside the network on the same cores
    planes = "rgb24"  # what the encoder is handed

    def __init__(self, stylizer, settings: VideoSettings, size: tuple[int, int]) -> None:
        weight = settings.blend_weight()
        self.denoiser = FlowDenoiser(settings.denoise, _flow_side(settings)) if settings.denoise else None
        self.ride = settings.blend_rides
        self.blend = FlowBlend(weight) if weight else None
        self.dark = DarkKeeper() if settings.dark else None
        self.network = settings.around(stylizer)
        self.size = size

    def filtered(self, read: tuple) -> tuple:
        """The frame, its (denoised) pixels and, where the blend rides on it, the denoiser's flow."""
        frame, rgb = read
        if self.denoiser is not None:
            rgb = self.denoiser(rgb)
        return frame, torch.from_numpy(array_pixels(rgb)), self.denoiser.motion if self.ride else None

    def start(self, batch: list) -> Callable[[], object]:
        frames = torch.stack([t for _, t, _ in batch])
        outputs = self.network(frames)
        if self.dark is not None:
            outputs = self.dark(frames, outputs)
        return lambda: outputs


class _DeviceSteps(_Steps):
    """A clip's frames on a GPU's path (a stylizer that ``takes_uint8``): the decoded bytes cross as they are, the
    denoiser's flow is computed small in a thread of its own after the reading one (:class:`FlowGate`) and the full
    frames are carried, dimmed and blended on the device (:mod:`stst.video.device_steady`), one batch in flight
    while the last one's outputs come back as the encoder's yuv420p planes (:mod:`stst.video.device_yuv`)."""

    depth = 1
    blend = None  # blended on the device
    stages = 2  # threads that decode: reading, and the flow's gate, each beside the other
    planes = "yuv420p"  # made on the device (stst.video.device_yuv)

    def __init__(self, stylizer, settings: VideoSettings, size: tuple[int, int]) -> None:
        weight = settings.blend_weight()
        self.gate = FlowGate(settings.denoise, _flow_side(settings)) if settings.denoise else None
        self.denoiser = DeviceDenoiser() if self.gate is not None else None
        self.blender = DeviceBlend(weight) if weight else None
        self.dark = DarkKeeper() if settings.dark else None
        self.stylizer, self.size = stylizer, size
        self.even = even_size(*size)  # the encoder's (width, height)

    @staticmethod
    def serves(stylizer, settings: VideoSettings, size: tuple[int, int]) -> bool:
        """Whether this path runs the clip: a GPU's stylizer, the network on whole frames, and a blend (if any)
        along the denoiser's flow."""
        rides = settings.blend_weight() == 0 or settings.blend_rides
        return getattr(stylizer, "takes_uint8", False) and settings.network_scale(*size) == 1 and rides

    def filtered(self, read: tuple) -> tuple:
        """The frame, its bytes with the denoiser's :class:`Carry`, and the denoiser's flow."""
        frame, rgb = read
        carry = self.gate(rgb) if self.gate is not None else None
        return frame, (rgb, carry), self.gate.motion if self.gate is not None else None

    def start(self, batch: list) -> Callable[[], object]:
        carries = [carry for _, (_, carry), _ in batch]
        motions = [motion for _, _, motion in batch]
        gains: list[float] = []

        def prepare(x: torch.Tensor) -> torch.Tensor:
            x = self.denoiser(x, carries) if self.denoiser is not None else x
            if self.dark is not None:
                gains[:] = self.dark.gains(x)  # the frames alone decide: learnt before the network runs
            return x

        def finish(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            y = dimmed(y, gains) if gains else y
            y = self.blender(y, motions) if self.blender is not None else y
            return yuv420p(y[..., : self.even[1], : self.even[0]])

        return self.stylizer.submit([rgb for _, (rgb, _), _ in batch], prepare, finish).result


def _decoded(steps: _Steps, items: Iterator[tuple[str, object]], depth: int) -> Iterator:
    """``items`` with each frame read and filtered by ``steps`` ahead of the consumer, in one thread or (a GPU's
    path, where one thread would hold the network back) reading and the flow's gate each in a thread of its own.
    Both threads are stopped and joined before this ends, an error included: the container they read is closed
    then."""
    read = ((kind, steps.read(item) if kind == "frame" else item) for kind, item in items)
    reading = prefetch(read, depth) if steps.stages == 2 else read
    try:
        yield from prefetch(((kind, steps.filtered(item) if kind == "frame" else item) for kind, item in reading),
                            depth)
    finally:
        reading.close()


def _pipeline(stylizer, decoding: tuple, encoding: tuple, size: tuple[int, int], settings: VideoSettings,
              source: Path, bar: _Progress) -> ClipReport:
    """Decode ahead in a thread, stylize in batches here, encode and mux behind in one writer thread.

    ``decoding`` is (container, video stream, audio streams), ``encoding`` (container,
    video stream, audio streams by source index). Frames are decoded at
    ``size``, denoised in the decoding thread (the filter runs in order, beside
    the network; on a GPU its flow there and the rest on the GPU: :class:`_DeviceSteps`), and cropped to the
    encoder's even size when written.
    """
    container, video, audio = decoding
    steps = (_DeviceSteps if _DeviceSteps.serves(stylizer, settings, size) else _HostSteps)(stylizer, settings, size)
    sink = _Sink(encoding, video, steps.blend, steps.planes)
    batch_size = settings.batch_size
    error = None
    batch: list = []
    pending = []
    in_flight: deque = deque()
    with ThreadPoolExecutor(max_workers=1) as writer:
        def finish_batch() -> None:
            done, take = in_flight.popleft()
            outputs = list(take())
            if not all(rgb is not None and all_finite(rgb) for rgb in outputs):
                raise FileProblem(source, "the model produced NaN or infinite values (a broken model?)")
            pending.append(writer.submit(sink.video, *map(list, zip(*done)), outputs))
            bar.update(len(done))
            while len(pending) > 2:
                pending.pop(0).result()

        def flush() -> None:
            if batch:
                in_flight.append((list(batch), steps.start(batch)))
                batch.clear()
            while len(in_flight) > steps.depth:
                finish_batch()

        for kind, item in _decoded(steps, _presentation_order(_frames(container, video, audio)), 2 * batch_size):
            if kind == "frame":
                batch.append(item)
                if len(batch) >= batch_size:
                    flush()
            elif kind == "packet":
                pending.append(writer.submit(sink.audio, item))
            else:
                error = item
        flush()
        while in_flight:
            finish_batch()
        for future in pending:
            future.result()
        writer.submit(sink.finish).result()
    failure = error or _truncation(container, video, sink.frames, sink.end)
    bar.close(complete=not failure)
    return ClipReport(sink.frames, failure)


def _truncation(container, video, frames: int, last: float) -> str | None:
    """Why the clip seems cut short (fewer seconds, or without a duration fewer frames, than its header says), or None.

    FFmpeg reaches the end of a truncated file without an error, so the
    header's duration and frame count are the only witnesses. The duration
    is asked first: a header's frame count may include frames that are not
    coded (an AVI's empty chunks repeat the previous frame), which FFmpeg
    rightly does not return.
    """
    duration = container.duration / 1e6 if container.duration else None
    if not duration:
        if video.frames and frames < video.frames:
            return f"the file ends after {frames} of its {video.frames} frames (truncated?)"
        return None
    interval = 1 / float(video.average_rate) if video.average_rate else 0.1
    if frames and last + 3 * interval < duration - float((video.start_time or 0) * video.time_base):
        return f"the file ends at {last + interval:.2f} s of its {duration:.2f} s (truncated?)"
    return None
