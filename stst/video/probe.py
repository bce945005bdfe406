"""Which files are video clips, and what their results are called; torch-free, for planning a run."""

from __future__ import annotations

from pathlib import Path

from ..base.filetypes import sniff
from ..base.imageio import open_pillow

VIDEO_SUFFIXES = {".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi"}
VIDEO_HINT = "pip install av (or reinstall stst)"
SOUND_ALONE = "has no video stream (sound alone)"  # what a clip of sound alone is told, by the command and the server


def av_module():
    """PyAV, imported on first use (it takes a moment), or one line saying how to install it."""
    try:
        import av
    except ImportError as exc:  # pragma: no cover - av is a dependency; a broken install still gets one line
        from ..base.errors import StstError

        raise StstError(f"video needs the package 'av': {VIDEO_HINT}") from exc
    return av


def clip_kind(path: Path) -> str | None:
    """What kind of clip ``path`` is, by probing: Pillow images first, then FFmpeg's demuxers. ``"video"`` for a
    clip with pictures, ``"sound"`` for a container of sound alone (it fails as a clip with no video stream, not as
    an image Pillow cannot read), None for the rest.

    A file whose first bytes name a picture (:func:`stst.base.filetypes.sniff`: a damaged HEIF, which FFmpeg's
    MP4 demuxer would open) is an image. A file FFmpeg cannot open counts as a clip only by its suffix, so that a
    broken ``.mp4`` fails as a clip and a text file as an image.
    """
    try:
        with open_pillow(path):
            return None
    except Exception:  # not an image Pillow knows: maybe a clip
        pass
    kind = sniff(path)
    if kind is not None and kind.endswith("image"):  # a damaged HEIF, which FFmpeg's MP4 demuxer takes for a clip
        return None
    try:
        with av_module().open(str(path)) as container:
            if container.streams.video:
                fmt = container.format.name
                return "video" if "image" not in fmt and "_pipe" not in fmt else None
            return "sound" if container.streams.audio else None
    except Exception:  # FFmpeg's errors, or no such format
        return "video" if path.suffix.lower() in VIDEO_SUFFIXES else None


def is_video(path: Path) -> bool:
    """Whether ``path`` goes the way of clips (:func:`clip_kind`): one with pictures, or sound alone."""
    return clip_kind(path) is not None


def output_suffix(source: Path) -> str:
    """``.webm`` sources stay webm; everything else becomes ``.mp4`` (H.264)."""
    return ".webm" if source.suffix.lower() == ".webm" else ".mp4"
