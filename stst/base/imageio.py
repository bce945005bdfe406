"""Reading and writing photos: orientation, colour modes, bit depth, alpha and formats.

Pixels are numpy arrays here, so that reading and writing photos never imports
torch (1.6-3 s of every run); :attr:`Photo.rgb` hands them to a network as a
tensor that shares their memory.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import FileProblem, first_line
from .fileio import atomic_path
from .filetypes import sniff
from .limits import DEFAULT_MAX_PIXELS

if TYPE_CHECKING:
    import torch
    from PIL import ImageCms

# Formats stst writes, by the name Pillow gives them, with their usual extension.
WRITE_FORMATS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "TIFF": ".tif", "BMP": ".bmp"}
ALPHA_FORMATS = {"PNG", "WEBP", "TIFF"}
# zlib's fastest level: stylized 768x512 photos came out 2% bigger than at Pillow's default (6), and were
# written in 2.0 s against 2.5 s for 24 (Intel Xeon); on the photos themselves 1.5 s against 5.2 s.
PNG_OPTIONS = {"compress_level": 1}
STRIP_PIXELS = 1 << 20  # to_uint8 converts this many pixels at a time
FORMAT_ALIASES = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "tif": "TIFF", "tiff": "TIFF", "bmp": "BMP"}
# Formats stst reads but does not write, by extension. They hold photos (HEIF: an iPhone's), so their results are
# JPEGs, where other sources that stst does not write become PNG: a 12 MP PNG is 20 MB, and an AVIF took 3.8 s to
# encode against JPEG's 0.09 (Pillow, one EPYC core).
PHOTO_SUFFIXES = {"heic": "HEIF", "heif": "HEIF", "avif": "AVIF"}
# The extensions of the images stst reads from folders (data sets, paintings' uploads): the formats it writes, and
# the photo formats above.
IMAGE_SUFFIXES = {f".{suffix}" for suffix in (*FORMAT_ALIASES, *PHOTO_SUFFIXES)}
_SIXTEEN_BIT_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N"}

# stst checks the pixel count itself, from the header and before decoding (open_image's
# max_pixels, the --max-pixels option), so Pillow's own check is off.
Image.MAX_IMAGE_PIXELS = None


class TooManyPixels(FileProblem):
    """An image whose header declares more pixels than the limit (refused before decoding)."""


@dataclass
class Photo:
    """A decoded image: ``pixels`` is float32 ``(3, H, W)`` in 0..1, or uint8 ``(H, W, 3)`` as decoded where it was
    read so (:func:`read_photo`'s ``uint8``: for a GPU, which scales it itself); ``alpha`` ``(H, W)`` uint8 or None."""

    pixels: np.ndarray
    alpha: np.ndarray | None
    format: str | None  # Pillow's format name of the source file
    frames: int = 1  # animated GIF/WebP/PNG and multipage TIFF: only the first frame is read

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return tuple(self.pixels.shape[:2] if self.pixels.dtype == np.uint8 else self.pixels.shape[-2:])

    @property
    def rgb(self) -> torch.Tensor:
        """The pixels as a torch tensor sharing their memory, for the networks."""
        import torch

        return torch.from_numpy(self.pixels)

    def release(self) -> None:
        """Let the pixels go once the network has run (``alpha`` stays, for the output): the photo is still
        referenced while its output is written, and a huge photo's float copy is as big as that output."""
        self.pixels = np.empty((0, 0, 3), np.uint8)


@dataclass(frozen=True)
class CodedPhoto:
    """A JPEG to be decoded where the network runs (nvJPEG on a GPU): the file's bytes, its upright (height, width)
    and its EXIF orientation (1-8), read from the header (:func:`coded_jpeg`). Batched beside :class:`Photo`."""

    data: bytes
    size: tuple[int, int]
    orientation: int = 1
    format: str = "JPEG"
    alpha: None = None
    frames: int = 1

    def decoded(self, name: str | Path) -> Photo:
        """The photo as the CPU decodes it (Pillow), uint8 ``(H, W, 3)``: where the device's decoder fails. Errors
        name ``name``."""
        return read_photo(io.BytesIO(self.data), max_pixels=None, name=name, uint8=True)


class DecodeFailed(RuntimeError):
    """:class:`CodedPhoto` files the device does not decode: its decoder refused them (no nvJPEG, a file it does not
    take; ``refused``), or they take the CPU's path (tiles, a graph engine, too little GPU memory). Decode them on the
    CPU (:meth:`CodedPhoto.decoded`)."""

    def __init__(self, message: str, refused: bool = True) -> None:
        super().__init__(message)
        self.refused = refused


# EXIF orientations that turn a photo by a quarter: its upright size swaps height and width.
_QUARTER_TURNS = {5, 6, 7, 8}


def coded_jpeg(path: str | Path, max_size: int | None = None,
               max_pixels: int | None = DEFAULT_MAX_PIXELS) -> CodedPhoto | None:
    """``path`` as a :class:`CodedPhoto`, from its header, where a device's decoder gives what :func:`read_photo`
    gives: a complete colour (YCbCr) JPEG in sRGB that is not to be shrunk. None for anything else (other formats,
    greyscale or CMYK, another colour profile (:func:`as_srgb`), a file cut short, one to shrink or over
    ``max_pixels``, one Pillow cannot open): those are read with :func:`read_photo`, which also words the errors."""
    try:
        with Image.open(path) as img:
            if img.format != "JPEG" or img.mode != "RGB" or _foreign_profile(img) is not None:
                return None
            w, h = img.size
            orientation = img.getexif().get(0x0112, 1)
        data = Path(path).read_bytes()
    except Exception:  # Pillow's parsers raise many types; read_photo says what is wrong
        return None
    too_big = (max_size and max(w, h) > max_size) or (max_pixels and w * h > max_pixels)
    if too_big or not data.rstrip(b"\0").endswith(b"\xff\xd9") or orientation not in range(1, 9):
        return None
    return CodedPhoto(data, (w, h) if orientation in _QUARTER_TURNS else (h, w), orientation)


def rgb_pixels(img: Image.Image, uint8: bool = False) -> np.ndarray:
    """Any Pillow mode as (3, H, W) float32 in 0..1, keeping 16-bit precision; with ``uint8``, 8-bit modes as
    decoded, uint8 (H, W, 3) (a GPU scales them itself)."""
    if img.mode in _SIXTEEN_BIT_MODES:
        gray = np.asarray(img, dtype=np.float32) / 65535.0
        return np.repeat(np.clip(gray, 0.0, 1.0, out=gray)[None], 3, axis=0)
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img) if uint8 else array_pixels(np.asarray(img))


def array_pixels(rgb: np.ndarray) -> np.ndarray:
    """An (H, W, 3) uint8 array as (3, H, W) float32 in 0..1 (one float copy, converted in place)."""
    pixels = rgb.transpose(2, 0, 1).astype(np.float32)
    return np.divide(pixels, 255.0, out=pixels)


def _alpha(img: Image.Image) -> np.ndarray | None:
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        return np.asarray(img.convert("RGBA").getchannel("A"))
    return None


def check_pixels(name: str | Path, width: int, height: int, max_pixels: int | None, what: str = "") -> None:
    """Refuse a picture of more than ``max_pixels`` from its declared size, before anything is decoded."""
    if max_pixels and width * height > max_pixels:
        raise TooManyPixels(name, f"{what}{width}x{height} is {width * height / 1e6:.0f} megapixels, more than the "
                            f"limit of {max_pixels / 1e6:g}", "raise it with --max-pixels if you have the memory")


def open_image(source: str | Path | BinaryIO, max_pixels: int | None = DEFAULT_MAX_PIXELS,
               name: str | Path | None = None) -> tuple[Image.Image, str | None, int]:
    """Open and fully decode an image, upright per its EXIF orientation; returns it, its format and frame count.

    ``source`` is a file or a seekable stream (an upload, stdin); errors name it
    as ``name``. Images above ``max_pixels`` are refused from their header,
    before decoding. Any failure is a one-line :class:`FileProblem`.
    """
    path = source if name is None else name
    w = h = 0
    try:
        with open_pillow(source) as img:
            w, h = img.size
            check_pixels(path, w, h, max_pixels)
            frames = getattr(img, "n_frames", 1)
            img.load()
            return as_srgb(ImageOps.exif_transpose(img)), img.format, frames
    except FileProblem:
        raise
    except MemoryError:
        raise FileProblem(path, f"not enough memory to decode this {w}x{h} image") from None
    except Exception as exc:  # Pillow's decoders raise many types (OSError, ValueError, struct.error, ...)
        kind = sniff(source)
        detail = "no image format that Pillow knows" if isinstance(exc, UnidentifiedImageError) else first_line(exc)
        if kind and kind.endswith("image") and isinstance(exc, UnidentifiedImageError):
            detail = f"{kind}, damaged or of a kind that cannot be decoded"
        what = f"it is {kind}" if kind and not kind.endswith("image") else detail
        raise FileProblem(path, f"not a readable image ({what})") from None


@functools.cache
def _srgb() -> ImageCms.ImageCmsProfile:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _foreign_profile(img: Image.Image) -> ImageCms.ImageCmsProfile | None:
    """The ICC profile that ``img``'s colours are to be converted from to be sRGB; None where they are taken as
    they are: no profile, an sRGB one, one that cannot be read (as before), a mode other than RGB(A) or CMYK."""
    icc = img.info.get("icc_profile")
    if not icc or img.mode not in ("RGB", "RGBA", "CMYK"):
        return None
    try:
        from PIL import ImageCms  # LittleCMS, in every Pillow wheel; imported where a profile is met
    except ImportError:  # pragma: no cover - a Pillow built without it takes the colours as stored
        return None
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        return None if "srgb" in ImageCms.getProfileDescription(profile).lower() else profile
    except (ImageCms.PyCMSError, OSError, ValueError):
        return None


def as_srgb(img: Image.Image) -> Image.Image:
    """``img`` in sRGB, the colours the networks were trained on and that viewers assume of an untagged output: a
    picture with another ICC profile (an iPhone's Display P3, a scan's Adobe RGB, a print's CMYK) is converted
    through it (0.18 s for 12 MP); others are left as they are, as before."""
    profile = _foreign_profile(img)
    if profile is None:
        return img
    from PIL import ImageCms

    try:
        converted = ImageCms.profileToProfile(img.convert("RGB") if img.mode == "RGBA" else img, profile, _srgb(),
                                              outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError):
        return img
    if img.mode == "RGBA":
        converted.putalpha(img.getchannel("A"))
    return converted


@functools.cache
def _heif_registered() -> bool:
    try:
        from pi_heif import register_heif_opener
    except ImportError:  # pragma: no cover - pi-heif is a dependency; without it HEIF files are unknown images
        return False
    register_heif_opener()
    return True


def open_pillow(source: str | Path | BinaryIO) -> Image.Image:
    """``Image.open``, HEIF included: pi-heif is registered with Pillow at the first file that Pillow does not
    know, so that runs without one do not import it (60 ms). AVIF is Pillow's own (11.3 and later)."""
    start = source.tell() if hasattr(source, "tell") else 0
    try:
        return Image.open(source)
    except UnidentifiedImageError:
        if not _heif_registered():
            raise
    if hasattr(source, "seek"):
        source.seek(start)
    return Image.open(source)


def shrunk_size(width: int, height: int, long_side: int) -> tuple[int, int]:
    """``(width, height)`` scaled so the longest side is at most ``long_side`` (never enlarged, at least 1 pixel)."""
    scale = min(1.0, long_side / max(width, height))
    return (max(1, round(width * scale)), max(1, round(height * scale))) if scale < 1 else (width, height)


def read_photo(source: str | Path | BinaryIO, max_size: int | None = None,
               max_pixels: int | None = DEFAULT_MAX_PIXELS, name: str | Path | None = None,
               uint8: bool = False) -> Photo:
    """Load a file (or a seekable stream that errors call ``name``); ``max_size`` shrinks it so the longest
    side is at most that many pixels. ``uint8``: keep 8-bit pixels as decoded, uint8 ``(H, W, 3)`` (16-bit ones
    still come as float32, to keep their precision)."""
    img, fmt, frames = open_image(source, max_pixels, name)
    path = source if name is None else name
    try:
        if max_size and max(img.size) > max_size:
            new = shrunk_size(img.width, img.height, max_size)
            if img.mode in _SIXTEEN_BIT_MODES:
                img = img.convert("F")  # Pillow resamples 32-bit float, not 16-bit integer modes
                img = img.resize(new, Image.Resampling.LANCZOS).convert("I")
            else:
                img = img.resize(new, Image.Resampling.LANCZOS)
        return Photo(pixels=rgb_pixels(img, uint8), alpha=_alpha(img), format=fmt, frames=frames)
    except MemoryError:
        raise FileProblem(path, f"not enough memory for this {img.width}x{img.height} image") from None
    except (ValueError, OSError) as exc:  # modes Pillow cannot convert to RGB
        raise FileProblem(path, f"unsupported image ({img.mode} mode: {first_line(exc)})") from None


def as_array(images: object) -> np.ndarray:
    """A numpy array as it is; a torch tensor (what the networks return) as a numpy array on the CPU."""
    return images if isinstance(images, np.ndarray) else images.detach().cpu().float().numpy()


def all_finite(images: object) -> bool:
    """Whether every value is finite, checked on the float32 sum: one reduction instead of a boolean copy (2 ms
    for four 640x480 frames, where torch's ``isfinite().all()`` took 18). NaN and infinities carry into the sum; finite values
    overflow it only where they average past 3.4e38 / their count (1e30 for 300 million values; float16
    outputs are summed in float32 too), which no working network reaches. Takes arrays or tensors; integer
    pixels are finite."""
    array = as_array(images)
    return array.dtype.kind in "ui" or bool(np.isfinite(array.sum(dtype=np.float32)))


def to_uint8(rgb: object) -> np.ndarray:
    """A 0..1 ``(3, H, W)`` array or tensor as a contiguous (H, W, 3) uint8 array, clamped and rounded; a uint8
    array is taken as such already (a GPU's output, :mod:`stst.infer.device_pixels`)."""
    if isinstance(rgb, np.ndarray) and rgb.dtype == np.uint8:
        return rgb
    array = as_array(rgb)
    _, height, width = array.shape
    out = np.empty((height, width, 3), np.uint8)
    rows = max(1, STRIP_PIXELS // width)
    for top in range(0, height, rows):  # in strips: a huge photo's float copy would outweigh the photo
        scaled = np.clip(array[:, top : top + rows], 0.0, 1.0, dtype=np.float32)
        scaled *= 255.0
        out[top : top + rows] = np.rint(scaled, out=scaled).transpose(1, 2, 0)
    return out


def batched(photos: Sequence[np.ndarray]) -> np.ndarray:
    """Photos of one size as one array with a batch axis: one photo without a copy (a huge one is big enough)."""
    return photos[0][None] if len(photos) == 1 else np.stack(photos)


def _save(target: str | Path | BinaryIO, rgb: object, alpha: np.ndarray | None, fmt: str, quality: int) -> None:
    img = Image.fromarray(to_uint8(rgb), "RGB")
    if alpha is not None and fmt in ALPHA_FORMATS:
        img.putalpha(Image.fromarray(alpha, "L"))
    options = {"quality": quality} if fmt in ("JPEG", "WEBP") else PNG_OPTIONS if fmt == "PNG" else {}
    img.save(target, format=fmt, **options)


def write_photo(path: str | Path, rgb: object, alpha: np.ndarray | None, fmt: str, quality: int = 95) -> None:
    """Write atomically in Pillow format ``fmt``; alpha is kept where the format holds it."""
    with atomic_path(path) as tmp:
        _save(tmp, rgb, alpha, fmt, quality)


def encode_photo(rgb: object, alpha: np.ndarray | None, fmt: str, quality: int = 95) -> bytes:
    """The file :func:`write_photo` would write, as bytes (for stdout and HTTP answers)."""
    buffer = io.BytesIO()
    _save(buffer, rgb, alpha, fmt, quality)
    return buffer.getvalue()


def output_format(source_format: str | None, requested: str | None) -> str:
    """The format to write: the requested one, else the source's if stst writes it, JPEG for a photo's format that
    it does not (:data:`PHOTO_SUFFIXES`), else PNG."""
    if requested:
        return FORMAT_ALIASES[requested.lower()]
    if source_format in WRITE_FORMATS:
        return source_format
    return "JPEG" if source_format in PHOTO_SUFFIXES.values() else "PNG"


def format_of_suffix(path: Path) -> str | None:
    """The writable format that a file name's extension names, if any."""
    return FORMAT_ALIASES.get(path.suffix.lower().lstrip("."))


def source_format(path: Path) -> str | None:
    """The format that a source's extension names, those that stst reads but does not write included."""
    return format_of_suffix(path) or PHOTO_SUFFIXES.get(path.suffix.lower().lstrip("."))
