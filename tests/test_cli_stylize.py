import hashlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image, features

from stst.cli import main

from conftest import HEIF, PHOTOS


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_console_script_stylizes_a_real_photo(tmp_path, untrained_model_path):
    out = tmp_path / "out.png"
    proc = subprocess.run(
        [sys.executable, "-m", "stst", "stylize", PHOTOS / "kodim05.jpg", "--model", untrained_model_path, "-o", out],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    with Image.open(out) as img:
        assert img.format == "PNG" and img.size == (384, 256)


def test_default_output_goes_beside_the_input(tmp_path, untrained_model_path):
    src = tmp_path / "photo.jpg"
    Image.open(PHOTOS / "kodim23.jpg").resize((96, 64)).save(src)
    result = run("stylize", src, "--model", untrained_model_path)
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "photo-untrained.jpg").format == "JPEG"


def test_an_iphone_heic_and_an_avif_are_photos_written_as_upright_jpegs(tmp_path, untrained_model_path):
    """HEIF went to FFmpeg as a clip of one frame and came out as an .mp4; AVIF came out as a PNG of a photo."""
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(HEIF, src / "iphone.heic")  # stored 384x256 with EXIF orientation 6: upright 256x384
    if features.check("avif"):  # Pillow 11.3 and later
        Image.open(PHOTOS / "kodim23.jpg").save(src / "android.avif", quality=80)
    result = run("stylize", src, "--model", untrained_model_path, "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    written = {p.name: Image.open(p) for p in (tmp_path / "out").iterdir()}
    expected = {"iphone-untrained.jpg": (256, 384), **({"android-untrained.jpg": (384, 256)} if features.check("avif")
                                                        else {})}
    assert {name: img.size for name, img in written.items()} == expected
    assert all(img.format == "JPEG" for img in written.values())


def test_folder_with_bad_files_converts_the_rest(tmp_path, untrained_model_path):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    for name in ["kodim01.jpg", "kodim02.jpg"]:
        shutil.copy(PHOTOS / name, src / name)
    shutil.copy(PHOTOS / "kodim03.jpg", src / "sub" / "kodim03.jpg")
    (src / "broken.png").write_bytes((PHOTOS / "kodim05.jpg").read_bytes()[:5000])
    (src / "notes.txt").write_text("not an image")
    before = {p: digest(p) for p in src.rglob("*") if p.is_file()}

    result = run("stylize", src, "--model", untrained_model_path, "-o", tmp_path / "out", "--recursive", "--max-size", "96")

    assert result.exit_code == 1
    assert "3 stylized, 0 skipped, 2 failed" in result.output
    assert "broken.png: not a readable image" in result.output
    assert "notes.txt: not a readable image" in result.output
    assert Image.open(tmp_path / "out" / "kodim01-untrained.jpg").size == (96, 64)
    assert (tmp_path / "out" / "kodim02-untrained.jpg").is_file()
    assert (tmp_path / "out" / "sub" / "kodim03-untrained.jpg").is_file()
    assert {p: digest(p) for p in src.rglob("*") if p.is_file()} == before

    again = run("stylize", src, "--model", untrained_model_path, "-o", tmp_path / "out", "-r", "--max-size", "96")
    assert "0 stylized, 3 skipped, 2 failed" in again.output


def test_default_folder_output_is_a_sibling_folder(tmp_path, untrained_model_path):
    src = tmp_path / "pics"
    src.mkdir()
    Image.open(PHOTOS / "kodim02.jpg").resize((40, 60)).save(src / "a.webp")
    result = run("stylize", src, "--model", untrained_model_path, "--format", "png")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "pics-untrained" / "a-untrained.png").size == (40, 60)


def test_batches_of_equal_size_match_single_images(tmp_path, untrained_model_path):
    src = tmp_path / "in"
    src.mkdir()
    for i, size in enumerate([(64, 48), (64, 48), (50, 30), (64, 48)]):
        Image.open(PHOTOS / ["kodim01.jpg", "kodim02.jpg", "kodim03.jpg", "kodim05.jpg"][i]).resize(size).save(src / f"p{i}.png")
    assert run("stylize", src, "-m", untrained_model_path, "-o", tmp_path / "one", "--batch-size", "1").exit_code == 0
    assert run("stylize", src, "-m", untrained_model_path, "-o", tmp_path / "four", "--batch-size", "4").exit_code == 0
    for i in range(4):
        a = np.asarray(Image.open(tmp_path / "one" / f"p{i}-untrained.png"), dtype=np.int16)
        b = np.asarray(Image.open(tmp_path / "four" / f"p{i}-untrained.png"), dtype=np.int16)
        assert np.abs(a - b).max() <= 1


def test_existing_output_is_skipped_unless_overwrite(tmp_path, untrained_model_path):
    src = tmp_path / "p.png"
    Image.open(PHOTOS / "kodim03.jpg").resize((32, 32)).save(src)
    out = tmp_path / "o.png"
    out.write_bytes(b"keep me")
    result = run("stylize", src, "-m", untrained_model_path, "-o", out)
    assert result.exit_code == 0 and "output exists" in result.output and out.read_bytes() == b"keep me"
    assert run("stylize", src, "-m", untrained_model_path, "-o", out, "--overwrite").exit_code == 0
    assert Image.open(out).size == (32, 32)


def test_an_input_is_never_overwritten(tmp_path, untrained_model_path):
    src = tmp_path / "p.png"
    Image.open(PHOTOS / "kodim05.jpg").resize((32, 32)).save(src)
    before = digest(src)
    result = run("stylize", src, "-m", untrained_model_path, "-o", src, "--overwrite")
    assert result.exit_code == 1 and "output would overwrite an input file" in result.output
    assert digest(src) == before


def test_missing_model_is_a_usage_error(tmp_path):
    result = run("stylize", PHOTOS / "kodim01.jpg", "-m", tmp_path / "nope.pth")
    assert result.exit_code == 2
    assert f"stst: error: {tmp_path / 'nope.pth'}: model file not found" in result.output


@pytest.mark.parametrize("spec, problem", [("scream", "model file not found (did you mean the_scream? bundled models:"),
                                           ("Starry_Nigth", "model file not found (did you mean starry_night?"),
                                           (".", "a folder, not a model file")])
def test_a_misspelt_style_gets_the_close_name_and_a_folder_is_named_as_one(spec, problem):
    for command in (["stylize", PHOTOS / "kodim01.jpg", "-m", spec], ["info", spec]):
        result = run(*command)
        assert result.exit_code == 2 and result.output.startswith(f"stst: error: {spec}: {problem}"), result.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_requested_missing_device_is_an_error_not_a_fallback(untrained_model_path):
    result = run("stylize", PHOTOS / "kodim01.jpg", "-m", untrained_model_path, "--device", "cuda")
    assert result.exit_code == 2 and "CUDA is not available" in result.output
