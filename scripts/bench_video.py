"""Benchmark video: end-to-end and network-only frames per second, and flicker (warping error) with its levers.

    python scripts/bench_video.py                     # ../shared/data/videos/cup.mp4, all sections
    python scripts/bench_video.py --frames 60 --max-size 320 --skip-speed

Flicker: the warping error of Lai et al. 2018 (stst.flicker), measured with
Farneback flow (the blend uses DIS), and the frames' content/style losses under
the model's own training losses (every 5th frame), for frame-by-frame
stylization and for --temporal-blend weights, beside the source clip itself.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

from stst.bundled import DEFAULT_MODEL, bundled_models
from stst.checkpoint import load_checkpoint, load_model
from stst.devices import resolve_device
from stst.flicker import read_frames, warping_error
from stst.imageio import array_tensor
from stst.options import options_from_dict
from stst.engine import Stylizer
from stst.losses import build_loss
from stst.video import stylize_video
from stst.weights import resolve_vgg_weights

CLIP = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos" / "cup.mp4"


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


def speed(stylizer: Stylizer, clip: Path, scratch: Path, label: str) -> None:
    frames = [array_tensor(f) for f in read_frames(clip)]
    stylizer(torch.stack(frames[:4]))  # warm-up
    start = time.perf_counter()
    for i in range(0, len(frames), 4):
        stylizer(torch.stack(frames[i: i + 4]))
    network = time.perf_counter() - start
    start = time.perf_counter()
    stylize_video(stylizer, clip, scratch / "speed.mp4", progress=False)
    total = time.perf_counter() - start
    n = len(frames)
    print(f"| {label} | {n} | {n / network:.2f} | {n / total:.2f} | {total / network:.2f}x |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=CLIP)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--max-size", type=int, default=320)
    parser.add_argument("--weights", type=float, nargs="*", default=[0.5, 0.7])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-flicker", action="store_true")
    args = parser.parse_args()
    device = resolve_device(args.device)
    model_path = bundled_models()[DEFAULT_MODEL]
    model, _ = load_model(model_path)
    scratch = Path(tempfile.mkdtemp(prefix="stst-bench-video-"))
    clip = excerpt(args.clip, scratch / "clip.mp4", args.frames, args.max_size)
    w, h = next(read_frames(clip)).shape[1::-1]
    print(f"clip: {args.clip.name}, first {args.frames} frames at {w}x{h}; model {DEFAULT_MODEL}; "
          f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} threads")
    if not args.skip_speed:
        print("\n| precision | frames | network-only fps | end-to-end fps | end-to-end / network time |\n|---|---|---|---|---|")
        for precision in ("fp32", "auto"):
            stylizer = Stylizer(model, device, precision=precision, tile=None)
            speed(stylizer, clip, scratch, f"{precision} ({stylizer.backend} {stylizer.precision})")
    if not args.skip_flicker:
        ckpt = load_checkpoint(model_path)
        loss = build_loss(options_from_dict(ckpt.metadata["options"]), ckpt.style_image, resolve_vgg_weights()[0],
                          torch.device("cpu"))
        source = list(read_frames(clip))
        print("\n| video | warping error (Farneback) | vs frame-by-frame | content | style |\n|---|---|---|---|---|")
        base = None
        stylizer = Stylizer(model, device, tile=None)
        for weight in [0.0, *args.weights]:
            out = scratch / f"w{weight}.mp4"
            stylize_video(stylizer, clip, out, progress=False, temporal=weight)
            frames = list(read_frames(out))
            error = warping_error(source, frames, "farneback")
            base = base or error
            with torch.no_grad():
                terms = [loss(array_tensor(o)[None], array_tensor(s)[None]) for s, o in zip(source[::5], frames[::5])]
            content = np.mean([t["content"].item() for t in terms])
            style = np.mean([t["style"].item() for t in terms])
            label = "frame by frame" if weight == 0 else f"--temporal-blend {weight}"
            print(f"| {label} | {error:.5f} | {error / base:.2f}x | {content:.4g} | {style:.4g} |", flush=True)
        print(f"| the source clip itself | {warping_error(source, source, 'farneback'):.5f} | | | |")


if __name__ == "__main__":
    main()
