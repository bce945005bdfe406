"""Clips with the hard cases of video made from still photos: opening on black, fades, a whip pan, a fast zoom,
hard cuts and a dark, noisy scene, for measuring flicker where handheld footage is easy (benchmarks and tests).

Each shot is a camera path over one photo, given as data (:class:`Shot`):
where the view starts and ends (centre and zoom) and how bright it is. Every
frame gets fresh Gaussian noise, as a sensor and a codec would add.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Shot:
    """``frames`` frames of photo number ``photo``; the view moves from ``start`` to ``end``, each (x, y, zoom)
    with the centre as a fraction of the photo, and the light goes from ``light[0]`` to ``light[1]`` (0 black)."""

    frames: int
    photo: int
    start: tuple[float, float, float]
    end: tuple[float, float, float]
    light: tuple[float, float] = (1.0, 1.0)


# About 3.6 s at 24 frames/s: every shot starts with a hard cut, but for the fades.
HARD_SHOTS = (
    Shot(6, 0, (0.5, 0.5, 1.2), (0.5, 0.5, 1.2), (0.0, 0.0)),  # opens on black
    Shot(12, 0, (0.4, 0.5, 1.2), (0.44, 0.5, 1.2), (0.0, 1.0)),  # fade from black, slow pan
    Shot(16, 0, (0.44, 0.5, 1.2), (0.62, 0.48, 1.2)),  # whip pan
    Shot(16, 1, (0.5, 0.5, 1.0), (0.52, 0.48, 1.8)),  # cut, fast zoom in
    Shot(16, 2, (0.42, 0.5, 1.3), (0.5, 0.5, 1.3), (0.08, 0.08)),  # cut to a dark scene
    Shot(12, 3, (0.5, 0.5, 1.1), (0.5, 0.5, 1.1)),  # cut, still shot
    Shot(8, 3, (0.5, 0.5, 1.1), (0.5, 0.5, 1.1), (1.0, 0.0)),  # fade to black
)


def view(photo: Image.Image, x: float, y: float, zoom: float, size: tuple[int, int]) -> np.ndarray:
    """The part of ``photo`` around (x, y) (fractions) at ``zoom`` (1: the largest crop of ``size``'s shape), as RGB
    uint8 of ``size``; the view is kept inside the photo."""
    w, h = size
    fit = min(photo.width / w, photo.height / h) / zoom
    cw, ch = w * fit, h * fit
    left = min(max(x * photo.width - cw / 2, 0), photo.width - cw)
    top = min(max(y * photo.height - ch / 2, 0), photo.height - ch)
    box = (left, top, left + cw, top + ch)
    return np.asarray(photo.resize(size, Image.Resampling.BILINEAR, box=box), dtype=np.float32)


def shot_frames(photos: list[Image.Image], shots: tuple[Shot, ...], size: tuple[int, int], noise: float,
                seed: int = 0):
    """The frames of ``shots`` over ``photos`` in order, RGB uint8 (H, W, 3) of ``size``."""
    rng = np.random.default_rng(seed)
    for shot in shots:
        photo = photos[shot.photo % len(photos)]
        for i in range(shot.frames):
            t = i / max(1, shot.frames - 1)
            x, y, zoom = (a + (b - a) * t for a, b in zip(shot.start, shot.end))
            light = shot.light[0] + (shot.light[1] - shot.light[0]) * t
            frame = view(photo, x, y, zoom, size) * light + rng.normal(0, noise, (size[1], size[0], 3))
            yield np.clip(frame, 0, 255).round().astype(np.uint8)


def make_shots_clip(photos: list[str | Path], target: str | Path, size: tuple[int, int] = (320, 240),
                    fps: int = 24, shots: tuple[Shot, ...] = HARD_SHOTS, noise: float = 2.0) -> Path:
    """Write ``shots`` over ``photos`` as a lossless H.264 clip at ``target``; returns it.

    Lossless, so that the same frames come back on every run: x264's lossy
    modes gave frames up to 25 grey levels apart between two runs here.
    """
    import av

    images = [Image.open(p).convert("RGB") for p in photos]
    target = Path(target)
    with av.open(str(target), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.time_base = Fraction(1, fps)
        stream.options = {"qp": "0"}
        for i, rgb in enumerate(shot_frames(images, shots, size, noise)):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return target
