"""Light variants: a narrower network distilled from a style model, and --light to use one."""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import asdict, replace

import pytest
import torch
from click.testing import CliRunner

from stst.model.bundled import resolve_model
from stst.model.checkpoint import load_model, save_checkpoint
from stst.cli import main
from stst.training.distill import DistillOptions, distill, distillation_loss
from stst.infer.engine import stylize_tensor
from stst.base.imageio import read_photo
from stst.model.network import ArchConfig, RealtimeNet, TransformerNet, build_network
from stst.training.options import options_from_dict

from conftest import PHOTOS, TRAIN

TEACHER = "udnie"
OPTIONS = DistillOptions(width=8, iterations=40, image_size=64, batch_size=2, lr=5e-3)


@pytest.fixture(scope="module")
def distilled(tmp_path_factory):
    folder = tmp_path_factory.mktemp("distill")
    teacher = folder / f"{TEACHER}.pth"
    shutil.copy(resolve_model(TEACHER)[0], teacher)
    student = folder / f"{TEACHER}-light.pth"
    distill(teacher, TRAIN, student, OPTIONS, device="cpu", progress=False, log=lambda message: None)
    return teacher, student


def test_the_student_learns_the_teachers_output(distilled):
    teacher_path, student_path = distilled
    photo = read_photo(PHOTOS / "kodim23.jpg", max_size=128).rgb[None]
    teacher, _ = load_model(teacher_path)
    student, ckpt = load_model(student_path)
    torch.manual_seed(OPTIONS.seed)  # the student's starting point, as distill() draws it
    untrained = TransformerNet(ArchConfig(channels=OPTIONS.width)).eval()
    target = stylize_tensor(teacher, photo)
    before = distillation_loss(stylize_tensor(untrained, photo), target).item()
    after = distillation_loss(stylize_tensor(student, photo), target).item()
    assert after < 0.75 * before
    assert ckpt.arch.channels == OPTIONS.width and sum(p.numel() for p in student.parameters()) < 0.1 * sum(
        p.numel() for p in teacher.parameters())


def test_the_student_keeps_the_teachers_style_and_says_where_it_came_from(distilled):
    teacher_path, student_path = distilled
    _, teacher = load_model(teacher_path)
    _, student = load_model(student_path)
    origin = student.metadata["distilled_from"]
    assert origin["model"] == teacher_path.name and origin["iterations"] == OPTIONS.iterations
    assert origin["sha256"] == hashlib.sha256(teacher_path.read_bytes()).hexdigest()
    assert (origin["teacher_width"], origin["width"]) == (32, OPTIONS.width)
    assert student.metadata["style"] == teacher.metadata["style"]
    teacher_options = asdict(options_from_dict(teacher.metadata["options"]))  # with options newer than the file
    assert student.metadata["options"] == {**teacher_options, "channels": OPTIONS.width}
    assert torch.equal(student.style_image, teacher.style_image)
    result = CliRunner().invoke(main, ["info", str(student_path)])
    assert result.exit_code == 0 and f"distilled from {teacher_path.name} (width 32" in result.output


def test_light_picks_the_variant_beside_the_model(distilled, tmp_path):
    teacher_path, _ = distilled
    result = CliRunner().invoke(main, ["stylize", str(PHOTOS / "kodim23.jpg"), "-m", str(teacher_path), "--light",
                                       "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / f"kodim23-{TEACHER}-light.jpg").is_file()


def test_light_without_a_variant_is_a_one_line_error(tmp_path):
    model = tmp_path / "solo.pth"
    shutil.copy(resolve_model(TEACHER)[0], model)
    result = CliRunner().invoke(main, ["stylize", str(PHOTOS / "kodim23.jpg"), "-m", str(model), "--light"])
    assert result.exit_code == 2
    assert result.output.strip() == (f"stst: error: {tmp_path / 'solo-light.pth'}: no light tier of solo "
                                     f"(it has: full; make one with: stst distill {model} --tier light --dataset PHOTOS)")


def test_distill_refuses_to_overwrite_and_names_a_missing_teacher(distilled, tmp_path):
    teacher_path, student_path = distilled
    result = CliRunner().invoke(main, ["distill", str(teacher_path), "--dataset", str(TRAIN), "-o", str(student_path)])
    assert result.exit_code == 2 and "exists" in result.output and result.output.count("\n") == 1
    result = CliRunner().invoke(main, ["distill", str(tmp_path / "nope.pth"), "--dataset", str(TRAIN)])
    assert result.exit_code == 2 and result.output.startswith(f"stst: error: {tmp_path / 'nope.pth'}: model file not found")


def test_a_realtime_tier_is_distilled_into_the_realtime_design(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    teacher = tmp_path / f"{TEACHER}.pth"
    shutil.copy(resolve_model(TEACHER)[0], teacher)
    result = CliRunner().invoke(main, ["distill", str(teacher), "--tier", "realtime", "--dataset", str(TRAIN),
                                       "--iterations", "2", "--workers", "0"])
    assert result.exit_code == 0, result.output
    _, ckpt = load_model(tmp_path / f"{TEACHER}-realtime.pth")  # the name --tier realtime looks for
    assert ckpt.arch == ArchConfig(channels=16, design="realtime") and ckpt.metadata["distilled_from"]["design"] == "realtime"
    shown = CliRunner().invoke(main, ["info", str(tmp_path / f"{TEACHER}-realtime.pth")])
    assert "realtime design, width 16" in shown.output and "7,848 MACs per pixel" in shown.output


def test_the_realtime_student_learns_the_teachers_output(tmp_path):
    options = replace(OPTIONS, design="realtime", lr=2e-2)  # it starts slower than Johnson's network
    teacher = resolve_model(TEACHER)[0]
    distill(teacher, TRAIN, tmp_path / "r.pth", options, device="cpu", progress=False, log=lambda message: None)
    student, ckpt = load_model(tmp_path / "r.pth")
    assert isinstance(student, RealtimeNet)
    photo = read_photo(PHOTOS / "kodim23.jpg", max_size=128).rgb[None]
    target = stylize_tensor(load_model(teacher)[0], photo)
    torch.manual_seed(options.seed)
    untrained = build_network(ckpt.arch).eval()
    before = distillation_loss(stylize_tensor(untrained, photo), target).item()
    assert distillation_loss(stylize_tensor(student, photo), target).item() < 0.9 * before


def test_a_teacher_whose_weights_are_not_finite_is_refused(tmp_path):
    """A broken model taught a black picture for all its iterations, and the student was written (exit 0)."""
    teacher = tmp_path / "broken.pth"
    model, ckpt = load_model(resolve_model(TEACHER)[0])
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] = float("nan")
    save_checkpoint(teacher, model, ckpt.metadata)
    student = tmp_path / "student.pth"
    result = CliRunner().invoke(main, ["distill", str(teacher), "--dataset", str(TRAIN), "-o", str(student),
                                       "--iterations", "50", "--width", "8", "--device", "cpu"])
    assert result.exit_code == 2
    assert f"{teacher}: holds weights that are not finite (a broken model?), so it cannot be distilled" in result.output
    assert not student.exists()
