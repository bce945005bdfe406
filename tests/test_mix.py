import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from stst.base.errors import StstError
from stst.base.fileio import file_sha256
from stst.cli import main
from stst.model.checkpoint import load_checkpoint, save_checkpoint
from stst.model.mix import MixError, Part, average, checked
from stst.model.network import ArchConfig, build_network
from stst.training.losses import mixed_style_targets, style_targets
from stst.training.mixing import make_mix, resolve_mix
from stst.training.options import PRESETS, RunSettings, TrainOptions
from stst.training.train import train
from stst.training.vgg import VGGFeatures
from stst.training.weights import resolve_vgg_weights

from conftest import PHOTOS, STYLES, TRAIN, fresh_network

QUICK = 0.01  # minutes: a mix of a step or two


def tuned(out, style, init="", channels=8):
    """A model of width ``channels`` trained for two steps, from ``init`` where given (a shared base) or from
    scratch."""
    options = TrainOptions(style=str(STYLES / style), dataset=str(TRAIN), image_size=32, style_size=64, batch_size=1,
                           iterations=2, channels=channels, init=str(init), lr=1e-2)
    train(options, RunSettings(output=out, workers=0, progress=False, checkpoint_every=0), log=lambda m: None)
    return out


@pytest.fixture(scope="module")
def family(tmp_path_factory):
    """A base, two styles fine-tuned from it, one trained on its own, and one of another width."""
    folder = tmp_path_factory.mktemp("mix")
    base = folder / "base.pth"
    save_checkpoint(base, fresh_network(1, ArchConfig(channels=8)), {})
    return {"base": base, "starry": tuned(folder / "starry.pth", "starry_night.jpg", base),
            "scream": tuned(folder / "scream.pth", "the_scream.jpg", base),
            "alone": tuned(folder / "alone.pth", "the_scream.jpg"),
            "wide": tuned(folder / "wide.pth", "the_scream.jpg", channels=16)}


def mix(*specs, minutes=QUICK):
    return resolve_mix(list(specs), minutes=minutes, progress=False, log=lambda m: None)


def test_a_mix_of_one_model_with_weight_one_is_that_model(family):
    path, name = mix(f"{family['starry']}=1")
    assert path == family["starry"] and name == "starry"
    assert mix(f"{family['starry']}=0.5", f"{family['starry']}=0.5") == (path, name)  # named twice: still itself
    _, both = mix(f"{family['starry']}=0.25", f"{family['scream']}=0.5", f"{family['starry']}=0.25")
    assert both == "starry50+scream50"
    alone = average([Part(family["starry"], "starry", 1.0)], [load_checkpoint(family["starry"])]).state_dict
    for key, value in load_checkpoint(family["starry"]).state_dict.items():
        assert torch.equal(alone[key], value.float())


def test_weights_that_do_not_add_up_are_normalised_and_the_mix_is_made_once(family):
    path, name = mix(f"{family['starry']}=3", f"{family['scream']}=1")
    assert name == "starry75+scream25"
    made = path.stat().st_mtime_ns
    again, _ = mix(f"{family['starry']}=0.75", f"{family['scream']}=0.25")
    assert again == path and path.stat().st_mtime_ns == made  # the same mix, kept: not trained again
    meta = load_checkpoint(path).metadata
    assert [p["weight"] for p in meta["style"]["mix"]] == pytest.approx([0.75, 0.25])
    assert meta["options"]["mix"] == {str(family["starry"]): 0.75, str(family["scream"]): 0.25}
    assert meta["options"]["palette_weight"] == PRESETS["quick"]["palette_weight"]  # the quick recipe's own
    assert meta["options"]["palette_fit"] and "colour_map" in meta  # its colour fit too
    assert meta["init"]["name"] == "average.pth"  # models of one base start from their averaged weights


def test_models_trained_apart_mix_from_the_heavier_one(family):
    path, name = mix(f"{family['starry']}=0.25", f"{family['alone']}=0.75")
    assert name == "starry25+alone75"
    meta = load_checkpoint(path).metadata
    assert meta["init"]["name"] == "alone.pth"
    assert meta["init"]["sha256"] == file_sha256(family["alone"])


def test_the_style_target_of_a_mix_is_the_weighted_mean_of_the_paintings_grams():
    encoder = VGGFeatures(resolve_vgg_weights()[0], "relu2_2")
    a = torch.randint(0, 256, (3, 40, 48), dtype=torch.uint8)
    b = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    layers = ["relu1_2", "relu2_2"]
    mixed = mixed_style_targets(encoder, [(a, 0.75), (b, 0.25)], layers)
    ga, gb = (style_targets(encoder, (x.float() / 255)[None], layers) for x in (a, b))
    for layer in layers:
        assert torch.allclose(mixed[layer], 0.75 * ga[layer] + 0.25 * gb[layer], atol=1e-7)
    assert torch.equal(mixed_style_targets(encoder, a, layers)["relu1_2"], ga["relu1_2"])


def test_models_that_cannot_be_mixed_are_one_line_naming_them(family, tmp_path):
    with pytest.raises(MixError, match=r"cannot mix starry and wide: their networks differ \(starry: width 8, wide: "
                                       r"width 16\)"):
        mix(f"{family['starry']}=0.5", f"{family['wide']}=0.5")
    realtime = [tmp_path / "a-realtime.pth", tmp_path / "b-realtime.pth"]
    for path in realtime:
        save_checkpoint(path, build_network(ArchConfig(channels=8, design="realtime")), {})
    with pytest.raises(MixError, match="cannot mix a-realtime and b-realtime: realtime networks are only distilled, "
                                       "not trained; mix the full or light tier"):
        mix(*(f"{p}=0.5" for p in realtime))
    with pytest.raises(MixError, match="the weights of the mix add up to 0"):
        mix(f"{family['starry']}=0", f"{family['scream']}=0")
    with pytest.raises(MixError, match=r"the weights of the mix are too large to add up \(their sum overflows\)"):
        mix(f"{family['starry']}=1e308", f"{family['scream']}=1e308")
    photo = tmp_path / "p.png"
    Image.open(PHOTOS / "kodim23.jpg").resize((48, 32)).save(photo)
    result = CliRunner().invoke(main, ["stylize", str(photo), "--model", f"{family['starry']}=0.5", "--model",
                                       f"{family['wide']}=0.5"])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "stst: error: cannot mix starry and wide: their networks differ (starry: width 8, wide: width 16)"]
    bad = CliRunner().invoke(main, ["stylize", str(photo), "--model", f"{family['starry']}=lots"])
    assert bad.exit_code == 2 and "the weight after '=' must be a number" in bad.stderr


def test_an_interrupted_mix_leaves_nothing(family, tmp_path):
    def stop(iteration, seconds):
        raise StstError("stopped")

    out = tmp_path / "mix.pth"
    parts = [Part(family["starry"], "starry", 0.5), Part(family["scream"], "scream", 0.5)]
    with pytest.raises(StstError, match="stopped"):
        make_mix(checked(parts), out, 1.0, RunSettings(output=tmp_path / "scratch.pth", workers=0, progress=False,
                                              on_step=stop), log=lambda m: None)
    assert not out.exists()


def test_stylize_makes_a_mix_once_and_names_the_output_after_it(family, tmp_path):
    photo = tmp_path / "p.png"
    Image.open(PHOTOS / "kodim23.jpg").resize((48, 32)).save(photo)
    args = ["stylize", str(photo), "--model", f"{family['starry']}=0.7", "--model", f"{family['scream']}=0.3",
            "--backend", "torch", "--mix-minutes", str(QUICK), "--overwrite"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "p-starry70+scream30.png").size == (48, 32)
    assert "making the mix starry70+scream30: 0.01 minutes of training toward the mixed styles" in result.stderr
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0 and "making the mix" not in again.stderr
