"""A GPU's path for photos, tested where it runs without one: uint8 over the bus and the rounding on the device, the
batch sizing, the job runner's pipeline and codec threads, and the engine rows and refusals for CUDA."""

import io
import os
import threading
import time
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from stst.base.imageio import CodedPhoto, array_pixels, coded_jpeg, read_photo, to_uint8
from stst.base.prefetch import ordered_map
from stst.infer import engines
from stst.infer.compiled import Compiled, inductor_cache
from stst.infer.device_pixels import DevicePixels, decode_jpegs, to_bytes, to_unit
from stst.infer.engine import Stylizer, engine_candidates
from stst.infer.sizes import AUTO_TILE, GPU_BATCH, fitting_batch
from stst.stylize import JobSettings, plan_jobs, run_jobs
from stst.video.settings import VideoSettings
from stst.video.video import stylize_video

from conftest import PHOTOS, fresh_network, make_clip


def test_the_device_rounds_as_the_cpu_does():
    rng = np.random.default_rng(0)
    images = rng.uniform(-0.2, 1.2, (2, 3, 17, 23)).astype(np.float32)
    images[0, :, 0, :5] = (np.arange(5) + 0.5) / 255  # halfway between two levels: rounded to even, as np.rint
    images[1, 1, 3, 4] = np.nan
    pixels, finite = to_bytes(torch.from_numpy(images))
    assert finite.tolist() == [True, False]
    assert pixels.shape == (2, 17, 23, 3) and pixels.dtype == torch.uint8
    assert np.array_equal(pixels[0].numpy(), to_uint8(images[0]))


def test_uint8_photos_reach_the_network_as_the_float_path_hands_them():
    photo = np.asarray(Image.open(PHOTOS / "kodim23.jpg").convert("RGB"))[:40, :60]
    unit = to_unit(torch.from_numpy(photo[None].copy()))
    assert unit.shape == (1, 3, 40, 60) and unit.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(unit[0], torch.from_numpy(array_pixels(photo)))
    assert np.array_equal(to_bytes(unit)[0][0].numpy(), photo)  # and back, unchanged


def test_device_pixels_on_the_cpu_give_the_float_paths_bytes():
    pixels = DevicePixels(torch.device("cpu"))
    photos = np.random.default_rng(1).integers(0, 256, (3, 8, 12, 3), dtype=np.uint8)
    x = pixels.upload(photos)
    outputs = pixels.download(x * 1.5 - 0.2).result()
    expected = [to_uint8(array_pixels(p) * 1.5 - 0.2) for p in photos]
    assert all(np.array_equal(o, e) for o, e in zip(outputs, expected))
    broken = x.clone()
    broken[1, 0, 0, 0] = float("inf")
    assert [o is None for o in pixels.download(broken).result()] == [False, True, False]
    floats = np.stack([array_pixels(p) for p in photos])  # 16-bit sources come as float32 (3, H, W)
    assert torch.equal(pixels.upload(floats), x)


def test_a_stylizer_given_uint8_photos_writes_the_float_paths_pixels():
    net = fresh_network()
    stylizer = Stylizer(net, "cpu", precision="fp32", backend="torch", tile=None)
    photos = np.stack([np.asarray(Image.open(PHOTOS / name).convert("RGB").resize((48, 32)))
                       for name in ("kodim01.jpg", "kodim23.jpg")])
    floats = stylizer(np.stack([array_pixels(p) for p in photos]))
    outputs = stylizer.submit(photos).result()
    for out, expected in zip(outputs, floats):
        diff = np.abs(out.astype(int) - to_uint8(expected).astype(int))
        assert diff.max() <= 1 and (diff == 0).mean() > 0.999  # the batch whole against one by one: float noise


def test_photos_that_run_in_tiles_take_the_float_path():
    stylizer = Stylizer(fresh_network(), "cpu", precision="fp32", backend="torch", tile=256)
    photos = np.random.default_rng(2).integers(0, 256, (1, 264, 300, 3), dtype=np.uint8)
    [out] = stylizer.submit(photos).result()
    assert out.shape == (264, 300, 3) and out.dtype == np.uint8
    assert np.array_equal(out, to_uint8(stylizer(array_pixels(photos[0])[None])[0]))


def test_a_gpu_batch_is_what_fits():
    assert fitting_batch(1 << 30, 3 << 30) == 3
    assert fitting_batch(1 << 20, 3 << 30) == GPU_BATCH  # small photos: no more than a batch
    assert fitting_batch(5 << 30, 3 << 30) == 1  # never none
    settings = JobSettings(batch_size=2).on_gpu(batch_given=False)
    assert settings.batch_size == settings.video.batch_size == GPU_BATCH
    assert settings.readers >= 1 and settings.writers == settings.readers
    given = JobSettings(batch_size=2, video=VideoSettings(batch_size=4)).on_gpu(batch_given=True)
    assert given.batch_size == 2 and given.video.batch_size == 4


def test_reading_as_decoded_keeps_eight_bits_and_sixteen_bit_precision(tmp_path):
    photo = read_photo(PHOTOS / "kodim23.jpg", max_size=64, uint8=True)
    assert photo.pixels.dtype == np.uint8 and photo.pixels.shape[2] == 3
    assert photo.size == photo.pixels.shape[:2] == read_photo(PHOTOS / "kodim23.jpg", max_size=64).size
    assert np.array_equal(to_uint8(read_photo(PHOTOS / "kodim23.jpg", max_size=64).pixels), photo.pixels)
    Image.fromarray((np.arange(32 * 32, dtype=np.uint16) * 60).reshape(32, 32)).save(tmp_path / "g16.png")
    sixteen = read_photo(tmp_path / "g16.png", uint8=True)
    assert sixteen.pixels.dtype == np.float32 and sixteen.size == (32, 32)


class _OnGpu:
    """A CPU stylizer handed photos as a GPU's is (``takes_uint8``; with ``jpeg``, JPEG files to decode as nvJPEG's
    are), its batches recorded."""

    takes_uint8 = True

    def __init__(self, stylizer: Stylizer, broken: str = "", jpeg: bool = False) -> None:
        self.stylizer, self.broken, self.batches = stylizer, broken, []
        self.decodes_jpeg = jpeg

    def submit(self, pixels, *steps):
        self.batches.append(("jpeg" if isinstance(pixels[0], CodedPhoto) else pixels[0].dtype, len(pixels)))
        if self.broken == "nan":
            self.stylizer.model.last.conv2d.weight.data.fill_(float("nan"))
        return self.stylizer.submit(pixels, *steps)


def _folder(tmp_path, sizes):
    folder = tmp_path / "in"
    folder.mkdir()
    source = Image.open(PHOTOS / "kodim23.jpg")
    for i, size in enumerate(sizes):
        source.resize(size).save(folder / f"p{i:02d}.jpg", quality=90)
    return folder


def test_a_run_on_a_gpu_writes_what_the_float_path_writes(tmp_path):
    folder = _folder(tmp_path, [(48, 32)] * 5 + [(40, 40)] * 2)
    (folder / "p99.jpg").write_bytes(b"not a photo")
    settings = JobSettings(batch_size=2, readers=3, writers=3)
    network = _OnGpu(Stylizer(fresh_network(), "cpu", precision="fp32", backend="torch", tile=None))
    gpu = run_jobs(network, plan_jobs([folder], "m", tmp_path / "gpu", fmt="png"), settings, progress=False)
    cpu = run_jobs(Stylizer(fresh_network(), "cpu", precision="fp32", backend="torch", tile=None),
                   plan_jobs([folder], "m", tmp_path / "cpu", fmt="png"), JobSettings(batch_size=2), progress=False)
    assert gpu.summary() == cpu.summary() == "7 stylized, 0 skipped, 1 failed"
    assert all(dtype == np.uint8 for dtype, _ in network.batches) and sorted(n for _, n in network.batches) == [
        1, 2, 2, 2]
    _same_files(gpu, tmp_path / "cpu")


def test_a_gpu_runs_nan_is_a_failure_not_a_file(tmp_path):
    folder = _folder(tmp_path, [(48, 32)] * 2)
    network = _OnGpu(Stylizer(fresh_network(), "cpu", precision="fp32", backend="torch", tile=None), broken="nan")
    report = run_jobs(network, plan_jobs([folder], "m", tmp_path / "out"), JobSettings(batch_size=2), progress=False)
    assert len(report.failed) == 2 and "NaN" in report.failed[0][1] and not list((tmp_path / "out").glob("*"))


def test_decoding_threads_keep_the_order_and_stay_near_the_consumer():
    started = []
    lock = threading.Lock()

    def slow(i):
        with lock:
            started.append(i)
        time.sleep(0.01 * (i % 3))
        return i * i

    results = ordered_map(slow, iter(range(40)), workers=4)
    assert [next(results) for _ in range(3)] == [0, 1, 4]
    time.sleep(0.1)
    assert len(started) <= 3 + 2 * 4  # bounded read-ahead
    assert list(results) == [i * i for i in range(3, 40)]


def test_cuda_candidates_compile_only_for_a_run_that_times_its_engines(monkeypatch):
    monkeypatch.setattr(engines, "installed", lambda package: True)
    net, cuda = fresh_network(), torch.device("cuda")  # rows and builders only: nothing runs on the device
    assert list(engine_candidates(cuda, net, measured=False)) == ["torch-fp16"]
    assert list(engine_candidates(cuda, net, measured=True)) == ["torch-fp16", "inductor-fp16"]
    monkeypatch.setattr(engines, "installed", lambda package: package != "triton")
    assert list(engine_candidates(cuda, net, measured=True)) == ["torch-fp16"]  # no Triton: no inductor


def test_a_gpu_times_its_engines_at_the_photos_own_size_up_to_1080p():
    stylizer = Stylizer(fresh_network(), "cpu", precision="fp32", backend="torch", tile=None)
    seen = []
    runner = seen.append  # what the candidate is handed
    stylizer._timing(1080, 1920)(runner, (512, 768))
    stylizer.device = torch.device("cuda")  # the rule alone: nothing runs on a device
    stylizer._timing(1080, 1920)(runner, (512, 768))
    stylizer._timing(2160, 3840)(runner, (512, 768))
    assert [tuple(x.shape[-2:]) for x in seen] == [(512, 768), (1080, 1920), (512, 768)]


def test_a_gpu_runs_a_4k_photo_whole_and_a_48_megapixel_one_in_tiles():
    stylizer = Stylizer(fresh_network(), "cpu", precision="fp32", backend="torch")  # Johnson's design, --tile auto
    sizes = [(2160, 3840), (6000, 8000)]
    assert [stylizer._tile_for(*size) for size in sizes] == [AUTO_TILE, AUTO_TILE]  # a CPU's memory
    stylizer.device = torch.device("cuda")  # the rule alone: nothing runs on a device
    assert [stylizer._tile_for(*size) for size in sizes] == [None, AUTO_TILE]
    assert Stylizer(fresh_network(), "cpu", tile=None)._tile_for(6000, 8000) is None  # --tile off


def test_compiled_code_is_kept_in_the_stst_home(monkeypatch, tmp_path):
    monkeypatch.setenv("STST_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "")  # restored after the test, as Compiled sets it
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR")
    assert inductor_cache() == tmp_path / "home" / "inductor"
    Compiled(fresh_network())  # compiles lazily, on the first batch
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "home" / "inductor")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "own"))
    assert inductor_cache() == tmp_path / "own"  # the user's own setting stands


def _frames(path, planes="rgb24"):
    import av

    with av.open(str(path)) as clip:
        return np.stack([frame.to_ndarray(format=planes).astype(int) for frame in clip.decode(video=0)])


@pytest.mark.parametrize("model", ["starry_night", "starry_night-realtime"])
def test_a_gpus_clip_path_writes_what_the_cpus_writes(tmp_path, model):
    """Denoised, dimmed through a fade to black and (the quick tiers) blended along the flow on the device: the
    frames and the audio as on the CPU's path (settings as on a GPU: whole frames)."""
    levels = [1.0] * 6 + [0.4, 0.15, 0.06, 0.02]
    clip = make_clip(tmp_path / "in.mp4", frames=10, size=(96, 64), pan=2, noise=4.0, levels=levels)
    settings = replace(VideoSettings(batch_size=4, device="cuda").for_model(model))
    outputs = {}
    for path, wrap in (("cpu", lambda s: s), ("gpu", _OnGpu)):
        stylizer = wrap(Stylizer(fresh_network(), "cpu", precision="fp32", backend="torch", tile=None))
        report = stylize_video(stylizer, clip, tmp_path / f"{path}.mp4", settings, progress=False)
        assert report.frames == 10 and report.error is None
        outputs[path] = _frames(tmp_path / f"{path}.mp4")
    assert [n for _, n in stylizer.batches] == [4, 4, 2]  # the GPU's path ran
    diff = np.abs(outputs["gpu"] - outputs["cpu"])
    assert diff.mean() < 0.5 and np.percentile(diff, 99.9) <= 8, (diff.mean(), diff.max())
    assert outputs["gpu"][-1].mean() < 0.3 * outputs["gpu"][0].mean()  # dimmed at the end of the fade


class _Identity:
    """A network that gives its input back, handed photos as a GPU's is: the clip's steps alone shape the output."""

    takes_uint8 = True

    def __init__(self) -> None:
        self.pixels = DevicePixels(torch.device("cpu"))

    def __call__(self, frames):
        return frames.clone()

    def submit(self, pixels, prepare=None, finish=None):
        x = self.pixels.upload(pixels)
        x = prepare(x) if prepare else x
        return self.pixels.download(finish(x, x.clone()) if finish else x)


def _handed(monkeypatch) -> list:
    """Records the frames each path hands the encoder, as the yuv420p planes it encodes (x264 turns differences of
    one level into more): the CPU's path hands rgb24, which FFmpeg converts, a GPU's the planes it made."""
    from stst.video import video

    handed = []
    made = video._Sink.frame

    def recorded(sink, photo, motion, rgb):
        frame = made(sink, photo, motion, rgb)
        handed.append(frame.reformat(format="yuv420p").to_ndarray().astype(int))
        return frame

    monkeypatch.setattr(video._Sink, "frame", recorded)
    return handed


@pytest.mark.parametrize("model", ["starry_night", "starry_night-realtime"])
def test_the_clip_steps_on_the_device_are_the_cpus(tmp_path, monkeypatch, model):
    """With a network that gives its input back, the denoised, dimmed and blended frames of both paths agree, and
    differ from the source's (the steps did something)."""
    levels = [1.0] * 6 + [0.4, 0.15, 0.06, 0.02]
    clip = make_clip(tmp_path / "in.mp4", frames=10, size=(160, 96), pan=1, noise=8.0, levels=levels)
    settings = VideoSettings(batch_size=4, device="cuda").for_model(model)
    handed = _handed(monkeypatch)
    for path, network in (("cpu", lambda frames: frames.clone()), ("gpu", _Identity())):
        stylize_video(network, clip, tmp_path / f"{path}.mp4", settings, progress=False)
    cpu, gpu = np.stack(handed[:10]), np.stack(handed[10:])
    diff = np.abs(gpu - cpu)
    # the steps within one level; the device's conversion to yuv420p is swscale's within one (0.03 on average)
    assert diff.max() <= 1 and diff.mean() < 0.05, (diff.mean(), diff.max())
    source = _frames(clip, "yuv420p")
    assert np.abs(cpu - source)[1:6].mean() > 1.5  # the noise filtered
    light = lambda planes: planes[:96] - 16.0  # noqa: E731 - the Y plane, above black
    assert light(cpu[-1]).mean() < 0.6 * light(source[-1]).mean()  # the fade's end dimmed


def test_the_devices_carry_and_blend_are_the_cpus():
    from stst.video.device_steady import DeviceBlend, DeviceDenoiser
    from stst.video.temporal import FlowBlend, FlowDenoiser, FlowGate

    scene = np.asarray(Image.open(PHOTOS / "kodim23.jpg").convert("RGB"))
    rng = np.random.default_rng(0)
    frames = [np.clip(scene[60:156, 40 + 2 * i: 168 + 2 * i] + rng.normal(0, 6, (96, 128, 3)), 0, 255).astype(np.uint8)
              for i in range(6)]
    cpu, gate, device = FlowDenoiser(0.8, side=64), FlowGate(0.8, side=64), DeviceDenoiser()
    cpu_blend, device_blend = FlowBlend(0.3), DeviceBlend(0.3)
    for i, frame in enumerate(frames):
        expected = cpu(frame)
        got = device(to_unit(torch.from_numpy(frame[None].copy())), [gate(frame)])[0]
        got = got.mul(255).round().byte().permute(1, 2, 0).numpy()
        assert np.abs(got.astype(int) - expected).max() <= 1 and (got != expected).mean() < 0.01
        output = torch.rand(3, 96, 128, generator=torch.Generator().manual_seed(i))
        blended = cpu_blend(frame, output, cpu.motion)
        assert torch.allclose(device_blend(output[None], [gate.motion])[0], blended, atol=1e-4)
    assert np.abs(expected.astype(int) - frames[-1]).mean() > 2  # the filter and the blend did change them
    assert (blended - output).abs().mean() > 0.05


def _jpeg(path, size=(40, 24), orientation=1, mode="RGB", quality=90):
    image = Image.open(PHOTOS / "kodim23.jpg").convert(mode).resize(size)
    exif = Image.Exif()
    if orientation != 1:
        exif[0x0112] = orientation
    image.save(path, quality=quality, exif=exif.tobytes())
    return path


def test_jpegs_decoded_on_the_device_are_upright_and_pillows_pixels(tmp_path):
    """torchvision's decoder on the CPU is libjpeg-turbo, as Pillow's: the device's path gives Pillow's bytes for
    each EXIF orientation (nvJPEG's own pixels are printed by scripts/bench_gpu.py)."""
    coded = [coded_jpeg(_jpeg(tmp_path / f"o{o}.jpg", orientation=o)) for o in range(1, 9)]
    assert [c.size for c in coded] == [(24, 40)] * 4 + [(40, 24)] * 4
    for photo, image in zip(coded, decode_jpegs(coded, torch.device("cpu"))):
        pillow = read_photo(io.BytesIO(photo.data), uint8=True).pixels
        assert np.array_equal(image.permute(1, 2, 0).numpy(), pillow), photo.orientation
    batch = DevicePixels(torch.device("cpu")).decode(coded[:4])
    assert batch.shape == (4, 3, 24, 40) and batch.is_contiguous(memory_format=torch.channels_last)


def test_only_whole_colour_jpegs_at_their_own_size_are_decoded_on_the_device(tmp_path):
    whole = _jpeg(tmp_path / "whole.jpg")
    (tmp_path / "cut.jpg").write_bytes(whole.read_bytes()[:-300])
    Image.open(whole).save(tmp_path / "photo.png")
    assert coded_jpeg(whole) is not None
    assert coded_jpeg(_jpeg(tmp_path / "grey.jpg", mode="L")) is None
    assert coded_jpeg(_jpeg(tmp_path / "cmyk.jpg", mode="CMYK")) is None
    assert coded_jpeg(tmp_path / "cut.jpg") is None and coded_jpeg(tmp_path / "photo.png") is None
    assert coded_jpeg(whole, max_size=32) is None and coded_jpeg(whole, max_pixels=500) is None
    assert coded_jpeg(tmp_path / "missing.jpg") is None


def _mixed_folder(tmp_path):
    folder = _folder(tmp_path, [(48, 32)] * 3 + [(40, 40)])
    _jpeg(folder / "q-turned.jpg", size=(32, 48), orientation=6)
    _jpeg(folder / "r-grey.jpg", size=(48, 32), mode="L")
    (folder / "s-cut.jpg").write_bytes((folder / "p00.jpg").read_bytes()[:200])
    (folder / "t-not.jpg").write_bytes(b"not a photo")
    return folder


def _same_files(gpu, cpu_folder):
    for written in gpu.stylized:
        ours = np.asarray(Image.open(written)).astype(int)
        theirs = np.asarray(Image.open(cpu_folder / written.name)).astype(int)
        assert np.abs(ours - theirs).max() <= 1, written


def test_a_gpu_run_hands_over_jpeg_files_and_writes_what_the_cpu_writes(tmp_path):
    folder = _mixed_folder(tmp_path)
    settings = JobSettings(batch_size=2, readers=3, writers=3)
    network = _OnGpu(Stylizer(fresh_network(), "cpu", precision="fp32", backend="torch", tile=None), jpeg=True)
    gpu = run_jobs(network, plan_jobs([folder], "m", tmp_path / "gpu", fmt="png"), settings, progress=False)
    cpu = run_jobs(Stylizer(fresh_network(), "cpu", precision="fp32", backend="torch", tile=None),
                   plan_jobs([folder], "m", tmp_path / "cpu", fmt="png"), JobSettings(batch_size=2), progress=False)
    assert gpu.summary() == cpu.summary() == "6 stylized, 0 skipped, 2 failed"
    assert gpu.failed == cpu.failed
    assert sorted(network.batches, key=str) == sorted([("jpeg", 2), ("jpeg", 2), ("jpeg", 1),
                                                       (np.dtype(np.uint8), 1)], key=str)
    _same_files(gpu, tmp_path / "cpu")


def test_where_the_devices_decoder_refuses_the_run_decodes_on_the_cpu(tmp_path, monkeypatch):
    """nvJPEG missing (a torchvision built without it): the refused batch and the rest are decoded by Pillow."""
    import torchvision.io

    def missing(*args, **kwargs):
        raise RuntimeError("decode_jpegs_cuda: torchvision not compiled with nvJPEG support")

    monkeypatch.setattr(torchvision.io, "decode_jpeg", missing)
    folder = _mixed_folder(tmp_path)
    network = _OnGpu(Stylizer(fresh_network(), "cpu", precision="fp32", backend="torch", tile=None), jpeg=True)
    gpu = run_jobs(network, plan_jobs([folder], "m", tmp_path / "gpu", fmt="png"),
                   JobSettings(batch_size=2, readers=1), progress=False)
    cpu = run_jobs(Stylizer(fresh_network(), "cpu", precision="fp32", backend="torch", tile=None),
                   plan_jobs([folder], "m", tmp_path / "cpu", fmt="png"), JobSettings(batch_size=2), progress=False)
    assert gpu.summary() == cpu.summary() and gpu.failed == cpu.failed
    assert network.batches[0] == ("jpeg", 2) and network.batches[1][0] == np.uint8
    assert sum(kind == "jpeg" for kind, _ in network.batches) <= 3  # the readers ahead of the refusal at most
    _same_files(gpu, tmp_path / "cpu")


@pytest.mark.parametrize("size", [(64, 96), (66, 98)])  # planes that do and do not fill whole rows
def test_the_devices_yuv420p_is_ffmpegs_within_one_level(size):
    import av

    from stst.video.device_yuv import yuv420p

    h, w = size
    rgb = np.ascontiguousarray(np.asarray(Image.open(PHOTOS / "kodim23.jpg").convert("RGB"))[100:100 + h, 200:200 + w])
    ffmpeg = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p").to_ndarray().astype(int)
    images = torch.from_numpy(np.stack([rgb, rgb[::-1].copy()])).permute(0, 3, 1, 2).float() / 255
    images[1, 0, 5, 5] = float("nan")
    planes, finite = to_bytes(yuv420p(images))
    assert planes.shape == (2, h * 3 // 2, w, 1) and finite.tolist() == [True, False]
    diff = np.abs(planes[0, ..., 0].numpy().astype(int) - ffmpeg)
    assert diff.max() <= 1 and diff.mean() < 0.06


def test_a_clips_reading_and_flow_threads_stop_together():
    """A GPU's clip path reads frames in one thread and runs the flow's gate in another: where the gate fails, both
    are stopped and joined before the error goes on (the container they read is closed then), though the error,
    whose traceback holds the stages, is still alive."""
    from stst.video import video

    read = []

    class Steps:
        stages = 2

        def read(self, frame):
            read.append(frame)
            return frame

        def filtered(self, frame):
            if frame == 3:
                raise ValueError("the flow failed")
            return frame * 2

    before = threading.active_count()
    with pytest.raises(ValueError) as failure:
        list(video._decoded(Steps(), (("frame", i) for i in range(1000)), 4))
    assert threading.active_count() == before and failure.value is not None
    count = len(read)
    time.sleep(0.1)
    assert len(read) == count < 20
    assert list(video._decoded(Steps(), iter([("frame", 1), ("packet", "a"), ("frame", 2)]), 4)) == [
        ("frame", 2), ("packet", "a"), ("frame", 4)]
