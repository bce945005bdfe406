"""The video encoder a clip gets: x264 on the CPU, NVENC on a GPU that has it, the CPU's where NVENC is missing."""

from __future__ import annotations

import av
import pytest

from stst.model.network import ArchConfig
from stst.infer.engine import Stylizer
from stst.video import encoders
from stst.video.encoders import NVENC, choose_encoder, opens, software_encoder
from stst.video.settings import VideoSettings
from stst.video.video import stylize_video

from conftest import fresh_network, make_clip

GPU = VideoSettings(device="cuda")


@pytest.fixture
def no_probe(monkeypatch):
    def refuse(*args):
        raise AssertionError(f"NVENC was tried: {args}")

    monkeypatch.setattr(encoders, "opens", refuse)


def test_a_cpu_run_encodes_with_x264_and_never_tries_nvenc(no_probe):
    assert choose_encoder("mp4", VideoSettings(), (1920, 1080)) == encoders.Encoder("libx264", {"crf": "18"})
    quick = choose_encoder("mp4", VideoSettings(quick=True, crf=23), (640, 480))
    assert quick.options == {"crf": "23", "preset": "veryfast"}


def test_a_named_codec_and_a_container_without_an_nvenc_twin_are_kept_on_a_gpu(no_probe):
    assert choose_encoder("mp4", VideoSettings(device="cuda", codec="libx265"), (64, 48)).name == "libx265"
    webm = choose_encoder("webm", GPU, (64, 48))
    assert webm == encoders.Encoder("libvpx-vp9", {"crf": "18", "b": "0"})


def test_a_gpu_takes_nvenc_where_it_opens_with_options_ffmpeg_knows(monkeypatch):
    tried = []
    monkeypatch.setattr(encoders, "opens", lambda name, options, w, h: tried.append((name, w, h)) or True)
    for quick, preset in ((False, "p4"), (True, "p1")):
        encoder = choose_encoder("mp4", VideoSettings(device="cuda", quick=quick, crf=20), (1920, 1080))
        assert encoder.name == "h264_nvenc" and encoder.options["cq"] == "20" and encoder.options["preset"] == preset
    assert tried == [("h264_nvenc", 1920, 1080)] * 2


@pytest.mark.skipif(not hasattr(av.codec.context.CodecContext, "supported_options"),
                    reason="PyAV before 18 (Python 3.10's newest is 17.1) does not list an encoder's options")
def test_the_nvenc_options_are_ones_ffmpeg_knows():
    for software, hardware in NVENC.items():  # each twin in this FFmpeg build, each option and choice its own
        context = av.CodecContext.create(hardware, "w")
        known = {o.name: o for o in [*context.supported_options.private, *context.supported_options.generic]}
        options = encoders.nvenc_encoder(software, GPU).options
        assert set(options) <= set(known), (hardware, set(options) - set(known))
        for name in ("rc", "preset"):
            assert options[name] in {choice.name for choice in known[name].choices}


@pytest.mark.skipif(opens("h264_nvenc", (), 256, 256), reason="this machine has NVENC")
def test_without_nvenc_a_gpus_clip_is_encoded_by_x264(tmp_path):
    """The real NVENC encoder fails to open here (no NVIDIA driver): the clip is written as a CPU run writes it."""
    assert choose_encoder("mp4", GPU, (64, 48)) == software_encoder("libx264", GPU)
    src = make_clip(tmp_path / "clip.mp4", frames=6)
    stylizer = Stylizer(fresh_network(config=ArchConfig(channels=8)), device="cpu")
    report = stylize_video(stylizer, src, tmp_path / "out.mp4", GPU, progress=False)
    with av.open(str(tmp_path / "out.mp4")) as clip:
        assert clip.streams.video[0].codec_context.name == "h264" and report.frames == 6
        assert sum(1 for _ in clip.decode(video=0)) == 6
