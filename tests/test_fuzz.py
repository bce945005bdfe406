"""Property-based tests of the loaders: any input gives a correct output or one error line, never a traceback.

Random bytes (some behind a real format's magic number), real files cut at
random points, and valid but odd images (1x1 to 3x4097, every colour mode a
format can hold, EXIF orientations) go through ``stst stylize`` and the model
loader. Deterministic by default, so that CI is reproducible; set
``STST_FUZZ_EXAMPLES=2000`` for a long random run.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from stst.model.checkpoint import load_checkpoint, save_checkpoint
from stst.cli import main
from stst.base.errors import FileProblem
from stst.base.imageio import read_photo
from stst.model.network import ArchConfig

from conftest import PHOTOS, fresh_network

LONG = int(os.environ.get("STST_FUZZ_EXAMPLES", "0"))
FUZZ = settings(max_examples=LONG or 25, derandomize=not LONG, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# Modes each format can store (Pillow writes these without conversion).
MODES = {
    "PNG": ["1", "L", "LA", "P", "RGB", "RGBA", "I;16"],
    "JPEG": ["L", "RGB", "CMYK"],
    "TIFF": ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "F"],
    "WEBP": ["RGB", "RGBA"],
    "BMP": ["1", "L", "P", "RGB"],
    "GIF": ["L", "P"],
}
EXIF_FORMATS = {"PNG", "JPEG", "WEBP"}
MAGIC = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a", b"BM", b"II*\x00", b"RIFF\x00\x00\x00\x00WEBPVP8 "]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("fuzz") / "tiny.pth"
    save_checkpoint(path, fresh_network(config=ArchConfig(channels=4)))
    return path


def stylize(src: Path, model: Path, out: Path):
    return CliRunner().invoke(main, ["stylize", str(src), "-m", str(model), "-o", str(out), "--format", "png"])


def assert_clean_failure(result, out: Path, code: int) -> None:
    """A failure is one line naming the file, the documented code, and nothing under the output name."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]


@st.composite
def odd_images(draw) -> tuple[bytes, tuple[int, int]]:
    """Encoded bytes of a valid image, and the (width, height) stst should output after EXIF orientation."""
    fmt = draw(st.sampled_from(sorted(MODES)))
    mode = draw(st.sampled_from(MODES[fmt]))
    thin = st.tuples(st.integers(1, 3), st.integers(1, 4097))
    w, h = draw(st.one_of(thin, thin.map(lambda t: t[::-1]), st.tuples(st.integers(1, 64), st.integers(1, 64))))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")
    img = img.convert("I").point(lambda v: v * 200).convert("I;16") if mode == "I;16" else img.convert(mode)
    orientation = draw(st.integers(1, 8)) if fmt in EXIF_FORMATS else 1
    options = {}
    if orientation != 1:
        exif = Image.Exif()
        exif[0x0112] = orientation
        options["exif"] = exif.tobytes()
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **options)
    return buffer.getvalue(), ((h, w) if orientation >= 5 else (w, h))


@FUZZ
@given(image=odd_images())
def test_valid_odd_images_are_stylized_at_their_size(tmp_path, model, image):
    data, size = image
    src, out = tmp_path / "in.img", tmp_path / "out" / "o.png"
    src.write_bytes(data)
    result = stylize(src, model, out)
    assert result.exit_code == 0, result.output
    with Image.open(out) as written:
        assert written.size == size and written.mode in ("RGB", "RGBA")
    out.unlink()


@FUZZ
@given(magic=st.sampled_from(MAGIC), body=st.binary(max_size=2048))
def test_random_bytes_are_one_line_errors(tmp_path, model, magic, body):
    src, out = tmp_path / "in.img", tmp_path / "out.png"
    src.write_bytes(magic + body)
    result = stylize(src, model, out)
    if result.exit_code == 0:  # a few random bytes can be a valid tiny BMP or GIF: then it must be a real output
        Image.open(out).load()
        out.unlink()
        return
    assert_clean_failure(result, out, 1)
    assert f"{src}: " in result.stderr


REAL = {fmt: None for fmt in ("PNG", "JPEG", "WEBP", "TIFF", "GIF", "BMP")}


def real_bytes(fmt: str) -> bytes:
    if REAL[fmt] is None:
        buffer = io.BytesIO()
        Image.open(PHOTOS / "kodim23.jpg").resize((96, 64)).convert("P" if fmt == "GIF" else "RGB").save(buffer, fmt)
        REAL[fmt] = buffer.getvalue()
    return REAL[fmt]


@FUZZ
@given(fmt=st.sampled_from(sorted(REAL)), cut=st.floats(0, 0.999))
def test_truncated_images_are_one_line_errors_or_whole_outputs(tmp_path, model, fmt, cut):
    data = real_bytes(fmt)
    src, out = tmp_path / "in.img", tmp_path / "out.png"
    src.write_bytes(data[: int(len(data) * cut)])
    result = stylize(src, model, out)
    if result.exit_code == 0:
        with Image.open(out) as written:
            assert written.size == (96, 64)
        out.unlink()
    else:
        assert_clean_failure(result, out, 1)
    with pytest.raises(FileProblem) if result.exit_code else _nothing():
        read_photo(src)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.fixture(scope="module")
def model_bytes(model) -> bytes:
    return model.read_bytes()


@FUZZ
@given(cut=st.floats(0, 0.999), flips=st.lists(st.tuples(st.floats(0, 0.999), st.integers(1, 255)), max_size=4))
def test_damaged_model_files_are_one_line_errors(tmp_path, model_bytes, cut, flips):
    data = bytearray(model_bytes)
    for where, xor in flips:
        data[int(len(data) * where)] ^= xor
    if cut > 0.5:  # half of the cases: truncated as well
        data = data[: int(len(data) * cut)]
    path = tmp_path / "m.pth"
    path.write_bytes(bytes(data))
    try:
        ckpt = load_checkpoint(path)
    except FileProblem as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
        src, out = tmp_path / "a.png", tmp_path / "out.png"
        Image.new("RGB", (16, 12)).save(src)
        result = stylize(src, path, out)
        assert_clean_failure(result, out, 2)
        return
    with torch.no_grad():  # it loaded: the network must run
        ckpt.build()(torch.rand(1, 3, 16, 12))
