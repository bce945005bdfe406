import json

import pytest
from click.testing import CliRunner

from stst.cli import main
from stst.base.errors import FileProblem
from stst.training.evaluate import evaluate, mean_score
from stst.training.options import RunSettings, TrainOptions
from stst.training.train import train

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
    result = CliRunner().invoke(main, ["evaluate", str(tiny_model), str(folder), "--size", "64"])
    assert result.exit_code == 1, result.output
    assert f"warning: {folder / 'broken.png'}: not a readable image" in result.stderr
    assert "kodim01.jpg" in result.stdout and "kodim02.jpg" in result.stdout and "mean" in result.stdout
    as_json = CliRunner().invoke(main, ["evaluate", str(tiny_model), str(folder), "--size", "64", "--json"])
    assert as_json.exit_code == 1 and json.loads(as_json.stdout)["skipped"] == [str(folder / "broken.png")]
