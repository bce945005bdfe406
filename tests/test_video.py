"""Video clips through `stst stylize`, on small clips the tests make with PyAV."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from stst.model.checkpoint import save_checkpoint
from stst.cli import main
from stst.model.network import ArchConfig
from stst.video.probe import is_video
from stst.video.settings import VideoSettings
from stst.video.video import stylize_video

from conftest import PHOTOS, SHARED, answers_ctrl_c, fresh_network, make_clip, needs_shared


@pytest.fixture
def small_model(tmp_path: Path) -> Path:
    path = tmp_path / "small.pth"
    save_checkpoint(path, fresh_network(config=ArchConfig(channels=8)))
    return path


def probe(path: Path) -> dict:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames = list(c.decode(video=0))
    with av.open(str(path)) as c:
        audio = [(s.codec_context.name, sum(1 for p in c.demux(s) if p.dts is not None)) for s in c.streams.audio]
    return {"size": (v.width, v.height), "frames": len(frames), "pts": [float(f.pts * f.time_base) for f in frames],
            "rotation": frames[0].rotation if frames else 0, "audio": audio}


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_clip_keeps_frames_timestamps_and_copies_audio(tmp_path, small_model):
    src = make_clip(tmp_path / "clip.mp4", frames=14, pts=[0, 1, 2, 4, 5, 6, 9, 10, 11, 12, 14, 15, 16, 18])
    result = run("stylize", src, "-m", small_model)
    assert result.exit_code == 0, result.output
    out = tmp_path / "clip-small.mp4"
    before, after = probe(src), probe(out)
    assert after["frames"] == before["frames"] == 14
    assert after["pts"] == pytest.approx(before["pts"], abs=1e-3)  # variable frame rate kept
    assert after["audio"] == before["audio"] and after["audio"][0][0] == "aac"  # packet for packet
    assert after["size"] == (64, 48)


def audio_onset(path: Path) -> float:
    """Seconds from the first video frame to the first audible sample (the tone's start), as a player hears it."""
    with av.open(str(path)) as c:
        start = next(c.decode(video=0)).time
    with av.open(str(path)) as c:
        for frame in c.decode(audio=0):
            samples = frame.to_ndarray()
            level = np.abs(samples / 32768 if samples.dtype == np.int16 else samples).max(axis=0)
            loud = np.flatnonzero(level > 0.05)
            if loud.size:
                return float(frame.time + loud[0] / frame.sample_rate - start)
    raise AssertionError(f"{path}: no sound")


def test_broken_b_frame_timestamps_are_sorted_and_the_audio_keeps_its_delay(tmp_path, small_model):
    mp3 = make_clip(tmp_path / "mp3.mkv", frames=24, audio="libmp3lame", rate=48000, audio_delay=0.067,
                    decoding_order_pts=True)
    pcm = make_clip(tmp_path / "pcm.mkv", frames=24, audio="pcm_s16le", rate=48000, audio_delay=0.067,
                    decoding_order_pts=True)
    source = probe(mp3)["pts"]
    assert source != sorted(source)  # the decoder hands out display times that run backwards
    assert audio_onset(mp3) == pytest.approx(0.067, abs=0.002)
    # mp3 copied into .mp4, re-encoded to Opus for .webm; PCM re-encoded to AAC for .mp4
    for src, out in ((mp3, tmp_path / "copied.mp4"), (mp3, tmp_path / "opus.webm"), (pcm, tmp_path / "aac.mp4")):
        result = run("stylize", src, "-m", small_model, "-o", out)
        assert result.exit_code == 0, result.output
        assert probe(out)["pts"] == pytest.approx(sorted(source), abs=1e-3), out.name
        assert audio_onset(out) == pytest.approx(0.067, abs=1152 / 48000), out.name  # within one audio frame
    assert probe(tmp_path / "copied.mp4")["audio"] == probe(mp3)["audio"]  # packet for packet, not re-encoded


def test_max_pixels_refuses_a_clip_from_its_declared_size(tmp_path, small_model, monkeypatch):
    src = make_clip(tmp_path / "big.mp4", size=(64, 48), audio=None)
    decoded = []
    monkeypatch.setattr("stst.video.video._frames", lambda *a: decoded.append(1) or iter(()))
    result = run("stylize", src, "-m", small_model, "--max-pixels", "3000", "-o", tmp_path / "o.mp4")
    assert result.exit_code == 1, result.output
    assert "big.mp4: each frame of 64x48 is 0 megapixels, more than the limit of 0.003" in result.stderr
    assert "--max-pixels" in result.stderr and not decoded  # refused before a frame was decoded
    assert not (tmp_path / "o.mp4").exists()


def test_odd_sizes_are_made_even_and_rotation_is_kept(tmp_path, small_model):
    src = make_clip(tmp_path / "odd.avi", size=(67, 49), audio=None)
    result = run("stylize", src, "-m", small_model, "-o", tmp_path / "o.mp4")
    assert result.exit_code == 0, result.output
    assert probe(tmp_path / "o.mp4")["size"] == (66, 48)
    rotated = make_clip(tmp_path / "phone.mp4", rotation=90, audio=None)
    assert probe(rotated)["rotation"] == 90
    assert run("stylize", rotated, "-m", small_model).exit_code == 0
    assert probe(tmp_path / "phone-small.mp4")["rotation"] == 90


def test_a_thumbnail_clip_is_steadied_too(tmp_path, small_model):
    """Frames of 4x4 pixels: OpenCV's DIS flow refuses sides both under 12 (an internal error), Farneback's runs."""
    src = make_clip(tmp_path / "tiny.mp4", frames=5, size=(4, 4))
    result = run("stylize", src, "-m", small_model, "-o", tmp_path / "o.mp4")
    assert result.exit_code == 0, result.output
    shown = probe(tmp_path / "o.mp4")
    assert shown["size"] == (4, 4) and shown["frames"] == 5


def test_audio_the_container_cannot_hold_is_re_encoded_with_a_note(tmp_path, small_model):
    src = make_clip(tmp_path / "pcm.mkv", audio="pcm_s16le")
    result = run("stylize", src, "-m", small_model, "-o", tmp_path / "o.mp4")
    assert result.exit_code == 0, result.output
    assert "re-encoded to aac" in result.stderr
    assert probe(tmp_path / "o.mp4")["audio"][0][0] == "aac"


def test_truncated_clip_writes_the_frames_that_decoded_and_fails(tmp_path, small_model):
    whole = make_clip(tmp_path / "whole.mkv", frames=40, size=(128, 96), audio=None)
    src = tmp_path / "cut.mkv"
    src.write_bytes(whole.read_bytes()[: whole.stat().st_size * 6 // 10])
    result = run("stylize", src, "-m", small_model)
    assert result.exit_code == 1, result.output
    out = tmp_path / "cut-small.mp4"
    frames = probe(out)["frames"]
    assert 5 < frames < 40
    assert "1 failed" in result.output or "failed" in result.stderr
    assert "Traceback" not in result.output


def test_avi_whose_header_counts_repeated_frames_is_whole(tmp_path, small_model):
    """Like OpenCV's tree.avi: 444 frames in the header, 68 coded, the rest empty chunks (repeat the last frame)."""
    src = make_clip(tmp_path / "gaps.avi", frames=8, size=(48, 32), audio=None, pts=[3 * i for i in range(8)])
    with av.open(str(src)) as c:
        assert c.streams.video[0].frames == 22  # the muxer filled the gaps with empty chunks
    result = run("stylize", src, "-m", small_model)
    assert result.exit_code == 0, result.output
    assert "truncated" not in result.output
    before, after = probe(src), probe(tmp_path / "gaps-small.mp4")
    assert after["frames"] == before["frames"] == 8
    assert after["pts"] == pytest.approx(before["pts"], abs=1e-3)


def test_folder_of_photos_and_clips_converts_all(tmp_path, small_model):
    src = tmp_path / "mixed"
    src.mkdir()
    make_clip(src / "a.mp4", audio=None)
    make_clip(src / "b.avi", size=(48, 32), audio=None)
    for name in ("kodim01.jpg", "kodim02.jpg"):
        Image.open(PHOTOS / name).resize((48, 32)).save(src / name)
    (src / "renamed_clip.dat").write_bytes((src / "a.mp4").read_bytes())  # found by probing, not by suffix
    assert is_video(src / "renamed_clip.dat") and not is_video(src / "kodim01.jpg")
    result = run("stylize", src, "-m", small_model)
    assert result.exit_code == 0, result.output
    assert "5 stylized, 0 skipped, 0 failed" in result.output
    names = sorted(p.name for p in (tmp_path / "mixed-small").iterdir())
    assert names == ["a-small.mp4", "b-small.mp4", "kodim01-small.jpg", "kodim02-small.jpg", "renamed_clip-small.mp4"]


def test_ctrl_c_mid_clip_leaves_no_file_under_the_final_name(tmp_path, small_model):
    src = make_clip(tmp_path / "long.mp4", frames=400, size=(256, 192), audio=None)
    proc = subprocess.Popen([sys.executable, "-m", "stst", "stylize", str(src), "-m", str(small_model)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=answers_ctrl_c)
    deadline = time.time() + 120
    while time.time() < deadline and not any(p.stat().st_size > 0 for p in tmp_path.glob(".long-small.mp4.*.tmp")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert not (tmp_path / "long-small.mp4").exists()
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


@needs_shared
def test_real_clip_with_audio(tmp_path):
    """The acceptance clip: same frame count and rate, AAC audio of the same duration, decodes to the end."""
    src = SHARED / "videos" / "cup.mp4"
    out = tmp_path / "cup-starry_night.mp4"
    result = run("stylize", src, "-o", out, "--max-size", "160")
    assert result.exit_code == 0, result.output
    before, after = probe(src), probe(out)
    assert after["frames"] == before["frames"] == 217 and after["audio"] == before["audio"]
    with av.open(str(src)) as a, av.open(str(out)) as b:
        assert float(b.streams.video[0].average_rate) == pytest.approx(float(a.streams.video[0].average_rate), rel=1e-3)


def test_warping_error_measures_flicker_and_the_flow_blend_reduces_it(tmp_path):
    from flicker import read_frames, warping_error
    from stst.video.temporal import FlowBlend

    src = list(read_frames(make_clip(tmp_path / "pan.mp4", frames=10, size=(128, 96), audio=None)))
    rng = np.random.default_rng(0)
    noisy = [np.clip(f + rng.normal(0, 12, f.shape), 0, 255).astype(np.uint8) for f in src]  # a boiling "style"
    steady = warping_error(src, src, "farneback")
    boiling = warping_error(src, noisy, "farneback")
    assert steady < 0.2 * boiling
    blend = FlowBlend(0.6)
    blended = [(blend(s, torch.from_numpy(n).permute(2, 0, 1).float() / 255).permute(1, 2, 0).numpy() * 255)
               .round().astype(np.uint8) for s, n in zip(src, noisy)]
    assert warping_error(src, blended, "farneback") < 0.6 * boiling  # measured with another flow than the blend's


def test_temporal_blend_option_writes_the_clip(tmp_path, small_model):
    src = make_clip(tmp_path / "c.mp4", frames=6, audio=None)
    result = run("stylize", src, "-m", small_model, "--temporal-blend", "0.5")
    assert result.exit_code == 0, result.output
    assert probe(tmp_path / "c-small.mp4")["frames"] == 6


def test_a_fade_from_black_starts_black_and_brightens_steadily(tmp_path):
    from flicker import read_frames

    levels = [0.0, 0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 1.0]
    src = make_clip(tmp_path / "fade.mp4", frames=len(levels), audio=None, levels=levels)
    result = run("stylize", src)  # the bundled default model
    assert result.exit_code == 0, result.output
    brightness = [f.mean() / 255 for f in read_frames(tmp_path / "fade-starry_night.mp4")]
    assert brightness[0] < 0.03 and brightness[1] < 0.03  # black stays black, not the painting's dark teal
    assert all(b > a for a, b in zip(brightness[1:4], brightness[2:5]))  # no jump: it rises with the source
    assert brightness[2] < 0.5 * brightness[-1]


def test_the_default_video_path_is_no_less_steady_than_frame_by_frame_on_cuts_fades_and_fast_motion(tmp_path):
    """Opening on black, fades, a whip pan, a fast zoom, hard cuts and a dark scene (scripts/shots.py)."""
    from stst.model.bundled import bundled_models
    from flicker import read_frames, warping_error
    from shots import make_shots_clip

    src = make_shots_clip(sorted(PHOTOS.glob("*.jpg"))[:4], tmp_path / "shots.mp4", size=(160, 120))
    model = bundled_models()["the_scream"]
    plain, default = tmp_path / "plain.mp4", tmp_path / "default.mp4"
    assert run("stylize", src, "-m", model, "-o", plain, "--denoise", "0", "--no-keep-dark").exit_code == 0
    result = run("stylize", src, "-m", model, "-o", default)
    assert result.exit_code == 0, result.output
    source, steadied = list(read_frames(src)), list(read_frames(default))
    assert warping_error(source, steadied, "farneback") <= warping_error(source, read_frames(plain), "farneback")
    assert all(frame.mean() < 0.03 * 255 for frame in steadied[:6])  # it opens on black, and stays black


def test_the_default_video_path_denoises_the_source_and_flickers_less(tmp_path):
    from flicker import read_frames, warping_error

    src = make_clip(tmp_path / "still.mp4", frames=10, size=(128, 96), audio=None, pan=0, noise=8)
    plain = tmp_path / "plain.mp4"
    assert run("stylize", src, "-o", plain, "--denoise", "0").exit_code == 0
    result = run("stylize", src)  # the bundled default model, default settings
    assert result.exit_code == 0, result.output
    source = list(read_frames(src))
    denoised = warping_error(source, read_frames(tmp_path / "still-starry_night.mp4"), "farneback")
    assert denoised < 0.4 * warping_error(source, read_frames(plain), "farneback")


def test_the_quick_tiers_keep_the_clip_path_up_with_them(tmp_path):
    """--tier realtime and light encode at x264's veryfast preset (its settings, written into the stream, say
    subme=2) where the full tier keeps the default, medium (subme=7)."""
    clip = make_clip(tmp_path / "in.mp4", frames=6, audio=None)
    for tier, subme in (("realtime", b" subme=2 "), ("light", b" subme=2 "), ("full", b" subme=7 ")):
        out = tmp_path / f"{tier}.mp4"
        result = run("stylize", str(clip), "--tier", tier, "-o", str(out), "--backend", "torch", "--precision", "fp32")
        assert result.exit_code == 0, result.output
        assert subme in out.read_bytes() and probe(out)["frames"] == 6


@pytest.mark.parametrize("settings, seen", [
    (VideoSettings().for_model("starry_night-realtime"), (240, 320)),  # the quick tiers on a CPU: half size
    (VideoSettings().for_model("starry_night-light"), (240, 320)),
    (VideoSettings().for_model("starry_night"), (480, 640)),  # the full tier: whole frames
    (replace(VideoSettings().for_model("starry_night-realtime"), device="cuda"), (480, 640)),
    (VideoSettings(scale=1.0).for_model("starry_night-realtime"), (480, 640)),  # --frame-scale 1
    (VideoSettings(scale=0.25), (120, 160)),
])
def test_the_network_sees_frames_at_the_clip_paths_scale_and_the_detail_comes_back(tmp_path, settings, seen):
    """The network (here one that gives its input back) sees the frames at the scale of the settings; the output
    keeps the clip's size and, enlarged back with the frame's detail (test_look), stays within a few grey levels
    of the source."""
    from flicker import read_frames

    clip = make_clip(tmp_path / "in.mp4", frames=4, size=(640, 480), audio=None, pan=3)
    shapes = []

    def identity(frames: torch.Tensor) -> torch.Tensor:
        shapes.append(tuple(frames.shape[-2:]))
        return frames.clone()

    out = tmp_path / "out.mp4"
    stylize_video(identity, clip, out, replace(settings, denoise=0.0), progress=False)
    assert set(shapes) == {seen} and probe(out)["size"] == (640, 480)
    source, made = np.stack(list(read_frames(clip))).astype(float), np.stack(list(read_frames(out))).astype(float)
    assert np.abs(made - source).mean() < 4.0


def test_small_frames_are_not_shrunk_below_320_pixels():
    quick = VideoSettings().for_model("great_wave-realtime")
    assert quick.network_scale(640, 480) == 0.5 and quick.network_scale(1920, 1080) == 0.5
    assert quick.network_scale(480, 360) == pytest.approx(320 / 480) and quick.network_scale(64, 48) == 1.0


def test_frame_scale_out_of_range_is_a_usage_error(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=2, audio=None)
    result = run("stylize", clip, "--tier", "realtime", "--frame-scale", "0.1")
    assert result.exit_code == 2 and "Invalid value for '--frame-scale'" in result.output
