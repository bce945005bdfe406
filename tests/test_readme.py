"""The README's Python examples run as written (they broke once when a function moved)."""

import re
import shutil
from pathlib import Path

import av
import pytest

from conftest import PHOTOS, STYLES, TRAIN, make_clip

README = Path(__file__).parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def block_with(text: str) -> str:
    [block] = [b for b in python_blocks() if text in b]
    return block


@pytest.fixture
def in_folder(tmp_path, monkeypatch):
    """A working folder with the files the examples name: photo.jpg, clip.mp4, starry.jpg and photos/."""
    shutil.copy(PHOTOS / "kodim05.jpg", tmp_path / "photo.jpg")
    shutil.copy(STYLES / "starry_night.jpg", tmp_path / "starry.jpg")
    shutil.copytree(TRAIN, tmp_path / "photos")
    make_clip(tmp_path / "clip.mp4", frames=6, size=(96, 64))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_examples_are_found():
    assert len(python_blocks()) == 3


def test_stylize_image_example(in_folder):
    exec(block_with("stylize_image("), {})
    from PIL import Image

    assert Image.open(in_folder / "photo-starry_night.jpg").size == Image.open(in_folder / "photo.jpg").size


def test_stylizer_and_video_example(in_folder, capsys):
    exec(block_with("Stylizer("), {})
    from PIL import Image

    assert Image.open(in_folder / "photo-fast.jpg").size == Image.open(in_folder / "photo.jpg").size
    assert capsys.readouterr().out.strip() == "6 frames"
    with av.open(str(in_folder / "clip-starry_night.mp4")) as clip:
        assert sum(1 for _ in clip.decode(video=0)) == 6


def test_training_example_shortened_to_two_iterations(in_folder):
    """The same code, with the options a test can afford added to its TrainOptions call."""
    code = block_with("train(")
    short = code.replace('dataset="photos/")', 'dataset="photos/", iterations=2, image_size=64, batch_size=2)')
    assert short != code
    namespace: dict = {}
    exec(short, namespace)
    from stst import load_checkpoint

    assert load_checkpoint(in_folder / "starry.pth").metadata["iterations"] == 2
    assert set(namespace["losses"]) >= {"content", "style", "total"}
