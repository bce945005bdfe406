"""Bad input and bad environments: one error line, the documented exit code, and no user file lost.

Each test names the row of issue 9 it covers.
"""

from __future__ import annotations

import io
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from stst.model.checkpoint import load_checkpoint, save_checkpoint
from stst.cli import main
from stst.model.network import ArchConfig
from stst.training.options import RunSettings, TrainOptions
from stst.training.train import TrainingError, train

from conftest import HEIF, PHOTOS, STYLES, TRAIN, answers_ctrl_c, fresh_network, make_clip

STYLE = STYLES / "starry_night.jpg"


def run(*args, env=None):
    return CliRunner(env=env).invoke(main, [str(a) for a in args])


def assert_one_line_error(result, code: int, *fragments: str) -> str:
    """The command failed with ``code`` and said why in exactly one ``stst: error:`` line, with no traceback."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("stst: error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


@pytest.fixture
def small_model(tmp_path: Path) -> Path:
    """An untrained narrow network (8 channels): fast enough for many runs."""
    path = tmp_path / "small.pth"
    save_checkpoint(path, fresh_network(config=ArchConfig(channels=8)))
    return path


def photo(path: Path, size=(48, 32), source="kodim23.jpg") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.open(PHOTOS / source).resize(size).save(path)
    return path


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def bomb_png(path: Path, side: int = 40000) -> Path:
    """A real 1-bit PNG of side x side pixels: a few hundred KB on disk, gigabytes once decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" * (1 + (side + 7) // 8)
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row * 1000) for _ in range(side // 1000)) + packer.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


# --- stylize ---------------------------------------------------------------------------------------------------

def test_row1_output_with_trailing_slash_is_a_new_folder(tmp_path, small_model):
    src = photo(tmp_path / "a.jpg")
    result = run("stylize", src, "-m", small_model, "-o", f"{tmp_path / 'newdir'}/")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "newdir").is_dir()
    assert Image.open(tmp_path / "newdir" / "a-small.jpg").size == (48, 32)


def test_row2_decompression_bomb_is_refused_before_decoding_and_the_rest_converted(tmp_path, small_model):
    src = tmp_path / "pics"
    photo(src / "good.png")
    bomb_png(src / "bomb.png")
    assert (src / "bomb.png").stat().st_size < 1_000_000
    result = run("stylize", src, "-m", small_model)
    assert result.exit_code == 1, result.output
    assert "bomb.png: 40000x40000 is 1600 megapixels, more than the limit" in result.stderr
    assert "--max-pixels" in result.stderr and "Traceback" not in result.output
    assert "1 stylized, 0 skipped, 1 failed" in result.output
    assert (tmp_path / "pics-small" / "good-small.png").is_file()
    # the limit is an option: lowered, it refuses an ordinary photo too
    lowered = run("stylize", src / "good.png", "-m", small_model, "--max-pixels", "1000", "-o", tmp_path / "x.png")
    assert lowered.exit_code == 1 and "48x32 is 0 megapixels, more than the limit of 0.001" in lowered.stderr


def test_row11_animated_images_say_only_the_first_frame_is_used(tmp_path, small_model):
    frames = [Image.open(PHOTOS / name).resize((40, 30)) for name in ("kodim01.jpg", "kodim02.jpg", "kodim03.jpg")]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    result = run("stylize", tmp_path / "anim.gif", "-m", small_model)
    assert result.exit_code == 0, result.output
    assert "anim.gif: has 3 frames (animated or multipage); only the first is stylized" in result.stderr
    assert Image.open(tmp_path / "anim-small.png").size == (40, 30)


def test_row12_non_finite_output_writes_nothing_and_names_the_model(tmp_path):
    net = fresh_network(config=ArchConfig(channels=8))
    with torch.no_grad():
        net.conv1.conv2d.weight.fill_(float("nan"))
    save_checkpoint(tmp_path / "nan.pth", net)
    src = photo(tmp_path / "a.jpg")
    result = run("stylize", src, "-m", tmp_path / "nan.pth")
    assert result.exit_code == 1, result.output
    assert f"{tmp_path / 'nan.pth'} produced NaN or infinite values" in result.stderr
    assert not (tmp_path / "a-nan.jpg").exists() and no_temp_files(tmp_path)


def test_row13_an_image_given_as_model_is_named(tmp_path):
    src = photo(tmp_path / "a.png")
    result = run("stylize", src, "-m", src)
    assert_one_line_error(result, 2, f"{src}: not a model file (it is a PNG image)")


def test_row14_temporary_files_of_a_killed_run_are_removed_by_the_next(tmp_path, small_model):
    src = tmp_path / "pics"
    for name in ("a", "b"):
        photo(src / f"{name}.jpg")
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = out / f".a-small.jpg.stst-{int(dead.stdout)}-x1y2z3.tmp"
    stale.write_bytes(b"half a jpeg")
    result = run("stylize", src, "-m", small_model, "-o", out)
    assert result.exit_code == 0, result.output
    assert "2 stylized, 0 skipped, 0 failed" in result.output
    assert not stale.exists() and no_temp_files(out)
    # hidden temporary files in an input folder are never inputs
    (src / ".b.jpg.stst-1-abc.tmp").write_bytes(b"x")
    again = run("stylize", src, "-m", small_model, "-o", tmp_path / "again")
    assert "2 stylized" in again.output


def test_row15_format_contradicting_the_output_name_is_refused(tmp_path, small_model):
    src = photo(tmp_path / "a.jpg")
    result = run("stylize", src, "-m", small_model, "--format", "png", "-o", tmp_path / "out.jpg")
    assert_one_line_error(result, 2, "--format png contradicts the output name")
    assert not (tmp_path / "out.jpg").exists()
    agree = run("stylize", src, "-m", small_model, "--format", "jpeg", "-o", tmp_path / "out.jpg")
    assert agree.exit_code == 0 and Image.open(tmp_path / "out.jpg").format == "JPEG"


def test_row15b_an_image_named_as_a_clip_or_unknown_format_is_refused_unless_format_names_one(tmp_path, small_model):
    """A photo written to ``-o out.mp4`` was a PNG under a video's name; a name without an extension keeps the
    input's format."""
    src = photo(tmp_path / "a.jpg")
    for name in ("out.mp4", "out.heic"):
        result = run("stylize", src, "-m", small_model, "-o", tmp_path / name)
        assert_one_line_error(result, 2, f"{tmp_path / name}: an image cannot be written as {name[3:]} (name it .jpg,")
        assert not (tmp_path / name).exists()
    assert run("stylize", src, "-m", small_model, "--format", "png", "-o", tmp_path / "out.dat").exit_code == 0
    assert run("stylize", src, "-m", small_model, "-o", tmp_path / "plain").exit_code == 0
    assert Image.open(tmp_path / "out.dat").format == "PNG" and Image.open(tmp_path / "plain").format == "JPEG"


def test_row15c_sound_alone_fails_as_a_clip_without_pictures(tmp_path, small_model):
    """An .m4a, or an .mp4 of sound alone, was 'not a readable image (no image format that Pillow knows)'."""
    for name in ("voice.m4a", "voice.mp4"):
        make_clip(tmp_path / name, pictures=False)
        result = run("stylize", tmp_path / name, "-m", small_model)
        assert result.exit_code == 1 and f"failed: {tmp_path / name}: has no video stream (sound alone)" in result.stderr


def test_row16_the_output_folder_is_never_an_input(tmp_path, small_model):
    src = tmp_path / "pics"
    photo(src / "a.jpg")
    photo(src / "sub" / "b.jpg")
    for _ in range(2):
        result = run("stylize", src, "-r", "-o", f"{src / 'out'}/", "-m", small_model, "--overwrite")
        assert result.exit_code == 0, result.output
        assert "2 stylized" in result.output
    assert sorted(p.relative_to(src / "out").as_posix() for p in (src / "out").rglob("*.jpg")) == [
        "a-small.jpg", "sub/b-small.jpg"]
    same = run("stylize", src, "-o", src, "-m", small_model)
    assert_one_line_error(same, 2, "the output folder is the input folder")


def test_dot_as_input_folder_gets_a_sibling_output_folder(tmp_path, small_model, monkeypatch):
    src = tmp_path / "pics"
    photo(src / "a.jpg")
    monkeypatch.chdir(src)
    result = run("stylize", ".", "-m", small_model)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "pics-small" / "a-small.jpg").is_file()


def test_row19_ctrl_c_during_stylize_exits_130_with_a_summary(tmp_path, small_model):
    src = tmp_path / "pics"
    for i in range(40):
        photo(src / f"p{i:02d}.png", size=(320, 240), source=["kodim01.jpg", "kodim02.jpg"][i % 2])
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "stst", "stylize", str(src), "-m", str(small_model), "-o", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=answers_ctrl_c)
    deadline = time.time() + 120
    while time.time() < deadline and not (out.is_dir() and any(out.glob("*.png"))):
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    line = next(line for line in stderr.splitlines() if line.startswith("stst: interrupted:"))
    done = len(list(out.glob("*.png")))
    assert f"{done} stylized, 0 skipped, 0 failed, {40 - done} not started" in line
    assert 1 <= done < 40 and no_temp_files(out)
    for path in out.glob("*.png"):  # every file under a final name is complete
        Image.open(path).load()


# --- model files -----------------------------------------------------------------------------------------------

def _payload(**changes) -> dict:
    net = fresh_network(config=ArchConfig(channels=8))
    payload = {"format": "stst-model", "version": 1, "arch": {"channels": 8, "residual": False},
               "state_dict": net.state_dict(), "metadata": {}}
    payload.update(changes)
    return {k: v for k, v in payload.items() if v is not None}


@pytest.mark.parametrize("name, content, problem", [
    ("empty", b"", "not a model file (it is an empty file)"),
    ("random", bytes(range(256)) * 8, "not a PyTorch model file, or it is truncated or corrupt"),
    ("truncated", "cut", "truncated or corrupt"),
    ("no weights", _payload(state_dict=None), "no weights in the file"),
    ("missing key", "missing", "weights do not fit the network (missing"),
    ("metadata list", _payload(metadata=[1, 2]), "invalid metadata (a list, not a dict)"),
    ("metadata style str", _payload(metadata={"style": "x"}), "invalid metadata: 'style' is a str"),
    ("arch str", _payload(arch="big"), "invalid architecture settings"),
    ("huge arch", _payload(arch={"channels": 10_000_000, "residual": False}), "10000000 channels (allowed: 1 to 512)"),
    ("bad style image", _payload(style_image=torch.zeros(2, 2)), "invalid style image"),
])
def test_row7_row18_broken_model_files_get_one_line(tmp_path, name, content, problem):
    path = tmp_path / "m.pth"
    if content == "cut":
        torch.save(_payload(), path)
        path.write_bytes(path.read_bytes()[:3000])
    elif content == "missing":
        payload = _payload()
        del payload["state_dict"]["in3.weight"]
        torch.save(payload, path)
    elif isinstance(content, dict):
        torch.save(content, path)
    else:
        path.write_bytes(content)
    src = photo(tmp_path / "a.jpg")
    for command in (["stylize", src, "-m", path], ["export", path, "--format", "onnx", "-o", tmp_path / "x.onnx"],
                    ["evaluate", path, src]):
        assert_one_line_error(run(*command), 2, f"{path}: ", problem)


def test_row18_huge_arch_is_refused_before_allocating(tmp_path):
    path = tmp_path / "m.pth"
    torch.save(_payload(arch={"channels": 10_000_000, "residual": False}), path)
    start = time.perf_counter()
    with pytest.raises(Exception, match="10000000 channels"):
        load_checkpoint(path)
    assert time.perf_counter() - start < 5


# --- export ----------------------------------------------------------------------------------------------------

def test_row4_export_never_replaces_the_source_and_asks_before_replacing_a_file(tmp_path, small_model):
    before = small_model.read_bytes()
    result = run("export", small_model, "--format", "torchscript", "-o", small_model, "--overwrite")
    assert_one_line_error(result, 2, "would overwrite an input file")
    assert small_model.read_bytes() == before
    other = tmp_path / "existing.pt"
    other.write_bytes(b"keep me")
    assert_one_line_error(run("export", small_model, "--format", "torchscript", "-o", other), 2, "exists",
                          "--overwrite")
    assert other.read_bytes() == b"keep me"
    assert run("export", small_model, "--format", "torchscript", "-o", other, "--overwrite").exit_code == 0
    assert other.read_bytes() != b"keep me"


def test_row5_unwritable_export_target_is_one_line(tmp_path, small_model):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    result = run("export", small_model, "--format", "torchscript", "-o", blocker / "m.pt")
    assert_one_line_error(result, 2, "cannot write the export here", "is a file, not a folder")


def test_output_under_a_regular_file_is_one_line_for_the_run(tmp_path, small_model):
    src = tmp_path / "pics"
    for name in ("a.png", "b.png", "c.png"):
        photo(src / name)
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    for output in (blocker, blocker / "sub", f"{blocker}/"):
        result = run("stylize", src, "-m", small_model, "-o", output)
        assert_one_line_error(result, 2, f"cannot write the outputs here ({blocker} is a file, not a folder)")
        assert "failed:" not in result.stderr
    assert blocker.read_text() == "x"


# --- train -----------------------------------------------------------------------------------------------------

TRAIN_ARGS = ["--image-size", "32", "--style-size", "64", "--batch-size", "1", "--width", "8", "--workers", "0"]


def train_cli(*args, env=None):
    return run("train", *args, *TRAIN_ARGS, env=env)


def test_row3_train_refuses_to_replace_files_and_never_replaces_inputs(tmp_path):
    dataset = tmp_path / "photos"
    photo(dataset / "a.jpg", size=(64, 48))
    photo(dataset / "b.jpg", size=(64, 48), source="kodim01.jpg")
    existing = tmp_path / "notes.pth"
    existing.write_bytes(b"precious")
    result = train_cli("--style", STYLE, "--dataset", dataset, "--iterations", "1", "-o", existing)
    assert_one_line_error(result, 2, f"{existing}: exists", "--overwrite")
    assert existing.read_bytes() == b"precious"
    style_copy = tmp_path / "style.jpg"
    style_copy.write_bytes(STYLE.read_bytes())
    for victim in (style_copy, dataset / "a.jpg"):
        before = victim.read_bytes()
        result = train_cli("--style", style_copy, "--dataset", dataset, "--iterations", "1", "-o", victim, "--overwrite")
        assert_one_line_error(result, 2, "would overwrite an input file")
        assert victim.read_bytes() == before
    ok = train_cli("--style", style_copy, "--dataset", dataset, "--iterations", "1", "-o", existing, "--overwrite")
    assert ok.exit_code == 0, ok.output
    assert load_checkpoint(existing).metadata["iterations"] == 1


def test_row5_unwritable_output_or_log_fails_before_training(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    start = time.perf_counter()
    result = train_cli("--style", STYLE, "--dataset", TRAIN, "--iterations", "1000", "-o", blocker / "m.pth")
    assert_one_line_error(result, 2, f"{blocker / 'm.pth'}: cannot write the model here")
    result = train_cli("--style", STYLE, "--dataset", TRAIN, "--iterations", "1000", "-o", tmp_path / "m.pth",
                       "--log", blocker / "log.jsonl")
    assert_one_line_error(result, 2, "cannot write the log here")
    assert time.perf_counter() - start < 20  # refused up front, not after 1000 iterations
    assert not (tmp_path / "m.pth").exists()


def test_row5_failed_final_write_keeps_the_work_and_says_where(tmp_path, monkeypatch):
    import stst.training.train as train_module

    real_save = train_module.save_checkpoint
    out = tmp_path / "m.pth"
    calls = []

    def disk_full_at_the_end(path, *args, **kwargs):
        calls.append(path)
        if Path(path) == out and len(calls) > 1:
            raise OSError(28, "No space left on device")
        return real_save(path, *args, **kwargs)

    monkeypatch.setattr(train_module, "save_checkpoint", disk_full_at_the_end)
    options = TrainOptions(style=str(STYLE), dataset=str(TRAIN), image_size=32, style_size=64, batch_size=1,
                           iterations=2, channels=8)
    with pytest.raises(TrainingError) as info:
        train(options, RunSettings(output=out, workers=0, progress=False, checkpoint_every=1), log=lambda m: None)
    message = str(info.value)
    assert f"cannot write {out} (No space left on device)" in message and "\n" not in message
    rescued = Path(message.split("saved to ")[1].split(" instead")[0])
    assert load_checkpoint(rescued).metadata["iterations"] == 2
    assert load_checkpoint(out).metadata["iterations"] == 1  # the last good checkpoint is intact
    rescued.unlink()


def test_row8_undecodable_training_photos_in_a_worker_are_named_and_skipped(tmp_path):
    dataset = tmp_path / "photos"
    for name in ("kodim01.jpg", "kodim02.jpg", "kodim03.jpg"):
        photo(dataset / name, size=(64, 48), source=name)
    (dataset / "cut.jpg").write_bytes((PHOTOS / "kodim05.jpg").read_bytes()[:2000])
    (dataset / "text.png").write_text("not an image")
    Image.new("RGB", (1, 1)).save(dataset / "dot.png")
    args = ["--style", STYLE, "--dataset", dataset, "--iterations", "6", "-o", tmp_path / "m.pth",
            "--image-size", "32", "--style-size", "64", "--batch-size", "2", "--width", "8", "--workers", "1"]
    result = run("train", *args)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert "text.png: not a readable image (it is a text file)" in result.stderr  # warnings on stderr
    assert "unreadable" not in result.stdout
    assert "unreadable training image(s) were skipped" in result.stderr
    (dataset / "kodim01.jpg").write_text("gone")
    (dataset / "kodim02.jpg").write_text("gone")
    (dataset / "kodim03.jpg").write_text("gone")
    bad = run("train", *args, "--overwrite")
    assert_one_line_error(bad, 2, "are unreadable; fix or remove them")


def test_row9_row10_resume_uses_absolute_paths_and_refuses_weight_options(tmp_path, monkeypatch):
    data = tmp_path / "work" / "photos"
    for name in ("kodim01.jpg", "kodim02.jpg"):
        photo(data / name, size=(64, 48), source=name)
    monkeypatch.chdir(tmp_path / "work")
    first = train_cli("--style", STYLE, "--dataset", "photos", "--iterations", "2", "-o", "m.pth")
    assert first.exit_code == 0, first.output
    ckpt = tmp_path / "work" / "m.pth"
    assert load_checkpoint(ckpt).metadata["options"]["dataset"] == str(data)
    monkeypatch.chdir(tmp_path)
    refused = run("train", "--resume", ckpt, "--iterations", "4", "--style-weight", "1e9")
    assert_one_line_error(refused, 2, "--style-weight cannot change when resuming")
    moved = tmp_path / "moved"
    data.rename(moved)
    resumed = run("train", "--resume", ckpt, "--iterations", "3", "--dataset", moved, "--workers", "0")
    assert resumed.exit_code == 0, resumed.output
    assert f"note: resuming with the data set {moved}" in resumed.stderr
    meta = load_checkpoint(ckpt).metadata
    assert meta["iterations"] == 3 and meta["options"]["dataset"] == str(moved)


def test_row7_corrupt_resume_checkpoint_is_one_line(tmp_path):
    payload = _payload(training={"optimizer": {}}, style_image=torch.zeros(3, 8, 8, dtype=torch.uint8),
                       metadata={"options": {"style": "s.jpg", "dataset": str(TRAIN), "image_size": "big"},
                                 "iterations": 1, "train_seconds": 1.0})
    torch.save(payload, tmp_path / "c.pth")
    result = run("train", "--resume", tmp_path / "c.pth")
    assert_one_line_error(result, 2, "cannot be resumed: corrupt training state", "image_size")


def test_row7_corrupt_unfitted_weights_in_a_resume_checkpoint_are_one_line(tmp_path):
    made = train_cli("--style", STYLE, "--dataset", TRAIN, "--iterations", "1",
                     "-o", tmp_path / "f.pth")  # the quick recipe: a finished run keeps the weights its map replaced
    assert made.exit_code == 0, made.output
    payload = torch.load(tmp_path / "f.pth", weights_only=True)
    payload["training"]["unfitted"] = {"deconv3.conv2d.weight": torch.zeros(1)}
    torch.save(payload, tmp_path / "f.pth")
    result = run("train", "--resume", tmp_path / "f.pth", "--iterations", "2")
    assert_one_line_error(result, 2, "cannot be resumed: corrupt training state", "weights that do not fit")


# --- environment -----------------------------------------------------------------------------------------------

def test_row6_unusable_stst_home_only_matters_to_commands_that_cache(tmp_path, small_model):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    env = {"STST_HOME": str(blocker / "home")}
    src = photo(tmp_path / "a.jpg")
    assert run("stylize", src, "-m", small_model, env=env).exit_code == 0
    assert run("models", env=env).exit_code == 0
    from stst.training.weights import resolve_vgg_weights

    state, _ = resolve_vgg_weights()
    torch.save(state, tmp_path / "vgg.pth")
    result = run("weights", "--vgg-weights", tmp_path / "vgg.pth", env=env)
    assert_one_line_error(result, 2, f"{blocker / 'home'}: cannot write the cache folder", "STST_HOME")


def test_every_error_is_one_line_and_debug_adds_the_traceback(tmp_path):
    missing = tmp_path / "nope.pth"
    src = photo(tmp_path / "a.jpg")
    assert_one_line_error(run("stylize", src, "-m", missing), 2, f"{missing}: model file not found")
    assert_one_line_error(run("stylize", src, "--bogus"), 2, "No such option", "stst stylize --help")
    assert_one_line_error(run("evaluate", "starry_night", tmp_path / "none"), 2, "does not exist")
    debug = run("--debug", "stylize", src, "-m", missing)
    assert debug.exit_code == 2 and "Traceback" in debug.stderr
    assert "Traceback" in run("stylize", src, "-m", missing, env={"STST_DEBUG": "1"}).stderr


def test_example_photo_needs_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # one engine named: auto would time four on this 768x512 photo first (30 s; other tests cover that)
    result = run("stylize", "--example", "-m", "udnie", "--backend", "torch", "--precision", "fp32")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "kodim23-udnie.jpg").size == (768, 512)
    assert_one_line_error(run("stylize"), 2, "--example")


def test_file_type_sniffing():
    from stst.base.filetypes import sniff

    assert sniff(PHOTOS / "kodim01.jpg") == "a JPEG image"
    assert sniff(Path(os.devnull)) == "an empty file"
    assert sniff(HEIF) == "a HEIF image"
    iso = b"\0\0\0\x18ftyp"
    assert [sniff(io.BytesIO(iso + brand + bytes(12))) for brand in (b"isom", b"qt  ", b"avif", b"M4A ")] == [
        "an MP4/QuickTime video", "an MP4/QuickTime video", "an AVIF image", "an MPEG-4 audio file"]


def test_a_damaged_heic_fails_as_a_photo_not_as_a_clip(tmp_path):
    """FFmpeg's MP4 demuxer opens a cut HEIF: it failed as a clip ('no frame could be decoded', or 'frames of 0x0
    are too small to encode')."""
    data = HEIF.read_bytes()
    for name, cut in (("half.heic", len(data) // 2), ("header.heic", 200)):
        (tmp_path / name).write_bytes(data[:cut])
        result = run("stylize", tmp_path / name, "-o", tmp_path / "out.jpg")
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert f"failed: {tmp_path / name}: not a readable image (a HEIF image, damaged or of a kind that cannot be " \
               "decoded)" in result.stderr
