import json
from dataclasses import replace
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from stst.model.bundled import resolve_model
from stst.model.checkpoint import load_checkpoint, load_model, save_checkpoint
from stst.cli import main
from stst.base.errors import FileProblem
from stst.base.imageio import read_photo
from stst.model.network import ArchConfig, TransformerNet
from stst.training.data import FLAT_RAMP, lift_flat
from stst.training.datasets import SHIPPED_PHOTOS
from stst.training.options import PRESETS, RunSettings, TrainOptions, preset_for
from stst.training.palette import palette_distance
from stst.training.train import TrainingError, train

from conftest import PHOTOS, STYLES, TRAIN

STYLE = STYLES / "starry_night.jpg"


def small_options(dataset=TRAIN, **kw):
    """A CPU-sized run: 64 px crops, batch 2."""
    return TrainOptions(style=str(STYLE), dataset=str(dataset), image_size=64, style_size=128, batch_size=2, **kw)


def read_log(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_training_lowers_the_style_loss_and_writes_a_model(tmp_path):
    out, log = tmp_path / "s.pth", tmp_path / "log.jsonl"
    train(small_options(iterations=16), RunSettings(output=out, log=log, workers=0, progress=False))
    rows = read_log(log)
    assert [r["iteration"] for r in rows] == list(range(1, 17))
    first = sum(r["style"] for r in rows[:4]) / 4
    last = sum(r["style"] for r in rows[-4:]) / 4
    assert last < 0.9 * first
    model, ckpt = load_model(out)
    meta = ckpt.metadata
    assert meta["iterations"] == 16 and meta["style"]["name"] == "starry_night.jpg"
    assert len(meta["style"]["sha256"]) == 64 and meta["style"]["size"] == [80, 128]  # aspect kept
    assert meta["losses"]["style"] == pytest.approx(rows[-1]["style"])
    assert meta["options"]["image_size"] == 64 and meta["dataset"]["images"] == 5
    assert ckpt.style_image.shape == (3, 80, 128) and ckpt.style_image.dtype == torch.uint8
    assert model(torch.rand(1, 3, 30, 50)).shape == (1, 3, 30, 50)


def test_resume_reproduces_an_uninterrupted_run(tmp_path):
    full_log, part_log = tmp_path / "full.jsonl", tmp_path / "part.jsonl"
    train(small_options(iterations=6, seed=3), RunSettings(output=tmp_path / "full.pth", log=full_log, workers=0, progress=False))
    train(small_options(iterations=3, seed=3), RunSettings(output=tmp_path / "part.pth", log=part_log, workers=1, progress=False))
    train(None, RunSettings(output=tmp_path / "part.pth", log=part_log, workers=0, progress=False),
          resume=tmp_path / "part.pth", iterations=6)
    full, part = read_log(full_log), read_log(part_log)
    assert [r["iteration"] for r in part] == list(range(1, 7))
    for a, b in zip(full, part):
        for key in ("content", "style", "tv", "total"):
            assert a[key] == pytest.approx(b[key], rel=1e-5)
    a, _ = load_model(tmp_path / "full.pth")
    b, _ = load_model(tmp_path / "part.pth")
    x = torch.rand(1, 3, 32, 32)
    assert torch.allclose(a(x), b(x), atol=1e-4)


def test_empty_dataset_is_a_clear_error(tmp_path):
    (tmp_path / "notes.txt").write_text("no photos here")
    with pytest.raises(FileProblem, match="no images found"):
        train(small_options(dataset=tmp_path, iterations=1), RunSettings(output=tmp_path / "x.pth", workers=0))
    result = CliRunner().invoke(main, ["train", "--style", str(STYLE), "--dataset", str(tmp_path), "-o", str(tmp_path / "x.pth")])
    assert result.exit_code == 2 and "no images found" in result.output


def test_unreadable_images_are_skipped_and_counted(tmp_path, capsys):
    for name in ["kodim01.jpg", "kodim02.jpg"]:
        shutil.copy(PHOTOS / name, tmp_path / name)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    losses = train(small_options(dataset=tmp_path, iterations=4), RunSettings(output=tmp_path / "m.pth", workers=0, progress=False))
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    assert load_checkpoint(tmp_path / "m.pth").metadata["dataset"] == {"path": str(tmp_path), "images": 3, "unreadable": 1}
    assert "1 unreadable training image(s) were skipped" in capsys.readouterr().out


def test_only_unreadable_images_is_an_error(tmp_path):
    (tmp_path / "a.png").write_text("text")
    with pytest.raises(Exception, match="no readable image in the dataset"):
        train(small_options(dataset=tmp_path, iterations=1), RunSettings(output=tmp_path / "x.pth", workers=0, progress=False))


def test_non_finite_loss_stops_naming_the_iteration(tmp_path):
    with pytest.raises(TrainingError, match="loss is not finite at iteration 1"):
        train(small_options(iterations=2, style_weight=float("inf")), RunSettings(output=tmp_path / "x.pth", workers=0, progress=False))


def test_a_broken_model_to_fine_tune_is_refused_by_name(tmp_path):
    """A model whose weights are not finite gave 'loss is not finite at iteration 1; try a lower --lr'."""
    model, ckpt = load_model(resolve_model("shipwreck")[0])
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] = float("nan")
    save_checkpoint(tmp_path / "broken.pth", model, ckpt.metadata)
    with pytest.raises(FileProblem, match=r"broken\.pth: holds weights that are not finite \(a broken model\?\), so it "
                                          "cannot be fine-tuned"):
        train(small_options(iterations=2, init=str(tmp_path / "broken.pth")),
              RunSettings(output=tmp_path / "x.pth", workers=0, progress=False))
    assert not (tmp_path / "x.pth").exists()


def test_ctrl_c_leaves_a_checkpoint_and_resume_matches_an_uninterrupted_run(tmp_path):
    out, log, total = tmp_path / "s.pth", tmp_path / "log.jsonl", 15
    args = ["--style", STYLE, "--dataset", TRAIN, "--image-size", "64", "--style-size", "128", "--batch-size", "2",
            "--seed", "5", "--workers", "1", "--iterations", total]
    proc = subprocess.Popen([sys.executable, "-m", "stst", "train", *map(str, args), "-o", out, "--log", log],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 3):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert f"Resume with: stst train --resume {out}" in stderr
    ckpt = load_checkpoint(out)
    done = ckpt.metadata["iterations"]
    assert 3 <= done < total and ckpt.training["optimizer"]["state"]

    resumed = subprocess.run([sys.executable, "-m", "stst", "train", "--resume", str(out), "--log", str(log)],
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    straight_log = tmp_path / "u.jsonl"
    straight = CliRunner().invoke(main, ["train", *map(str, args), "-o", str(tmp_path / "u.pth"), "--log",
                                         str(straight_log)])  # in this process: no second start-up
    assert straight.exit_code == 0, straight.output
    resumed_rows, straight_rows = read_log(log), read_log(straight_log)
    assert [r["iteration"] for r in resumed_rows] == list(range(1, total + 1))
    for a, b in zip(resumed_rows, straight_rows):
        assert a["total"] == pytest.approx(b["total"], rel=1e-5)
    assert load_checkpoint(out).metadata["losses"]["total"] == pytest.approx(straight_rows[-1]["total"], rel=1e-5)


def test_cli_train_writes_a_model_that_stylize_uses(tmp_path):
    out = tmp_path / "tiny.pth"
    result = CliRunner().invoke(main, ["train", "--style", str(STYLE), "--dataset", str(TRAIN), "--iterations", "2",
                                       "--image-size", "32", "--style-size", "64", "--batch-size", "1", "-o", str(out),
                                       "--preview", str(PHOTOS / "kodim23.jpg"), "--preview-every", "1", "--workers", "0"])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output
    assert Image.open(tmp_path / "tiny-preview-000002.jpg").size == (384, 256)
    photo = tmp_path / "p.png"
    Image.open(PHOTOS / "kodim23.jpg").resize((60, 40)).save(photo)
    assert CliRunner().invoke(main, ["stylize", str(photo), "-m", str(out), "--backend", "torch"]).exit_code == 0
    assert Image.open(tmp_path / "p-tiny.png").size == (60, 40)


def test_bad_style_layer_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(main, ["train", "--style", str(STYLE), "--dataset", str(TRAIN), "--style-layers",
                                       "relu1_2,relu9_9", "-o", str(tmp_path / "x.pth")])
    assert result.exit_code == 2 and "unknown VGG16 layer(s) relu9_9" in result.output


def test_bf16_autocast_keeps_grams_and_losses_in_fp32_and_trains(tmp_path):
    from stst.training.losses import build_loss, gram
    from stst.training.train import _load_style, backward_step, forward_losses, training_precision
    from stst.training.weights import resolve_vgg_weights

    assert gram(torch.rand(2, 8, 5, 5, dtype=torch.bfloat16)).dtype == torch.float32
    options = small_options(iterations=3)
    net = TransformerNet(ArchConfig(channels=8)).train()
    precision = training_precision(torch.device("cpu"), "bf16", net)
    loss_fn = build_loss(options, _load_style(options), resolve_vgg_weights()[0],
                         torch.device("cpu"))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    x = read_photo(TRAIN / "kodim23.jpg", max_size=32).rgb[None]
    totals = []
    for _ in range(4):
        terms = forward_losses(net, loss_fn, x, precision)
        assert all(t.dtype == torch.float32 and torch.isfinite(t) for t in terms.values())
        backward_step(terms, optimizer, precision)
        totals.append(terms["total"].item())
    assert totals[-1] < totals[0]
    assert training_precision(torch.device("cpu"), "fp32", net).dtype is None


def test_minutes_stops_on_time_with_the_schedule_fitted_to_the_budget(tmp_path):
    out, log = tmp_path / "b.pth", tmp_path / "b.jsonl"
    budget = 4.0
    train(small_options(iterations=100_000, minutes=budget / 60, lr=1e-3, lr_schedule="cosine"),
          RunSettings(output=out, log=log, workers=0, progress=False))
    meta = load_checkpoint(out).metadata
    rows = read_log(log)
    step = max(b["seconds"] - a["seconds"] for a, b in zip(rows, rows[1:]))
    assert budget <= meta["train_seconds"] < budget + step + 0.5
    assert 2 < meta["iterations"] == len(rows) < 100_000
    assert meta["options"]["minutes"] == pytest.approx(budget / 60)
    model, _ = load_model(out)
    assert model(torch.rand(1, 3, 24, 24)).shape == (1, 3, 24, 24)


def test_a_budget_run_resumes_to_its_new_budget(tmp_path):
    out, log = tmp_path / "b.pth", tmp_path / "b.jsonl"
    train(small_options(iterations=100_000, minutes=2 / 60), RunSettings(output=out, log=log, workers=0, progress=False))
    first = load_checkpoint(out).metadata
    train(None, RunSettings(output=out, log=log, workers=0, progress=False), resume=out, minutes=4 / 60)
    meta = load_checkpoint(out).metadata
    assert 4.0 <= meta["train_seconds"] and meta["iterations"] > first["iterations"]
    assert [r["iteration"] for r in read_log(log)] == list(range(1, meta["iterations"] + 1))
    assert meta["options"]["minutes"] == pytest.approx(4 / 60)


def test_the_quick_recipe_is_the_cpu_default_and_needs_no_data_set(tmp_path):
    assert preset_for("cpu") == "quick" and preset_for("cpu", dataset_given=True) == "quick"
    out = tmp_path / "mine.pth"
    result = CliRunner().invoke(main, ["train", "--style", str(STYLE), "--minutes", "0.05", "--workers", "0",
                                       "--device", "cpu", "-o", str(out)])
    assert result.exit_code == 0, result.output
    meta = load_checkpoint(out).metadata
    assert Path(meta["dataset"]["path"]) == SHIPPED_PHOTOS and meta["dataset"]["images"] == 12
    assert meta["init"]["name"] == f"{PRESETS['quick']['init']}.pth" and meta["options"]["minutes"] == 0.05
    assert meta["train_seconds"] >= 3.0
    assert f"note: a quick model (3 seconds); for a better one: stst train --style {STYLE} --minutes 30" in result.stderr
    assert "left" in result.stderr  # the progress bar counts the budget down
    assert result.stderr.count("100%") == 1 and "left, ," not in result.stderr  # its last line once, no empty field
    assert "palette=" in result.stderr and "palette " in result.output
    assert meta["options"]["palette_fit"] and len(meta["colour_map"]["matrix"]) == 3  # the colours fitted at the end
    info = CliRunner().invoke(main, ["info", str(out)])
    assert info.exit_code == 0 and f"fine-tuned from {PRESETS['quick']['init']}.pth" in info.output
    assert "colours fitted to the painting" in info.output


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "0"])
def test_a_budget_that_is_not_a_finite_positive_number_is_a_usage_error(tmp_path, value):
    out = tmp_path / "never.pth"
    result = CliRunner().invoke(main, ["train", "--style", str(STYLE), "--minutes", value, "-o", str(out)])
    assert result.exit_code == 2 and "--minutes" in result.stderr
    assert not out.exists()


@pytest.mark.parametrize("option", ["--content-weight", "--style-weight", "--tv-weight", "--palette-weight"])
def test_a_negative_loss_weight_is_a_usage_error(tmp_path, option):
    """A negative weight would train toward the opposite of its term; the help shows each bound (an unbounded
    range once read "[x<=None]")."""
    out = tmp_path / "never.pth"
    result = CliRunner().invoke(main, ["train", "--style", str(STYLE), option, "-1", "-o", str(out)])
    assert result.exit_code == 2 and option in result.stderr and "x>=0" in result.stderr
    assert not out.exists()
    for command in main.commands:
        assert "None]" not in CliRunner().invoke(main, [command, "--help"]).output, command


def test_a_thumbnail_painting_is_noted_as_enlarged(tmp_path):
    """The run's log gets the note where it reads the painting (stst train prints it on stderr)."""
    from stst.training.train import _load_style

    Image.open(STYLE).resize((48, 30)).save(tmp_path / "thumb.png")
    notes = []
    for style, size in ((tmp_path / "thumb.png", 128), (STYLE, 512)):  # 256 px to 512: twice, no note
        _load_style(replace(small_options(), style=str(style), style_size=size), notes.append)
    assert notes == [f"note: {tmp_path / 'thumb.png'} is only 48x30 pixels, enlarged 3x to 128 (--style-size): the "
                     "style's strokes come out blurred; a larger picture of the painting gives a better style"]


def test_a_photo_of_one_colour_is_lifted_and_the_others_are_left_exactly_as_they_were():
    photos = torch.rand(4, 3, 20, 30, dtype=torch.float64)
    photos[1], photos[2] = 0.0, 1.0  # black, white
    photos[3] = torch.tensor([1.0, 0.2, 0.0], dtype=torch.float64)[:, None, None]  # one colour, not one grey
    lifted = lift_flat(photos)
    assert torch.equal(lifted[0], photos[0])
    for i in (1, 2, 3):
        assert lifted[i].amin() >= 0 and lifted[i].amax() <= 1
        assert (lifted[i] - photos[i]).abs().amax() == pytest.approx(FLAT_RAMP)
        assert lifted[i].var(dim=(-2, -1)).amin() > 0
    assert lifted[1].mean() > 0 and lifted[2].mean() < 1


def test_a_black_photo_in_the_folder_trains_to_finite_losses(tmp_path):
    """It ended training in 'loss is not finite' at its second step (zero variance at every instance norm)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.new("RGB", (96, 64)).save(folder / "black.png")
    shutil.copy(TRAIN / "kodim01.jpg", folder)
    losses = train(replace(small_options(iterations=4, init="shipwreck"), dataset=str(folder)),
                   RunSettings(output=tmp_path / "m.pth", workers=0, progress=False), log=lambda m: None)
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())


def test_the_palette_term_trains_and_is_logged(tmp_path):
    out, log = tmp_path / "p.pth", tmp_path / "p.jsonl"
    train(small_options(iterations=6, palette_weight=1e4, lr=5e-3),
          RunSettings(output=out, log=log, workers=0, progress=False))
    rows = read_log(log)
    assert all(r["palette"] > 0 for r in rows) and rows[-1]["palette"] < rows[0]["palette"]
    assert all(r["total"] == pytest.approx(r["content"] + r["style"] + r["tv"] + r["palette"]) for r in rows)
    assert load_checkpoint(out).metadata["options"]["palette_weight"] == 1e4


def test_the_colour_fit_moves_the_trained_network_to_the_painting_palette_in_its_last_layer(tmp_path):
    plain, fitted = tmp_path / "plain.pth", tmp_path / "fitted.pth"
    for out, fit in ((plain, False), (fitted, True)):
        train(small_options(iterations=2, init="shipwreck", palette_fit=fit),  # a trained network, as the quick recipe's
              RunSettings(output=out, workers=0, progress=False))
    a, b = load_checkpoint(plain), load_checkpoint(fitted)
    assert "colour_map" not in a.metadata
    matrix, shift = (torch.tensor(b.metadata["colour_map"][k]) for k in ("matrix", "shift"))
    changed = {k for k in a.state_dict if not torch.equal(a.state_dict[k], b.state_dict[k])}
    assert changed == {"deconv3.conv2d.weight", "deconv3.conv2d.bias"}  # the same steps, then the map folded in
    painting = read_photo(STYLE, max_size=128).rgb
    photo = read_photo(PHOTOS / "kodim23.jpg", max_size=128).rgb[None]
    with torch.no_grad():
        distances = [palette_distance(load_model(path)[0](photo).clamp(0, 1), painting) for path in (plain, fitted)]
    assert distances[1] < 0.7 * distances[0] and not torch.equal(matrix, torch.eye(3)) and shift.abs().sum() > 0


def test_a_fitted_model_resumes_from_its_trained_weights_not_the_map(tmp_path):
    straight, resumed = tmp_path / "straight.pth", tmp_path / "resumed.pth"
    options = small_options(iterations=4, init="shipwreck", palette_fit=True)
    train(options, RunSettings(output=straight, workers=0, progress=False))
    train(replace(options, iterations=2), RunSettings(output=resumed, workers=0, progress=False))
    assert set(load_checkpoint(resumed).training["unfitted"]) == {"deconv3.conv2d.weight", "deconv3.conv2d.bias"}
    train(None, RunSettings(output=resumed, workers=0, progress=False), resume=resumed, iterations=4)
    a, b = load_checkpoint(straight), load_checkpoint(resumed)
    for name, weight in a.state_dict.items():
        assert torch.allclose(weight, b.state_dict[name], atol=1e-5), name
    for part in ("matrix", "shift"):  # nested lists: pytest.approx (9.2) takes no nested dictionaries
        fitted, again = (torch.tensor(m.metadata["colour_map"][part], dtype=torch.float64) for m in (a, b))
        assert torch.allclose(fitted, again, rtol=1e-6, atol=1e-12), part  # pytest.approx's own tolerances


def test_a_residual_network_trains_without_the_colour_fit_and_says_so(tmp_path):
    out = tmp_path / "r.pth"
    result = CliRunner().invoke(main, ["train", "--style", str(STYLE), "--dataset", str(TRAIN), "--iterations", "1",
                                       "--residual", "--width", "8", "--image-size", "32", "--workers", "0",
                                       "--device", "cpu", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "no colour fit" in result.stderr and "colour_map" not in load_checkpoint(out).metadata
