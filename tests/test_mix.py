import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from stst.cli import main
from stst.model.checkpoint import load_checkpoint, save_checkpoint
from stst.model.mix import MixError, Part, mix_checkpoints, resolve_mix
from stst.model.network import ArchConfig
from stst.training.options import RunSettings, TrainOptions
from stst.training.train import train

from conftest import PHOTOS, STYLES, TRAIN, fresh_network


def tuned(out, style, init=""):
    """A model of width 8 trained for two steps, from ``init`` where given (a shared base) or from scratch."""
    options = TrainOptions(style=str(STYLES / style), dataset=str(TRAIN), image_size=32, style_size=64, batch_size=1,
                           iterations=2, channels=8, init=str(init), lr=1e-2)
    train(options, RunSettings(output=out, workers=0, progress=False, checkpoint_every=0), log=lambda m: None)
    return out


@pytest.fixture(scope="module")
def family(tmp_path_factory):
    """A base, two styles fine-tuned from it, and one trained on its own."""
    folder = tmp_path_factory.mktemp("mix")
    base = folder / "base.pth"
    save_checkpoint(base, fresh_network(1, ArchConfig(channels=8)), {})
    return {"base": base, "starry": tuned(folder / "starry.pth", "starry_night.jpg", base),
            "scream": tuned(folder / "scream.pth", "the_scream.jpg", base),
            "alone": tuned(folder / "alone.pth", "the_scream.jpg")}


def weights(path):
    return load_checkpoint(path).state_dict


def test_a_mix_of_one_model_with_weight_one_is_that_model(family):
    path, name = resolve_mix([f"{family['starry']}=1"])
    assert path == family["starry"] and name == "starry"
    alone = mix_checkpoints([Part(family["starry"], "starry", 1.0)]).state_dict
    for key, value in weights(family["starry"]).items():
        assert torch.equal(alone[key], value.float())


def test_weights_that_do_not_add_up_are_normalised(family):
    a, b = weights(family["starry"]), weights(family["scream"])
    path, name = resolve_mix([f"{family['starry']}=3", f"{family['scream']}=1"])
    assert name == "starry75+scream25"
    assert path == resolve_mix([f"{family['starry']}=0.75", f"{family['scream']}=0.25"])[0]
    mixed = weights(path)
    for key in a:
        assert torch.allclose(mixed[key], 0.75 * a[key] + 0.25 * b[key], atol=1e-6)
    assert load_checkpoint(path).metadata["mix"][0]["weight"] == pytest.approx(0.75)


def test_the_base_mixes_with_the_models_tuned_from_it(family):
    path, name = resolve_mix([f"{family['base']}=1", f"{family['scream']}=1"])
    assert name == "base50+scream50" and path.is_file()


def test_models_that_cannot_be_mixed_are_one_line_naming_them(family, tmp_path):
    with pytest.raises(MixError, match="cannot mix starry and alone: they were not fine-tuned from one base"):
        resolve_mix([f"{family['starry']}=0.5", f"{family['alone']}=0.5"])
    with pytest.raises(MixError, match="the weights of the mix add up to 0"):
        resolve_mix([f"{family['starry']}=0", f"{family['scream']}=0"])
    photo = tmp_path / "p.png"
    Image.open(PHOTOS / "kodim23.jpg").resize((48, 32)).save(photo)
    result = CliRunner().invoke(main, ["stylize", str(photo), "--model", f"{family['starry']}=0.5", "--model",
                                       f"{family['alone']}=0.5"])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "stst: error: cannot mix starry and alone: they were not fine-tuned from one base (models made by `stst train` on "
        "a CPU, the quick recipe, share one and can be mixed)"]
    bad = CliRunner().invoke(main, ["stylize", str(photo), "--model", f"{family['starry']}=lots"])
    assert bad.exit_code == 2 and "the weight after '=' must be a number" in bad.stderr


def test_stylize_runs_a_mix_and_names_the_output_after_it(family, tmp_path):
    photo = tmp_path / "p.png"
    Image.open(PHOTOS / "kodim23.jpg").resize((48, 32)).save(photo)
    result = CliRunner().invoke(main, ["stylize", str(photo), "--model", f"{family['starry']}=0.7", "--model",
                                       f"{family['scream']}=0.3", "--backend", "torch"])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "p-starry70+scream30.png").size == (48, 32)
