import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms

from stst.base.errors import FileProblem
from stst.base import imageio
from stst.base.imageio import all_finite, batched, coded_jpeg, read_photo, to_uint8, write_photo

from conftest import HEIF, PHOTOS, display_p3_profile


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (200, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    img.save(tmp_path / "r.jpg", exif=exif)
    assert read_photo(tmp_path / "r.jpg").size == (40, 20)  # (H, W): upright is portrait


def test_sixteen_bit_grayscale_keeps_precision(tmp_path):
    ramp = (np.arange(64 * 64, dtype=np.uint16) * 16).reshape(64, 64)
    Image.fromarray(ramp).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    photo = read_photo(tmp_path / "g16.png")
    assert photo.rgb.shape == (3, 64, 64)
    expected = torch.from_numpy(ramp.astype(np.float32) / 65535)
    assert torch.allclose(photo.rgb[1], expected, atol=1e-6)
    assert len(torch.unique(photo.rgb[0])) > 256  # finer than 8 bits


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "1"])
def test_other_modes_become_rgb(tmp_path, mode):
    src = Image.open(PHOTOS / "kodim23.jpg").resize((48, 32))
    path = tmp_path / ("x.jpg" if mode == "CMYK" else "x.png")
    src.convert(mode).save(path)
    photo = read_photo(path)
    assert photo.rgb.shape == (3, 32, 48) and photo.alpha is None


def test_alpha_survives_png_and_is_dropped_for_jpeg(tmp_path):
    rgba = Image.open(PHOTOS / "kodim23.jpg").resize((50, 30)).convert("RGBA")
    alpha = np.tile(np.linspace(0, 255, 50, dtype=np.uint8), (30, 1))
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(tmp_path / "a.png")
    photo = read_photo(tmp_path / "a.png")
    assert np.array_equal(photo.alpha, alpha)
    write_photo(tmp_path / "o.png", photo.rgb, photo.alpha, "PNG")
    out = Image.open(tmp_path / "o.png")
    assert out.mode == "RGBA" and np.array_equal(np.asarray(out.getchannel("A")), alpha)
    write_photo(tmp_path / "o.jpg", photo.rgb, photo.alpha, "JPEG")
    assert Image.open(tmp_path / "o.jpg").mode == "RGB"


def test_max_size_shrinks_keeping_aspect():
    photo = read_photo(PHOTOS / "kodim05.jpg", max_size=300)
    assert photo.size == (200, 300)
    assert read_photo(PHOTOS / "kodim05.jpg", max_size=5000).size == (256, 384)


def test_corrupt_image_names_the_file(tmp_path):
    bad = tmp_path / "cut.png"
    bad.write_bytes((PHOTOS / "kodim01.jpg").read_bytes()[:3000])
    with pytest.raises(FileProblem, match=r"cut\.png: not a readable image"):
        read_photo(bad)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_one_non_finite_value_is_caught(bad):
    frames = torch.rand(2, 3, 48, 64)
    assert all_finite(frames)
    frames[1, 2, 47, 63] = bad
    assert not all_finite(frames)


def test_a_large_half_precision_batch_is_finite():
    # 4 x 3 x 256 x 256 values near 1 sum to 786,000, past float16's largest number (65,504)
    assert all_finite(torch.full((4, 3, 256, 256), 0.999, dtype=torch.float16))


def test_outputs_become_uint8_in_strips_as_they_would_whole(monkeypatch):
    rgb = torch.rand(3, 37, 23) * 1.4 - 0.2
    whole = to_uint8(rgb)
    monkeypatch.setattr(imageio, "STRIP_PIXELS", 23 * 5)  # strips of 5 rows, the last one of 2
    strips = to_uint8(rgb)
    assert strips.flags.c_contiguous and strips.shape == (37, 23, 3)
    assert np.array_equal(strips, whole)
    assert np.array_equal(whole, np.rint(rgb.clamp(0, 1).numpy() * 255).astype(np.uint8).transpose(1, 2, 0))


def test_one_photo_is_batched_without_a_copy():
    photo = np.zeros((3, 4, 5), np.float32)
    assert np.shares_memory(batched([photo]), photo) and batched([photo]).shape == (1, 3, 4, 5)
    assert batched([photo, photo + 1]).shape == (2, 3, 4, 5)


def test_a_heic_photo_reads_upright_from_a_file_and_from_a_stream():
    """An iPhone's HEIF, stored on its side (EXIF orientation 6), through pi-heif (registered at the first file
    that Pillow does not know); a stream as an upload or stdin gives one."""
    upright = np.asarray(Image.open(PHOTOS / "kodim23.jpg").transpose(Image.Transpose.ROTATE_270), np.float32) / 255
    for source in (HEIF, io.BytesIO(HEIF.read_bytes())):
        photo = read_photo(source, name="iphone.heic", uint8=True)
        assert photo.format == "HEIF" and photo.size == (384, 256)
        assert np.abs(photo.pixels / 255 - upright).mean() < 0.01  # HEVC's loss at quality 75


def _p3(tmp_path, fmt: str, icc: bytes, alpha: bool = False):
    """kodim23 converted to Display P3 and saved with ``icc`` (its profile, or another), and the sRGB original."""
    srgb = Image.open(PHOTOS / "kodim23.jpg").convert("RGB")
    p3 = ImageCms.profileToProfile(srgb, ImageCms.createProfile("sRGB"),
                                   ImageCms.ImageCmsProfile(io.BytesIO(display_p3_profile())), outputMode="RGB")
    if alpha:
        p3.putalpha(128)
    path = tmp_path / f"p3.{fmt.lower()}"
    p3.save(path, fmt, icc_profile=icc, **({"quality": 95} if fmt == "JPEG" else {}))
    return path, np.asarray(srgb, np.float32), np.asarray(p3.convert("RGB"), np.float32)


@pytest.mark.parametrize("fmt, alpha", [("JPEG", False), ("PNG", False), ("PNG", True)])
def test_a_display_p3_photo_is_read_in_srgb(tmp_path, fmt, alpha):
    """An iPhone's photos are tagged Display P3: read as they are stored, their colours came out flat."""
    path, srgb, stored = _p3(tmp_path, fmt, display_p3_profile(), alpha)
    assert np.abs(stored - srgb).mean() > 5  # what was read before
    photo = read_photo(path, uint8=True)
    assert np.abs(photo.pixels - srgb).mean() < 1.5  # JPEG's loss at 95, and the round trip's rounding
    assert (photo.alpha is not None and (photo.alpha == 128).all()) if alpha else photo.alpha is None
    if fmt == "JPEG":
        assert coded_jpeg(path) is None  # decoded where it is converted: on the CPU, not by a GPU's decoder


def test_a_profile_that_cannot_be_read_leaves_the_colours_as_stored(tmp_path):
    path, _, stored = _p3(tmp_path, "PNG", b"not an ICC profile" * 10)
    assert np.abs(read_photo(path, uint8=True).pixels - stored).max() == 0
