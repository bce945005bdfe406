import json

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from stst.cli import main
from stst.base.errors import FileProblem
from stst.base.imageio import read_photo
from stst.training.evaluate import evaluate, mean_score, unseen_photos
from stst.training.options import RunSettings, TrainOptions
from stst.training.similarity import Lpips
from stst.training.train import train
from stst.training.weights import resolve_vgg_weights

from conftest import PHOTOS, STYLES, TRAIN


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "tiny.pth"
    options = TrainOptions(style=str(STYLES / "the_scream.jpg"), dataset=str(TRAIN), image_size=48, style_size=96,
                           batch_size=1, iterations=2, residual=True)
    train(options, RunSettings(output=out, workers=0, progress=False, checkpoint_every=0), log=lambda m: None)
    return out


def test_scores_each_photo_with_the_training_losses(tiny_model):
    photos = [PHOTOS / "kodim01.jpg", PHOTOS / "kodim02.jpg"]
    scores = evaluate(tiny_model, photos, size=64)
    assert [s.photo for s in scores] == [str(p) for p in photos]
    for s in scores:
        assert s.total == pytest.approx(s.content + s.style + s.tv, rel=1e-5)
        assert s.style > 0 and s.content >= 0
    mean = mean_score(scores)
    assert mean["style"] == pytest.approx((scores[0].style + scores[1].style) / 2)


def test_cli_json_matches_the_api(tiny_model):
    result = CliRunner().invoke(main, ["evaluate", str(tiny_model), str(PHOTOS / "kodim03.jpg"), "--size", "64", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    api = evaluate(tiny_model, [PHOTOS / "kodim03.jpg"], size=64)[0]
    assert data["photos"][0]["total"] == pytest.approx(api.total, rel=1e-5)
    assert data["mean"]["total"] == pytest.approx(api.total, rel=1e-5)
    table = CliRunner().invoke(main, ["evaluate", str(tiny_model), str(PHOTOS / "kodim03.jpg"), "--size", "64"])
    assert table.exit_code == 0 and "kodim03.jpg" in table.output and "mean" in table.output


def test_model_without_style_cannot_be_evaluated(untrained_model_path):
    with pytest.raises(FileProblem, match="holds no style image and training options"):
        evaluate(untrained_model_path, [PHOTOS / "kodim01.jpg"], size=64)


def test_unreadable_photo_is_named_and_skipped_and_the_rest_evaluated(tiny_model, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("kodim01.jpg", "kodim02.jpg"):
        (folder / name).write_bytes((PHOTOS / name).read_bytes())
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    Image.open(PHOTOS / "kodim01.jpg").resize((40, 15)).save(folder / "strip.png")  # was an internal error in VGG
    result = CliRunner().invoke(main, ["evaluate", str(tiny_model), str(folder), "--size", "64"])
    assert result.exit_code == 1, result.output
    assert f"warning: {folder / 'broken.png'}: not a readable image" in result.stderr
    assert f"warning: {folder / 'strip.png'}: too small to score (40x15 pixels;" in result.stderr
    assert "2 photo(s) skipped (unreadable or too small)" in result.stderr
    assert "kodim01.jpg" in result.stdout and "kodim02.jpg" in result.stdout and "mean" in result.stdout
    as_json = CliRunner().invoke(main, ["evaluate", str(tiny_model), str(folder), "--size", "64", "--json"])
    assert as_json.exit_code == 1 and json.loads(as_json.stdout)["skipped"] == [str(folder / n) for n in ("broken.png", "strip.png")]


def test_lpips_is_the_lpips_packages_distance_on_our_vgg16():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision's notes on its deprecated 'pretrained' argument
        import lpips

        reference = lpips.LPIPS(net="vgg", pnet_rand=True, verbose=False)
    vgg = resolve_vgg_weights()[0]
    state = reference.state_dict()
    for key in state:
        if key.startswith("net.slice"):  # net.slice2.5.weight <- features 5.weight
            state[key] = vgg[key.split(".", 2)[2]]
    reference.load_state_dict(state)
    a = read_photo(PHOTOS / "kodim01.jpg", max_size=96).rgb[None]
    b = read_photo(PHOTOS / "kodim05.jpg", max_size=96).rgb[None]
    noisy = (a + 0.1 * torch.randn_like(a)).clamp(0, 1)
    ours = Lpips(vgg)
    for x, y in ((a, b), (a, noisy)):
        assert ours(x, y).item() == pytest.approx(reference(x, y, normalize=True).item(), rel=1e-5)
    assert ours(a, a).item() == 0 and ours(a, b).item() > ours(a, noisy).item() > 0


def test_lpips_is_reported_and_small_for_a_network_that_keeps_the_photo(tiny_model):
    scores = evaluate(tiny_model, [PHOTOS / "kodim01.jpg", PHOTOS / "kodim02.jpg"], size=64)
    assert all(0 <= s.lpips < 0.3 for s in scores)  # a residual network two steps from the identity
    assert mean_score(scores)["lpips"] == pytest.approx((scores[0].lpips + scores[1].lpips) / 2)
    table = CliRunner().invoke(main, ["evaluate", str(tiny_model), str(PHOTOS / "kodim01.jpg"), "--size", "64"])
    assert table.output.splitlines()[0].split() == ["photo", "content", "style", "tv", "total", "lpips", "palette"]


def test_the_palette_distance_is_reported_against_the_painting(tiny_model):
    from stst.model.checkpoint import load_checkpoint
    from stst.training.palette import palette_distance

    photos = [PHOTOS / "kodim01.jpg", PHOTOS / "kodim02.jpg"]
    painting = load_checkpoint(tiny_model).style_image.float() / 255
    for score, photo in zip(evaluate(tiny_model, photos, size=64), photos):
        # a network two steps from the identity: the picture's palette is the photo's
        assert score.palette == pytest.approx(palette_distance(read_photo(photo, max_size=64).rgb, painting), abs=1.5)
        assert score.palette > 5


def test_held_out_photos_are_those_the_shipped_set_lacks_whatever_their_format(tmp_path):
    """The tests' Kodak JPEGs against the quick recipe's shipped ones (the odd-numbered): kodim02 alone is unseen;
    against a set of other photos, all are."""
    assert [p.name for p in unseen_photos(PHOTOS)] == ["kodim02.jpg"]
    (tmp_path / "kodim01.png").write_bytes(b"")  # a name, not the pixels, says whether a run saw it
    (tmp_path / "kodim02.png").write_bytes(b"")
    assert [p.name for p in unseen_photos(tmp_path)] == ["kodim02.png"]
    assert unseen_photos(PHOTOS, STYLES) == sorted(PHOTOS.glob("*.jpg"))
