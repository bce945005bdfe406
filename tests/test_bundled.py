"""The models shipped in models/, as installed with the package."""

import shutil
import subprocess
import sys

import torch
from click.testing import CliRunner
from PIL import Image

from stst.model.bundled import DEFAULT_MODEL, LIGHT_SUFFIX, bundled_models, resolve_model
from stst.model.checkpoint import load_model
from stst.cli import main
from stst.base.imageio import read_photo
from stst.infer.tiling import stylize_tiled

from conftest import PHOTOS, SHARED, needs_shared

MODELS = bundled_models()


def test_at_least_four_models_ship_and_carry_their_metadata():
    assert len(MODELS) >= 4 and DEFAULT_MODEL in MODELS
    for name, path in MODELS.items():
        assert path.stat().st_size <= 7_000_000
        _, ckpt = load_model(path)
        meta = ckpt.metadata
        assert meta["style"]["licence"] == "public domain" and meta["style"]["sha256"]
        assert meta["iterations"] > 0 and meta["train_seconds"] > 0 and meta["hardware"]["cpu"]
        assert ckpt.training is None and ckpt.style_image is not None


def test_the_installed_package_carries_the_models(tmp_path):
    # From another folder, so that the installed stst is imported, not this checkout.
    code = "from stst.model.bundled import bundled_models; print(sorted(bundled_models()))"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(sorted(MODELS))


def test_seven_styles_ship_and_the_default_has_a_light_variant():
    full = [n for n in MODELS if not n.endswith(LIGHT_SUFFIX)]
    assert len(full) == 7
    assert f"{DEFAULT_MODEL}{LIGHT_SUFFIX}" in MODELS
    for name in MODELS:
        if name.endswith(LIGHT_SUFFIX):
            _, light = load_model(MODELS[name])
            teacher = name.removesuffix(LIGHT_SUFFIX)
            assert light.arch.channels == 16 and light.metadata["distilled_from"]["model"] == f"{teacher}.pth"


def test_stst_models_lists_them_and_marks_light_variants():
    result = CliRunner().invoke(main, ["models"])
    assert result.exit_code == 0
    lines = {line.split()[0]: line for line in result.output.splitlines()}
    assert set(lines) == set(MODELS)
    assert "(default)" in lines[DEFAULT_MODEL]
    for name, line in lines.items():
        assert ("[light: width 16, distilled from" in line) == name.endswith(LIGHT_SUFFIX)


def test_light_uses_the_bundled_variant(tmp_path):
    result = CliRunner().invoke(main, ["stylize", str(PHOTOS / "kodim23.jpg"), "--light", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / f"kodim23-{DEFAULT_MODEL}{LIGHT_SUFFIX}.jpg").size == (384, 256)


def test_stylize_without_model_uses_the_default_beside_the_photo(tmp_path):
    shutil.copy(PHOTOS / "kodim23.jpg", tmp_path / "kodim23.jpg")
    result = CliRunner().invoke(main, ["stylize", str(tmp_path / "kodim23.jpg")])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / f"kodim23-{DEFAULT_MODEL}.jpg").size == (384, 256)


def test_bundled_names_resolve_and_paths_win(tmp_path):
    name = next(n for n in MODELS if n != DEFAULT_MODEL)
    assert resolve_model(name) == (MODELS[name], name)
    local = tmp_path / name
    local.write_bytes(MODELS[DEFAULT_MODEL].read_bytes())
    assert resolve_model(str(local)) == (local, name)


def test_stylized_photo_differs_from_the_photo_but_keeps_its_structure():
    model, _ = load_model(MODELS[DEFAULT_MODEL])
    photo = read_photo(PHOTOS / "kodim05.jpg", max_size=256).rgb[None]
    with torch.inference_mode():
        out = model(photo).clamp(0, 1)
    assert (out - photo).abs().mean() > 0.05  # the style changed it
    gray = lambda t: t.mean(1).flatten()  # noqa: E731
    assert torch.corrcoef(torch.stack([gray(out), gray(photo)]))[0, 1] > 0.3  # the subject is still there


@needs_shared
def test_tiles_with_statistics_from_a_shrunk_copy_are_close_to_the_whole_image():
    model, _ = load_model(MODELS[DEFAULT_MODEL])
    photo = read_photo(SHARED / "photos" / "kodim05.png").rgb[None]  # 768x512
    with torch.inference_mode():
        whole = model(photo).clamp(0, 1)
        tiled = stylize_tiled(model, photo, tile=256, stats_size=384).clamp(0, 1)
    assert (tiled - whole).abs().mean().item() * 255 < 6
