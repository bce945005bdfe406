"""Which files are video clips, and what their results are called; torch-free, for planning a run."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

VIDEO_SUFFIXES = {".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi"}
VIDEO_HINT = "pip install av (or reinstall stst)"


def av_module():
    """PyAV, imported on first use (it takes a moment), or one line saying how to install it."""
    try:
        import av
    except ImportError as exc:  # pragma: no cover - av is a dependency; a broken install still gets one line
        from ..base.errors import StstError

        raise StstError(f"video needs the package 'av': {VIDEO_HINT}") from exc
    return av


def is_video(path: Path) -> bool:
    """Whether ``path`` is a video clip, by probing: Pillow images first, then FFmpeg's demuxers.

    A file FFmpeg cannot open counts as a clip only by its suffix, so that a
    broken ``.mp4`` fails as a clip and a text file as an image.
    """
    try:
        with Image.open(path):
            return False
    except Exception:  # not an image Pillow knows: maybe a clip
        pass
    try:
        with av_module().open(str(path)) as container:
            stream = container.streams.video[0] if container.streams.video else None
            return stream is not None and "image" not in container.format.name and "_pipe" not in container.format.name
    except Exception:  # FFmpeg's errors, or no such format
        return path.suffix.lower() in VIDEO_SUFFIXES


def output_suffix(source: Path) -> str:
    """``.webm`` sources stay webm; everything else becomes ``.mp4`` (H.264)."""
    return ".webm" if source.suffix.lower() == ".webm" else ".mp4"
