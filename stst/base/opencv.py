"""OpenCV (``opencv-python-headless``, a core dependency), imported on first use: the video path's optical flow,
and resizing on CPUs, where it runs several times faster than torch's interpolation."""

from __future__ import annotations


def opencv():
    """The cv2 module (the message covers a broken install)."""
    try:
        import cv2
    except ImportError as exc:
        from .errors import StstError

        raise StstError("stst needs OpenCV, which did not import: pip install opencv-python-headless") from exc
    return cv2
