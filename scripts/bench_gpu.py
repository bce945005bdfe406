"""Benchmark stst on a GPU, in one run: per tier the network alone, folders of 1080p photos and a 1080p clip through
whole commands, a 4K photo, peak GPU memory and each CUDA engine's output against fp32.

Made for the device machine's short leases (docs/performance.md, "On a GPU"): it makes its own data from the photos
in the tree (1080p JPEGs cropped and enlarged from Kodak's; a panning clip with a tone, where PyAV is installed),
prints each row as it is measured, and leaves out what no longer fits ``--budget`` seconds, the least needed last.

    python scripts/bench_gpu.py                                   # everything, 1,000 photos, a 900-frame clip
    python scripts/bench_gpu.py --photos 200 --frames 300 --tiers realtime full --budget 420

Rows: the network alone (eager fp32 batch 1, eager fp16 and inductor fp16 in batches of 8, frames a second by CUDA
events, the compile's seconds); the Stylizer given uint8 photos in process (decoding left out); ``stst stylize DIR``
as a user runs it, a first run on a fresh $STST_HOME and a second (what is compiled and chosen kept), with a plain
loop as pytorch/examples' fast_neural_style runs the network beside it (fp32 eager, one photo at a time); one 4K
photo in process and as a command; nvJPEG against Pillow in threads, with how far their pixels differ, whether a
decode overwrites memory the network's queued work reads, and the job runner in process with JPEGs decoded either way
(where decoding on the GPU pays, and how far the outputs are apart); the clip as a command, with the encoder it gets
(NVENC where the GPU has one); last, whether CUDA graphs pay for a clip's batches and the live view's frames.
``--only WORD ...`` runs just the sections whose names hold one of the words.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout, as on the device machine

from budget import Budget, checkout_env, say  # noqa: E402
from stst.base.imageio import coded_jpeg, read_photo, to_uint8  # noqa: E402
from stst.base.machine import cpu_cores, describe_cpu  # noqa: E402
from stst.infer.compiled import Compiled  # noqa: E402
from stst.infer.device_pixels import DevicePixels, decode_jpegs  # noqa: E402
from stst.infer.engine import DTYPES, Stylizer  # noqa: E402
from stst.infer.engines import BY_NAME  # noqa: E402
from stst.model.bundled import DEFAULT_MODEL, bundled_models  # noqa: E402
from stst.model.checkpoint import load_model  # noqa: E402
from stst.stylize import JobSettings, plan_jobs, run_jobs  # noqa: E402
from stst.video.encoders import choose_encoder  # noqa: E402
from stst.video.settings import VideoSettings  # noqa: E402

SOURCES = [*sorted((ROOT / "stst" / "examples" / "training").glob("*.jpg")),
           *sorted((ROOT / "tests" / "data" / "photos").glob("*.jpg"))]
HD, UHD = (1920, 1080), (3840, 2160)
TIER_FILES = {"full": DEFAULT_MODEL, "light": f"{DEFAULT_MODEL}-light", "realtime": f"{DEFAULT_MODEL}-realtime"}


def enlarged(source: Path, size: tuple[int, int], seed: int) -> Image.Image:
    """A Kodak photo cropped to ``size``'s shape at a random place and enlarged to it (camera-like content)."""
    rng = np.random.default_rng(seed)
    img = Image.open(source).convert("RGB")
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    w, h = img.size
    crop_h = min(h, round(w * size[1] / size[0]))
    crop_w = round(crop_h * size[0] / size[1])
    top, left_ = int(rng.integers(0, h - crop_h + 1)), int(rng.integers(0, w - crop_w + 1))
    return img.crop((left_, top, left_ + crop_w, top + crop_h)).resize(size, Image.Resampling.BICUBIC)


def make_photos(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)

    def one(i: int) -> Path:
        path = folder / f"photo{i:04d}.jpg"
        enlarged(SOURCES[i % len(SOURCES)], HD, i).save(path, quality=90)
        return path

    with ThreadPoolExecutor(cpu_cores()) as pool:
        return list(pool.map(one, range(count)))


def make_clip(path: Path, frames: int, fps: int = 30) -> Path:
    """A 1080p H.264 clip panning over an enlarged photo, with an AAC tone (PyAV)."""
    import av

    wide = np.asarray(enlarged(SOURCES[0], (2400, 1350), 0))
    rate = 48000
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps, options={"preset": "veryfast", "crf": "20"})
        video.width, video.height, video.pix_fmt = *HD, "yuv420p"
        sound = out.add_stream("aac", rate=rate)
        for i in range(frames):
            x, y = (i * 2) % (wide.shape[1] - HD[0]), (i // 3) % (wide.shape[0] - HD[1])
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(wide[y:y + HD[1], x:x + HD[0]]), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
        samples = rate * frames // fps
        tone = (0.2 * np.sin(np.arange(samples) * 2 * np.pi * 440 / rate)).astype(np.float32)
        chunk = sound.codec_context.frame_size or 1024
        for start in range(0, samples, chunk):
            frame = av.AudioFrame.from_ndarray(tone[None, start:start + chunk], format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            for packet in sound.encode(frame):
                out.mux(packet)
        for packet in sound.encode(None):
            out.mux(packet)
    return path


def gpu_seconds(run, repeats: int) -> float:
    """Median seconds of ``run()`` by CUDA events, after one warm-up."""
    run()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        run()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1000)
    return statistics.median(times)


def grey_levels(a: torch.Tensor, b: torch.Tensor) -> str:
    """How far output ``a`` is from ``b`` (0..1 images) in grey levels once both are rounded to bytes."""
    diff = (to_uint8(a[0]).astype(int) - to_uint8(b[0]).astype(int))
    return f"mean {np.abs(diff).mean():.3f}, max {np.abs(diff).max()}, {(np.abs(diff) > 2).mean() * 100:.3f}% > 2"


def network_rows(tier: str, model_path: Path, photo: Path, repeats: int) -> None:
    """The network alone at 1080p: eager fp32 batch 1, eager fp16 batch 8, inductor fp16 batch 8; the outputs of a
    real photo against fp32's; the peak memory of a batch of 8."""
    device = torch.device("cuda")
    model = load_model(model_path, device)[0].eval()
    image = torch.from_numpy(read_photo(photo).pixels)[None].to(device)
    eight = image.repeat(8, 1, 1, 1).contiguous(memory_format=torch.channels_last)
    last = model.to(memory_format=torch.channels_last)

    def forward(net, x, dtype):
        with torch.inference_mode(), torch.autocast("cuda", dtype=dtype or torch.float16, enabled=dtype is not None):
            return net(x)

    with torch.inference_mode():
        reference = forward(model, image, None).float().clamp(0, 1).cpu()
    rows = [("eager fp32, batch 1", model, image, None), ("eager fp16, batch 8", last, eight, DTYPES["fp16"])]
    start = time.perf_counter()
    compiled = Compiled(last)
    with torch.inference_mode(), torch.autocast("cuda", dtype=DTYPES["fp16"]):
        failed = compiled.build(eight).exception()  # in its thread; the forward runs eager until it ends
    compile_seconds = time.perf_counter() - start
    if failed is not None:
        say(f"| {tier} | inductor fp16: the compile failed ({type(failed).__name__}: {str(failed)[:200]}) | | | |")
    rows.append((f"inductor fp16, batch 8 (compiled in {compile_seconds:.1f} s)", compiled, eight, DTYPES["fp16"]))
    for label, net, x, dtype in rows:
        torch.cuda.reset_peak_memory_stats()
        seconds = gpu_seconds(lambda: forward(net, x, dtype), repeats)
        peak = torch.cuda.max_memory_allocated() / 2 ** 30
        out = forward(net, x, dtype)[:1].float().clamp(0, 1).cpu()  # the batch it ran: no other compile
        say(f"| {tier} | {label} | {len(x) / seconds:.0f} | {peak:.2f} | {grey_levels(out, reference)} |")


def cuda_graph_rows(tier: str, model_path: Path, photo: Path, repeats: int) -> None:
    """Whether CUDA graphs pay where a shape repeats (issue 48): inductor fp16 as the engine compiles it against
    ``mode="reduce-overhead"`` (inductor's kernels replayed as one CUDA graph), for a clip's batch of eight 1080p
    frames and for the live view's single 640x480 frame, with the compile's seconds and the output against eager
    fp32's."""
    device = torch.device("cuda")
    model = load_model(model_path, device)[0].eval().to(memory_format=torch.channels_last)
    image = torch.from_numpy(read_photo(photo).pixels)[None].to(device)
    shapes = {"8 x 1080p": image.repeat(8, 1, 1, 1),
              "1 x 640x480": torch.nn.functional.interpolate(image, size=(480, 640), mode="bilinear")}
    for label, x in shapes.items():
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            reference = model(x[:1]).float().clamp(0, 1).cpu()
        for mode in ("default", "reduce-overhead"):
            torch._dynamo.reset()
            net = torch.compile(model, mode=mode, dynamic=False)

            def forward() -> torch.Tensor:
                with torch.inference_mode(), torch.autocast("cuda", dtype=DTYPES["fp16"]):
                    return net(x)

            start = time.perf_counter()
            for _ in range(3):  # the compile, then the graph's recording
                forward()
            torch.cuda.synchronize()
            compiled = time.perf_counter() - start
            seconds = gpu_seconds(forward, repeats * 4)
            out = forward()[:1].float().clamp(0, 1).cpu()
            say(f"| {tier} | inductor fp16 {mode}, {label} (ready in {compiled:.1f} s) | {len(x) / seconds:.0f} "
                f"frames/s | {grey_levels(out, reference)} |")


def stylizer_rows(tier: str, model_path: Path, photos: list[Path], uhd: Path, repeats: int) -> None:
    """The Stylizer in process: uint8 photos in and out (no codecs), batches of 8; one 4K photo."""
    model = load_model(model_path, "cuda")[0]
    stylizer = Stylizer(model, "cuda")  # as `stst stylize` opens it for a long run: measured, inductor a candidate
    batch = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in photos[:8]])
    start = time.perf_counter()
    chosen = stylizer.warm(*HD[::-1])  # the choice and the compiles, waited for
    say(f"| {tier} | the choice at 1080p, compiles waited for | {chosen} in {time.perf_counter() - start:.1f} s |")
    stylizer.submit(batch).result()  # cuDNN's autotuning, the chunks' measurement
    torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        last = None
        for _ in range(4):  # one batch in flight while the last one's outputs come back, as a run does
            pending = stylizer.submit(batch)
            if last is not None:
                last.result()
            last = pending
        last.result()
        times.append(time.perf_counter() - start)
    engine = f"{stylizer.backend}-{stylizer.precision}"
    say(f"| {tier} | Stylizer.submit, uint8, batches of 8 ({engine}) | {32 / statistics.median(times):.0f} photos/s, "
        f"peak {torch.cuda.max_memory_allocated() / 2 ** 30:.2f} GiB |")
    big = np.asarray(Image.open(uhd).convert("RGB"))[None]
    stylizer.warm(*UHD[::-1])
    stylizer.submit(big).result()
    torch.cuda.reset_peak_memory_stats()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        stylizer.submit(big).result()
        seconds.append(time.perf_counter() - start)
    say(f"| {tier} | one 4K photo in process ({engine}) | {statistics.median(seconds):.3f} s, peak "
        f"{torch.cuda.max_memory_allocated() / 2 ** 30:.2f} GiB |")


def command(args: list[str], home: Path, budget: Budget) -> float:
    """``stst ARGS`` as a user runs it, on ``home``: its wall seconds; then, as a machine does between a user's runs,
    the compiles it handed to processes of their own are waited for (:func:`stst.infer.compiled.hand_over`)."""
    seconds, said = budget.run([sys.executable, "-m", "stst", *args], checkout_env(STST_HOME=str(home)))
    handed = [int(pid) for pid in re.findall(r"goes on in process (\d+)", said)]
    start = time.perf_counter()
    while any(alive(pid) for pid in handed) and budget.left() > 0:
        time.sleep(0.2)
    if handed:
        say(f"(it handed {len(handed)} compile(s) over, which ended {time.perf_counter() - start:.1f} s after it)")
    return seconds


def alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (not ended, nor ended and not yet reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def command_rows(tier: str, model_path: Path, folder: Path, count: int, scratch: Path, budget: Budget) -> None:
    """``stst stylize DIR`` twice on one fresh home (the first run chooses and compiles), as a user runs it."""
    home = scratch / f"home-{tier}"
    for run in ("first", "second"):
        out = scratch / f"out-{tier}-{run}"
        seconds = command(["stylize", str(folder), "-o", str(out), "--model", str(model_path), "--device", "cuda",
                           "-v"], home, budget)
        say(f"| {tier} | stst stylize, {count} 1080p JPEGs, {run} run | {seconds:.1f} s | {count / seconds:.0f} "
            f"photos/s |")


def plain_loop_row(model_path: Path, photos: list[Path], scratch: Path) -> None:
    """What a GPU user of pytorch/examples' fast_neural_style runs: fp32 eager, one photo at a time, Pillow both
    ways, in one thread."""
    model = load_model(model_path, "cuda")[0].eval()
    out = scratch / "plain"
    out.mkdir(exist_ok=True)
    start = time.perf_counter()
    with torch.inference_mode():
        for path in photos:
            x = torch.from_numpy(read_photo(path).pixels)[None].cuda()
            y = model(x).clamp(0, 1).cpu()[0]
            Image.fromarray(to_uint8(y)).save(out / path.name, quality=95)
    seconds = time.perf_counter() - start
    say(f"| full | plain loop (fast_neural_style's way), {len(photos)} photos | {seconds:.1f} s | "
        f"{len(photos) / seconds:.0f} photos/s |")


def uhd_command_row(uhd: Path, scratch: Path, budget: Budget) -> None:
    """One 4K photo through ``stst stylize`` (the full tier), on the home the full tier's folder runs left."""
    seconds = command(["stylize", str(uhd), "-o", str(scratch / "uhd-out.jpg"), "--device", "cuda", "--overwrite"],
                      scratch / "home-full", budget)
    say(f"| full | stst stylize, one 4K photo, whole command | {seconds:.2f} s | |")


def nvjpeg_rows(photos: list[Path]) -> None:
    """Decoding 64 1080p JPEGs: nvJPEG (as a run decodes them on the device, batches of 8) against Pillow in a thread
    per core, with how far nvJPEG's pixels are from Pillow's; and encoding them back (nvJPEG, Pillow)."""
    from torchvision.io import encode_jpeg

    coded = [coded_jpeg(p) for p in photos[:64]]
    decode_jpegs(coded[:8], torch.device("cuda"))
    torch.cuda.synchronize()
    start = time.perf_counter()
    images = [image for i in range(0, 64, 8) for image in decode_jpegs(coded[i:i + 8], torch.device("cuda"))]
    torch.cuda.synchronize()
    gpu = time.perf_counter() - start
    with ThreadPoolExecutor(cpu_cores()) as pool:
        start = time.perf_counter()
        arrays = list(pool.map(lambda p: read_photo(p, uint8=True).pixels, photos[:64]))
        cpu = time.perf_counter() - start
        start = time.perf_counter()
        list(pool.map(lambda a: Image.fromarray(a).save(os.devnull, format="JPEG", quality=95), arrays))
        cpu_encode = time.perf_counter() - start
    diffs = [np.abs(image.permute(1, 2, 0).cpu().numpy().astype(int) - a) for image, a in zip(images, arrays)]
    encode_jpeg(images[:8], quality=95)
    torch.cuda.synchronize()
    start = time.perf_counter()
    encode_jpeg(images, quality=95)
    torch.cuda.synchronize()
    gpu_encode = time.perf_counter() - start
    say(f"| decode 64 1080p JPEGs | nvJPEG {64 / gpu:.0f}/s | Pillow, {cpu_cores()} threads {64 / cpu:.0f}/s |")
    say(f"| nvJPEG's pixels against Pillow's | mean {np.mean([d.mean() for d in diffs]):.3f} levels | max "
        f"{max(int(d.max()) for d in diffs)}, {np.mean([(d > 1).mean() for d in diffs]):.4%} of values past 1 |")
    say(f"| encode 64 1080p JPEGs, q95 | nvJPEG {64 / gpu_encode:.0f}/s | Pillow, {cpu_cores()} threads "
        f"{64 / cpu_encode:.0f}/s |")


def nvjpeg_hazard_row(photos: list[Path], iterations: int = 40) -> None:
    """Whether a decode on the device writes memory that work still queued on the network's stream will read: each
    try fills eight tensors of a decoded photo's bytes with known numbers, queues a long product and a sum of each,
    frees them while the sums wait, and decodes a batch; a wrong sum is memory overwritten. torchvision's decoder
    called on the network's stream (as stst did before) against :meth:`DevicePixels.decode`."""
    coded = [coded_jpeg(p) for p in photos[:8]]
    cuda = torch.device("cuda")
    pixels = DevicePixels(cuda)
    slow = torch.randn(4096, 4096, device=cuda)
    elements = HD[0] * HD[1] * 3 // 4  # int32s in a decoded 1080p photo's bytes

    def wrong_sums(decode) -> int:
        wrong = 0
        for _ in range(iterations):
            held = [torch.full((elements,), k + 1, dtype=torch.int32, device=cuda) for k in range(8)]
            torch.cuda.synchronize()
            for _ in range(20):
                slow @ slow
            sums = [t.sum() for t in held]
            del held
            decode(coded)
            torch.cuda.synchronize()
            wrong += any(int(total) != (k + 1) * elements for k, total in enumerate(sums))
        return wrong

    with torch.inference_mode():
        plain = wrong_sums(lambda c: decode_jpegs(c, cuda))
        guarded = wrong_sums(pixels.decode)
    say(f"| nvJPEG writing memory the network's queued work reads | decode_jpeg on the network's stream: {plain} of "
        f"{iterations} tries overwrote it | stst's decode: {guarded} of {iterations} |")


def outputs_apart(a: Path, b: Path, count: int) -> str:
    """How far the photos two runs wrote are apart (the first ``count``): mean levels, the worst photo's mean."""
    means = [np.abs(np.asarray(Image.open(x), dtype=np.int16) - np.asarray(Image.open(a / x.name), dtype=np.int16))
             .mean() for x in sorted(b.iterdir())[:count]]
    return f"mean {np.mean(means):.2f} levels, worst photo {max(means):.2f}"


class DecodedOnCpu:
    """A stylizer as a run sees it, with JPEGs decoded by Pillow in the reader threads (the path before nvJPEG)."""

    decodes_jpeg = False

    def __init__(self, stylizer: Stylizer) -> None:
        self.stylizer = stylizer

    def __getattr__(self, name: str):
        return getattr(self.stylizer, name)

    def __call__(self, batch):
        return self.stylizer(batch)


def decoding_rows(tier: str, model_path: Path, photos: list[Path], scratch: Path, repeats: int) -> None:
    """The job runner in process on ``photos``, JPEGs decoded on the GPU (nvJPEG, the default) and on the CPU's
    cores, alternated: where decoding on the GPU pays."""
    stylizer = Stylizer(load_model(model_path, "cuda")[0], "cuda")
    stylizer.warm(*HD[::-1])
    ways = {"nvJPEG": stylizer, "Pillow in threads": DecodedOnCpu(stylizer)}
    times: dict[str, list[float]] = {way: [] for way in ways}
    settings = JobSettings().on_gpu(batch_given=False)
    for turn in range(repeats):
        for number, (way, network) in enumerate(ways.items()):
            out = scratch / f"decoding-{tier}-{turn}-{number}"
            start = time.perf_counter()
            report = run_jobs(network, plan_jobs(photos, "m", out), settings, progress=False)
            times[way].append(time.perf_counter() - start)
            if len(report.stylized) != len(photos):
                raise RuntimeError(f"{way}: {report.summary()}, {report.failed[:1]}")
    for way, seconds in times.items():
        say(f"| {tier} | run_jobs in process, {len(photos)} 1080p JPEGs decoded by {way} | "
            f"{statistics.median(seconds):.1f} s | {len(photos) / statistics.median(seconds):.0f} photos/s |")
    apart = outputs_apart(scratch / f"decoding-{tier}-0-0", scratch / f"decoding-{tier}-0-1", 100)
    say(f"| {tier} | outputs, nvJPEG's run against Pillow's (100 photos; nvJPEG's pixels differ a little) | {apart} | |")


def clip_rows(tier: str, model_path: Path, clip: Path, frames: int, scratch: Path, budget: Budget) -> None:
    encoder = choose_encoder("mp4", VideoSettings(device="cuda", quick=tier != "full"), HD)
    say(f"| {tier} | the clip's encoder on this machine | {encoder.name} {encoder.options} | |")
    home = scratch / f"home-{tier}"
    for run in ("first", "second"):
        seconds = command(["stylize", str(clip), "-o", str(scratch / f"clip-{tier}-{run}.mp4"), "--model",
                           str(model_path), "--device", "cuda", "--overwrite"], home, budget)
        say(f"| {tier} | stst stylize, {frames}-frame 1080p clip with audio, steadying on, {run} run | "
            f"{seconds:.1f} s | {frames / seconds:.0f} frames/s |")


def clip_section(tiers: dict[str, Path], scratch: Path, args: argparse.Namespace, budget: Budget) -> None:
    """The clip made, then run by the realtime and full tiers (first and second run each), where PyAV is here."""
    if importlib.util.find_spec("av") is None:
        say("(clips left out: PyAV is not installed; carry its wheel)")
        return
    clip = scratch / "clip.mp4"
    budget.section("make clip", 90, lambda: make_clip(clip, args.frames))
    for tier in [t for t in ("realtime", "full") if t in tiers]:
        if clip.exists():
            budget.section(f"clip {tier}", 60,
                           lambda: clip_rows(tier, tiers[tier], clip, args.frames, scratch, budget))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=1000)
    parser.add_argument("--frames", type=int, default=900)
    parser.add_argument("--tiers", nargs="+", default=["realtime", "light", "full"], choices=list(TIER_FILES))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--budget", type=float, default=480, help="seconds; later sections are left out past it")
    parser.add_argument("--only", nargs="+", help="just the sections whose names hold one of these words")
    args = parser.parse_args()
    budget = Budget(args.budget, args.only)
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU here: this benchmark is for one")
    say(f"GPU: {torch.cuda.get_device_name()} ({torch.cuda.get_device_properties(0).total_memory / 2 ** 30:.0f} GiB), "
        f"torch {torch.__version__}, CUDA {torch.version.cuda}; {describe_cpu()}")
    models = bundled_models()
    tiers = {tier: models[TIER_FILES[tier]] for tier in args.tiers}
    scratch = Path(tempfile.mkdtemp(prefix="bench-gpu-"))
    photos = make_photos(scratch / "photos", args.photos)
    uhd = scratch / "uhd.jpg"
    enlarged(SOURCES[1], UHD, 1).save(uhd, quality=90)
    say(f"data: {len(photos)} 1080p JPEGs and a 4K one in {budget.spent():.1f} s")
    ranked = sorted(tiers, key=lambda t: t == "light")  # the acceptance's tiers first: the budget may run out
    say("\n| tier | whole command | seconds | rate |\n|---|---|---|---|")
    for tier in ranked:
        budget.section(f"command {tier}", 60,
                       lambda: command_rows(tier, tiers[tier], scratch / "photos", len(photos), scratch, budget))
    clip_section(tiers, scratch, args, budget)
    say("\n| tier | in process | result |\n|---|---|---|")
    for tier in ranked:
        budget.section(f"stylizer {tier}", 30, lambda: stylizer_rows(tier, tiers[tier], photos, uhd, args.repeats))
    stated = "; ".join(f"{name}: {BY_NAME[name].output}" for name in ("torch-fp16", "inductor-fp16"))
    say(f"\n(the engine table states: {stated})")
    say("\n| tier | network alone, 1080p | frames/s | peak GiB | output against eager fp32 (grey levels) |")
    say("|---|---|---|---|---|")
    for tier in ranked:
        budget.section(f"network {tier}", 30, lambda: network_rows(tier, tiers[tier], photos[0], args.repeats))
    say("\n| tier | more | result | |\n|---|---|---|---|")
    if "full" in tiers:
        budget.section("4K command", 20, lambda: uhd_command_row(uhd, scratch, budget))
    budget.section("nvJPEG", 15, lambda: nvjpeg_rows(photos))
    budget.section("nvJPEG hazard", 15, lambda: nvjpeg_hazard_row(photos))
    fastest = ranked[0]  # where decoding weighs most
    budget.section("decoding", 45, lambda: decoding_rows(fastest, tiers[fastest], photos[:300], scratch, 2))
    budget.section("plain loop", 40,
                   lambda: plain_loop_row(tiers.get("full", models[DEFAULT_MODEL]), photos[:200], scratch))
    budget.section("CUDA graphs", 60, lambda: cuda_graph_rows(fastest, tiers[fastest], photos[0], args.repeats))
    say(f"\n(total {budget.spent():.0f} s)")


if __name__ == "__main__":
    main()
