"""What of training on a GPU runs without one: the recipe chosen per device, the losses read every few steps with
the steps whose loss is not finite skipped on the device, fused Adam, and NCCL or gloo."""

import json
import math
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from stst.base.distributed import group_backend
from stst.cli import main
from stst.model.checkpoint import load_checkpoint
from stst.training import train as training
from stst.training.datasets import SHIPPED_PHOTOS
from stst.training.options import PRESETS, RunSettings, TrainOptions, preset_for
from stst.training.train import TrainingError, TrainingPrecision, backward_step, loss_every, train

from conftest import STYLES, TRAIN

STYLE = STYLES / "starry_night.jpg"


def small_options(**kw):
    return TrainOptions(style=str(STYLE), dataset=str(TRAIN), image_size=64, style_size=128, batch_size=2, **kw)


def test_a_gpu_without_a_data_set_trains_the_quick_recipe_and_johnson_with_one():
    assert preset_for("cuda") == "gpu-quick" and preset_for("cuda", dataset_given=True) == "johnson"
    assert preset_for("mps") == "johnson" and preset_for("cpu") == "quick"
    quick = PRESETS["gpu-quick"]
    assert quick["image_size"] == 256 and quick["minutes"] * 60 <= 45 and quick["init"] == PRESETS["quick"]["init"]


def test_losses_are_read_every_few_steps_on_one_gpu_and_every_step_elsewhere():
    assert loss_every(torch.device("cuda")) == training.GPU_LOSS_EVERY > 1
    assert loss_every(torch.device("cuda"), world=2) == 1  # ranks agree on a failure before sharing gradients
    assert loss_every(torch.device("cpu")) == 1
    assert group_backend(torch.device("cuda")) == "nccl" and group_backend(torch.device("cpu")) == "gloo"


def test_a_fused_step_whose_loss_is_not_finite_leaves_the_weights_on_the_device():
    weight = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.Adam([weight], lr=0.1, fused=True)
    for scale, changed in ((float("nan"), False), (1.0, True)):
        backward_step({"total": (weight * scale).sum()}, optimizer, TrainingPrecision("fp32"))
        assert torch.equal(weight.detach(), torch.ones(3)) != changed
    assert optimizer.state[weight]["step"].item() == 1  # the skipped step did not count


def _every_three(monkeypatch):
    monkeypatch.setattr(training, "loss_every", lambda device, world=1: 3)
    monkeypatch.setattr(training, "fused_adam", lambda device: True)  # as on a GPU (CPUs have the fused kernel too)


def test_a_run_that_reads_every_third_step_logs_those_and_the_last(tmp_path, monkeypatch):
    _every_three(monkeypatch)
    out, log = tmp_path / "s.pth", tmp_path / "log.jsonl"
    losses = train(small_options(iterations=7), RunSettings(output=out, log=log, workers=0, progress=False))
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [3, 6, 7]
    assert load_checkpoint(out).metadata["losses"] == losses and losses["style"] == pytest.approx(rows[-1]["style"])


def test_a_loss_that_is_not_finite_between_readings_stops_the_run_with_finite_weights(tmp_path, monkeypatch):
    _every_three(monkeypatch)
    out = tmp_path / "x.pth"
    with pytest.raises(TrainingError, match=r"loss is not finite at iteration 3 .*2 step\(s\) since the last reading"):
        train(small_options(iterations=5, style_weight=float("inf")), RunSettings(output=out, workers=0,
                                                                                progress=False))
    saved = load_checkpoint(out)
    assert saved.metadata["iterations"] == 2
    assert all(bool(torch.isfinite(w).all()) for w in saved.state_dict.values())


def test_the_gpu_quick_recipe_runs_from_the_command_line_and_names_the_long_one(tmp_path):
    """Its start, photos, budget and closing note; its crops and batch (a GPU's: 7 s a step on a CPU) made small."""
    out = tmp_path / "mine.pth"
    result = CliRunner().invoke(main, ["train", "--style", str(STYLE), "--preset", "gpu-quick", "--minutes", "0.01",
                                       "--workers", "0", "--device", "cpu", "-o", str(out), "--image-size", "64",
                                       "--batch-size", "2", "--precision", "fp32", "--no-palette-fit"])
    assert result.exit_code == 0, result.output
    meta = load_checkpoint(out).metadata
    assert Path(meta["dataset"]["path"]) == SHIPPED_PHOTOS and meta["options"]["lr_schedule"] == "cosine"
    assert meta["init"]["name"] == f"{PRESETS['gpu-quick']['init']}.pth"
    assert math.isclose(meta["options"]["minutes"], 0.01)
    assert "(or --preset johnson, the paper's recipe on COCO" in result.stderr
