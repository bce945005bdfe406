"""Stroke scale, colour preservation and strength on a real bundled model and real photos; ``stst info``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from PIL import Image

from stst.model.bundled import bundled_models
from stst.model.checkpoint import load_checkpoint, load_model
from stst.cli import main
from stst.base.imageio import read_photo
from stst.infer.look import Look, luminance
from stst.training.options import options_from_dict
from stst.training.losses import build_loss
from stst.training.weights import resolve_vgg_weights

from conftest import PHOTOS

MODEL = bundled_models()["starry_night"]


@pytest.fixture(scope="module")
def network():
    model, _ = load_model(MODEL)
    return lambda x: model(x).clamp(0, 1)


@pytest.fixture(scope="module")
def photo():
    return read_photo(PHOTOS / "kodim05.jpg").rgb[None]  # 384x256


def high_frequency_energy(x: torch.Tensor) -> float:
    """Mean squared response of a Laplacian: how much fine texture an image holds."""
    kernel = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]]).expand(3, 1, 3, 3)
    return F.conv2d(x, kernel, groups=3).pow(2).mean().item()


@torch.inference_mode()
def test_stroke_scale_one_is_the_plain_output_and_larger_scales_are_coarser(network, photo):
    plain = network(photo)
    assert torch.equal(Look(stroke_scale=1).apply(network, photo), plain)
    energy = [high_frequency_energy(Look(stroke_scale=s).apply(network, photo) - photo) for s in (1, 2, 3)]
    assert energy[0] > energy[1] > energy[2], energy
    assert Look(stroke_scale=2.5).apply(network, photo).shape == photo.shape


def chroma(rgb: np.ndarray) -> np.ndarray:
    """Cb and Cr (BT.601) of an (H, W, 3) array in 0..255."""
    x = torch.from_numpy(rgb.astype(np.float32)).permute(2, 0, 1)[None]
    y = luminance(x)
    return torch.cat([x[:, 2:3] - y, x[:, 0:1] - y], 1).numpy()


def test_preserve_colors_keeps_the_photos_chroma(tmp_path):
    src = tmp_path / "p.png"
    Image.open(PHOTOS / "kodim23.jpg").save(src)
    result = CliRunner().invoke(main, ["stylize", str(src), "--preserve-colors", "-o", str(tmp_path / "o.png")])
    assert result.exit_code == 0, result.output
    before = np.asarray(Image.open(src).convert("RGB"))
    after = np.asarray(Image.open(tmp_path / "o.png"))
    plain = CliRunner().invoke(main, ["stylize", str(src), "-o", str(tmp_path / "plain.png")])
    assert plain.exit_code == 0
    styled = np.asarray(Image.open(tmp_path / "plain.png"))
    inside = ((after > 0) & (after < 255)).all(-1)  # pixels the gamut did not clip
    assert inside.mean() > 0.8
    diff = np.abs(chroma(after) - chroma(before))[0][:, inside]
    assert diff.mean() < 0.6 and np.percentile(diff, 99) <= 1.5  # equal up to 8-bit rounding
    plain_diff = np.abs(chroma(styled) - chroma(before))[0][:, inside]
    assert plain_diff.mean() > 10 * diff.mean()  # without the option, the painting's colours replace them
    lum = lambda a: luminance(torch.from_numpy(a.astype(np.float32)).permute(2, 0, 1)[None])[0, 0]  # noqa: E731
    assert (lum(after) - lum(styled)).abs()[torch.from_numpy(inside)].mean() < 1.0  # strokes and tones: the painting's


def test_strength_runs_from_the_photo_to_the_full_style(tmp_path, network, photo):
    src = tmp_path / "p.png"
    Image.open(PHOTOS / "kodim03.jpg").save(src)
    zero = CliRunner().invoke(main, ["stylize", str(src), "--strength", "0", "-o", str(tmp_path / "zero.png")])
    assert zero.exit_code == 0, zero.output
    assert np.array_equal(np.asarray(Image.open(tmp_path / "zero.png")), np.asarray(Image.open(src)))
    with torch.inference_mode():
        assert torch.equal(Look(strength=1).apply(network, photo), network(photo))
        ckpt = load_checkpoint(MODEL)
        loss = build_loss(options_from_dict(ckpt.metadata["options"]), ckpt.style_image, resolve_vgg_weights()[0],
                          torch.device("cpu"))
        content = [loss(Look(strength=s).apply(network, photo), photo)["content"].item() for s in (1, 0.75, 0.5, 0.25)]
    assert content == sorted(content, reverse=True) and content[-1] < 0.25 * content[0], content


def test_look_values_are_checked():
    with pytest.raises(ValueError, match="strength"):
        Look(strength=1.5)
    result = CliRunner().invoke(main, ["stylize", str(PHOTOS / "kodim01.jpg"), "--stroke-scale", "20"])
    assert result.exit_code == 2 and "stst: error:" in result.stderr


def test_info_json_round_trips_the_metadata():
    result = CliRunner().invoke(main, ["info", "starry_night", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    ckpt = load_checkpoint(MODEL)
    assert info["metadata"] == ckpt.metadata
    assert info["architecture"]["gflop_per_megapixel"] == 307.6 and len(info["sha256"]) == 64
    text = CliRunner().invoke(main, ["info", "starry_night"])
    assert text.exit_code == 0 and "The Starry Night" in text.stdout and "307.6 GFLOP per megapixel" in text.stdout


@torch.inference_mode()
def test_a_larger_stroke_scale_keeps_the_photos_fine_luminance(photo):
    """The network runs on the shrunk photo, and what the shrink lost of the luminance is added back: a network
    that gives its input back gives back the photo's luminance (clamping aside), where the shrunk photo enlarged
    alone would blur it."""
    kept = Look(stroke_scale=2).apply(lambda x: x, photo)
    blurred = F.interpolate(F.interpolate(photo, scale_factor=0.5, mode="area"), size=photo.shape[-2:], mode="bicubic")
    assert kept.shape == photo.shape
    assert (luminance(kept) - luminance(photo)).abs().mean() < 0.1 * (luminance(blurred) - luminance(photo)).abs().mean()
