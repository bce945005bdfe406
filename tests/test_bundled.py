"""The models shipped in models/, as installed with the package."""

import json
import shutil
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from stst.model.bundled import DEFAULT_MODEL, TIERS, bundled_models, bundled_styles, resolve_model, split_tier
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


def test_seven_styles_ship_and_each_faster_tier_is_distilled_from_its_full_model():
    styles = bundled_styles()
    assert len(styles) == 7 and all({"full", "realtime"} <= set(tiers) for tiers in styles.values())
    assert "light" in styles[DEFAULT_MODEL]
    for style, tiers in styles.items():
        for tier, path in tiers.items():
            _, ckpt = load_model(path)
            if tier == "full":
                assert ckpt.arch.design == "johnson" and "distilled_from" not in ckpt.metadata
                continue
            assert ckpt.metadata["distilled_from"]["model"] == f"{style}.pth"
            assert ckpt.arch.channels == 16 and ckpt.arch.design == ("realtime" if tier == "realtime" else "johnson")


def test_every_style_is_fine_tuned_for_video():
    for style in bundled_styles():
        shown = json.loads(CliRunner().invoke(main, ["info", style, "--json"]).output)
        assert shown["metadata"]["options"]["temporal_weight"] > 0, style
        assert shown["metadata"]["options"]["init"].endswith(f"{style}.pth"), style  # fine-tuned from the still model


def test_stst_models_lists_each_style_with_its_tiers():
    result = CliRunner().invoke(main, ["models"])
    assert result.exit_code == 0
    heads = [line for line in result.output.splitlines() if not line.startswith(" ")]
    assert [line.split(":")[0].removesuffix(" (default)") for line in heads] == sorted(bundled_styles())
    assert f"{DEFAULT_MODEL} (default): Vincent van Gogh, The Starry Night (1889)" in heads
    rows = [line.split() for line in result.output.splitlines() if line.startswith("  ")]
    assert len(rows) == len(MODELS)
    for row in rows:
        name = row[row.index("--model") + 1]
        assert split_tier(name)[1] == row[0] and (("(distilled" in row) == (row[0] != "full"))


@pytest.mark.parametrize("args, suffix", [(["--light"], "-light"), (["--tier", "light"], "-light"),
                                          (["--tier", "realtime"], "-realtime"), (["--tier", "full"], "")])
def test_a_tier_uses_the_bundled_variant(tmp_path, args, suffix):
    result = CliRunner().invoke(main, ["stylize", str(PHOTOS / "kodim23.jpg"), *args, "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / f"kodim23-{DEFAULT_MODEL}{suffix}.jpg").size == (384, 256)


def test_a_missing_tier_is_one_line_naming_what_exists(tmp_path):
    own = tmp_path / "mine.pth"
    own.write_bytes(MODELS[DEFAULT_MODEL].read_bytes())
    (tmp_path / "mine-light.pth").write_bytes(MODELS[f"{DEFAULT_MODEL}-light"].read_bytes())
    result = CliRunner().invoke(main, ["stylize", str(PHOTOS / "kodim23.jpg"), "-m", str(own), "--tier", "realtime",
                                       "-o", str(tmp_path / "out.jpg")])
    assert result.exit_code == 2
    assert result.output.strip() == (f"stst: error: {tmp_path / 'mine-realtime.pth'}: no realtime tier of mine (it "
                                     f"has: full, light; make one with: stst distill {own} --tier realtime --dataset "
                                     "PHOTOS)")
    assert resolve_model(str(tmp_path / "mine-light.pth"), "full") == (tmp_path / "mine-light.pth", "mine-light")
    clash = CliRunner().invoke(main, ["stylize", str(PHOTOS / "kodim23.jpg"), "--light", "--tier", "realtime"])
    assert clash.exit_code == 2 and "--light is short for --tier light" in clash.output


def test_tiers_are_named_in_order():
    assert TIERS == ("full", "light", "realtime")
    assert [split_tier(n) for n in ["udnie", "udnie-light", "udnie-realtime", "a-b"]] == [
        ("udnie", "full"), ("udnie", "light"), ("udnie", "realtime"), ("a-b", "full")]


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
