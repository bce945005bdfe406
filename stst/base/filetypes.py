"""Naming what a file is from its first bytes, so that errors can say "it is a PNG image"."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

# Leading bytes of common formats that people pass by mistake, and their names.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"BM", "a BMP image"),
    (b"%PDF", "a PDF document"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"\x1aE\xdf\xa3", "a Matroska/WebM video"),
    (b"OggS", "an Ogg file"),
    (b"ID3", "an MP3 file"),
    (b"RIFF", "a RIFF file (WebP, WAV or AVI)"),
    (b"\x89HDF", "an HDF5 file"),
)


# Major brands of ISO media files that are not clips: pictures (HEIF: an iPhone's photos; AVIF), and sound.
_ISO_BRANDS = {**dict.fromkeys((b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1",
                                b"msf1"), "a HEIF image"), b"avif": "an AVIF image", b"avis": "an AVIF image",
               b"M4A ": "an MPEG-4 audio file"}


def sniff(source: str | Path | BinaryIO) -> str | None:
    """A short description of the format of a file (or a seekable stream of one) when it is cheap to tell, else None.

    Recognises empty files, common image/archive/document formats and text.
    ZIP and pickle are not named: PyTorch model files are one or the other.
    """
    try:
        if hasattr(source, "read"):
            source.seek(0)
            head = source.read(512)
        else:
            with open(source, "rb") as f:
                head = f.read(512)
    except OSError:
        return None
    if not head:
        return "an empty file"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "a WebP image"
    if head[4:8] == b"ftyp":  # ISO media: its major brand tells a photo from a clip
        return _ISO_BRANDS.get(head[8:12], "an MP4/QuickTime video")
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if b"\x00" not in head:
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start < len(head) - 3:  # not just a character cut at the 512-byte boundary
                return None
        return "a text file"
    return None
