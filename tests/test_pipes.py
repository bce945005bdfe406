"""``stst stylize - -o -``: one image from standard input to standard output, and what pipes refuse."""

import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import PHOTOS, make_clip

PHOTO = PHOTOS / "kodim23.jpg"  # 384x256


def stst(*args, stdin: bytes = b""):
    return subprocess.run([sys.executable, "-m", "stst", "stylize", *map(str, args)], input=stdin,
                          capture_output=True)


def test_stdin_to_stdout_is_one_whole_image_and_notes_go_to_stderr(tmp_path):
    piped = stst("-", "-o", "-", "--model", "udnie-realtime", "--precision", "fp32", "--backend", "torch",
                 stdin=PHOTO.read_bytes())
    assert piped.returncode == 0, piped.stderr
    image = Image.open(io.BytesIO(piped.stdout))
    assert image.format == "PNG" and image.size == (384, 256)
    image.load()  # every byte of the image is there, and nothing after it
    assert piped.stdout.endswith(b"IEND\xaeB`\x82")
    # the same picture as a file written by the usual path
    out = tmp_path / "file.png"
    assert stst(PHOTO, "-o", out, "--model", "udnie-realtime", "--precision", "fp32", "--backend",
                "torch").returncode == 0
    assert np.array_equal(np.asarray(image), np.asarray(Image.open(out)))


def test_format_chooses_the_piped_format_and_a_file_can_go_to_stdout(tmp_path):
    piped = stst(PHOTO, "-o", "-", "--format", "jpg", "--model", "udnie-realtime", "--max-size", "96")
    assert piped.returncode == 0, piped.stderr
    assert Image.open(io.BytesIO(piped.stdout)).format == "JPEG"
    assert Image.open(io.BytesIO(piped.stdout)).size == (96, 64)
    written = stst("-", "-o", tmp_path / "out.webp", "--model", "udnie-realtime", stdin=PHOTO.read_bytes())
    assert written.returncode == 0, written.stderr
    assert Image.open(tmp_path / "out.webp").format == "WEBP"


@pytest.mark.parametrize("args, message", [
    (("-", PHOTO, "-o", "out"), "- (standard input) and -o - (standard output) take one image; give one INPUT"),
    ((PHOTO, PHOTOS / "kodim05.jpg", "-o", "-"), "- (standard input) and -o - (standard output) take one image"),
    ((PHOTOS, "-o", "-"), f"-o - writes one image to standard output; {PHOTOS} is a folder"),
])
def test_pipes_refuse_what_is_not_one_image(args, message):
    refused = stst(*args)
    assert refused.returncode == 2 and refused.stdout == b""
    assert refused.stderr.decode().startswith(f"stst: error: {message}")


def test_a_clip_is_not_written_to_stdout(tmp_path):
    clip = make_clip(tmp_path / "c.mp4", frames=2)
    refused = stst(clip, "-o", "-")
    assert refused.returncode == 2
    assert f"{clip} is a video clip (give -o a file or folder)" in refused.stderr.decode()


def test_a_bad_image_on_stdin_fails_like_a_bad_file():
    refused = stst("-", "-o", "-", stdin=b"\x00 not an image")
    assert refused.returncode == 1 and refused.stdout == b""
    assert refused.stderr.decode().strip() == ("stst: error: <stdin>: not a readable image (no image format that "
                                                "Pillow knows)")
