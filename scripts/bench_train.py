"""Benchmark one training step: stst's against a plain eager fp32 step of the same network and losses.

The plain step is the pytorch/examples ``fast_neural_style`` way: the full
VGG16 pass to relu4_3 over both the stylized batch and the photos, Gram
matrices of every style layer, fp32 throughout. stst's step shares one VGG
pass of the stylized batch between content and style terms, stops the photo's
pass at the content layer, and runs in the training precision that
``stst train`` picks (``--precision``). Prints seconds per iteration (median
over ``--steps`` after a warm-up) and the ratio, for fp32 forced and for the
default, at 256 px and batch 4 unless told otherwise.

    python scripts/bench_train.py
    python scripts/bench_train.py --size 128 --steps 5
    python scripts/bench_train.py --preset quick --size 128   # the quick recipe's step, its palette term included
    python scripts/bench_train.py --gpu --out DIR   # on a GPU: the section below, the quick model written to DIR

With ``--gpu``, in the order of what issue 49's acceptance needs, each section while ``--budget`` seconds allow:
plain ``stst train --style P`` as a user runs it (wall seconds; the model into ``--out``, to be judged where the CPU's
quick model is: ``scripts/bench_own_style.py P --model FILE``); the same short run under ``torchrun
--nproc-per-node 1`` (NCCL) against one process, loss for loss; whole training runs
(``stst.training.train.train``, data loading included) at 256 px, steps a second between the losses read at step 50
and the last, Johnson's recipe at batch 4 in bf16 first, then the other precisions, larger batches and ``--compile``;
a profile of ten bf16 steps (the kernels that take the time); the crop loader alone on 640x480 JPEGs, and the shipped
photos through it and cut on the GPU. ``--style`` is the painting: ../shared/data's where it is beside the
checkout (carry it to the device machine), as the CPU's quick models were judged on.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from budget import Budget, checkout_env, say

from stst.base.devices import resolve_device
from stst.model.checkpoint import load_checkpoint, save_checkpoint
from stst.training.losses import build_loss, gram
from stst.model.network import TransformerNet
from stst.training.options import make_options
from stst.training.train import _load_style, backward_step, forward_losses, training_precision
from stst.training.vgg import VGGFeatures
from stst.training.weights import resolve_vgg_weights

ROOT = Path(__file__).resolve().parents[1]
STYLE = ROOT / "tests" / "data" / "styles" / "starry_night.jpg"  # 256x160: the step's cost, not a model to judge
PAINTING = ROOT.parent / "shared" / "data" / "styles" / "starry_night.jpg"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_step(step, device: torch.device, steps: int) -> float:
    step()  # warm-up: allocations, oneDNN/cuDNN primitive selection
    times = []
    for _ in range(steps):
        sync(device)
        start = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def loss_readings(log: Path) -> dict[int, dict]:
    """A run's loss log (``--loss-log``): each reading by its iteration, in the run's order."""
    return {row["iteration"]: row for row in map(json.loads, log.read_text().splitlines())}


def logged_rate(log: Path, after: int) -> float:
    """Steps a second between the first reading at or after step ``after`` and the last, from a run's loss log."""
    rows = list(loss_readings(log).values())
    first = next(r for r in rows if r["iteration"] >= after)
    return (rows[-1]["iteration"] - first["iteration"]) / (rows[-1]["seconds"] - first["seconds"])


# The whole runs of the GPU section, the acceptance's first (Johnson's recipe at batch 4 in the default precision),
# the compile last (it takes longest): (batch, precision, compile).
GPU_RUNS = [(4, "bf16", False), (4, "fp32", False), (4, "fp16", False), (16, "bf16", False), (32, "bf16", False),
            (64, "bf16", False), (4, "bf16", True)]


def gpu_run(style: Path, scratch: Path, steps: int, batch: int, precision: str, compile_: bool) -> None:
    """One whole run (data loading and the loss readings included): steps a second between the losses read at step
    50 and the last."""
    from stst.training.datasets import SHIPPED_PHOTOS
    from stst.training.options import RunSettings, TrainOptions
    from stst.training.train import train

    log = scratch / f"log-{batch}-{precision}-{compile_}.jsonl"
    options = TrainOptions(style=str(style), dataset=str(SHIPPED_PHOTOS), batch_size=batch, iterations=steps)
    losses = train(options, RunSettings(output=scratch / "run.pth", log=log, precision=precision, compile=compile_,
                                        progress=False, checkpoint_every=0, overwrite=True), log=lambda message: None)
    rate = logged_rate(log, 50)
    say(f"| {batch} | {precision} | {'yes' if compile_ else 'no'} | {rate:.1f} | {rate * batch:.0f} | "
        f"{losses['total']:.4g} |")


def loader_rate(scratch: Path) -> None:
    """The crop loader alone (default workers) on 640x480 JPEGs, as COCO's: crops a second at 256 px; and the
    shipped photos (the GPU quick recipe's) through the loader and cut on the GPU (stst.training.device_crops), batches
    of 8."""
    from PIL import Image

    from stst.training.data import crop_loader
    from stst.training.datasets import SHIPPED_PHOTOS
    from stst.training.device_crops import DeviceCrops
    from stst.training.options import RunSettings

    folder = scratch / "coco-like"
    folder.mkdir(exist_ok=True)
    sources = sorted(SHIPPED_PHOTOS.glob("*.jpg"))
    files = []
    for i in range(400):
        path = folder / f"{i:04d}.jpg"
        Image.open(sources[i % len(sources)]).resize((640, 480)).rotate(i % 7).save(path, quality=90)
        files.append(path)
    workers = RunSettings(output=scratch / "x").workers
    device = torch.device("cuda")
    sources_of = {"640x480 JPEGs, loader": (files, 4, False), "shipped photos, loader": (sources, 8, False),
                  "shipped photos, cut on the GPU": (sources, 8, True)}
    for label, (photos, batch, held) in sources_of.items():
        source = DeviceCrops(photos, 256, batch, 0, device) if held else \
            crop_loader(photos, 256, batch, 0, workers=workers, pin_memory=True)
        batches = iter(source)
        for _ in range(10):
            next(batches)["image"].to(device, non_blocking=True)
        sync(device)
        start = time.perf_counter()
        for _ in range(200):
            next(batches)["image"].to(device, non_blocking=True)
        sync(device)
        seconds = time.perf_counter() - start
        print(f"\ncrops at 256 px, {label} ({workers if not held else 0} workers): {200 * batch / seconds:.0f} "
              f"crops/s ({200 / seconds:.0f} batches of {batch} a second)", flush=True)


def profile_steps(device: torch.device, options, style, vgg_state) -> None:
    """Ten bf16 steps at 256 px batch 4 as stst trains them, under torch.profiler: the ops that take the time."""
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    net = TransformerNet().to(device).train().to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3, fused=True)
    precision = training_precision(device, "bf16", net)
    loss_fn = build_loss(options, style, vgg_state, device)
    loss_fn.encoder.to(memory_format=torch.channels_last)
    x = torch.rand(4, 3, 256, 256, device=device).contiguous(memory_format=torch.channels_last)
    for _ in range(5):
        backward_step(forward_losses(net, loss_fn, x, precision), optimizer, precision)
    sync(device)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(10):
            backward_step(forward_losses(net, loss_fn, x, precision), optimizer, precision)
        sync(device)
    print("\nprofile of 10 bf16 steps, 256 px, batch 4 (top ops by GPU time):")
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=12), flush=True)


def stst(args: list[str], env: dict, budget: Budget, torchrun: bool = False) -> float:
    """``stst ARGS`` in a process of its own (under ``torchrun --nproc-per-node 1`` where asked): its wall seconds."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "1"] if torchrun else [
        sys.executable]
    return budget.run([*launcher, "-m", "stst", *args], env)[0]


def plain_train(style: Path, scratch: Path, out: Path, env: dict, budget: Budget) -> None:
    """Plain ``stst train --style P`` as a user types it (wall seconds); its model into ``out`` without the training
    state (7 MB, not 21: a lease brings back files of 16 MiB at most), to be judged beside the CPU's."""
    trained = scratch / f"gpu-quick-{style.stem}.pth"
    seconds = stst(["train", "--style", str(style), "-o", str(trained), "--overwrite"], env, budget)
    checkpoint = load_checkpoint(trained)
    model = out / trained.name
    save_checkpoint(model, checkpoint.build(), checkpoint.metadata, style_image=checkpoint.style_image)
    say(f"\nstst train --style {style.name} (plain, no data set at hand): {seconds:.1f} s wall, "
        f"{checkpoint.metadata['iterations']} steps; wrote {model}")


# The short run that torchrun and one process both make: Johnson's recipe in fp32 (bf16's rounding would hide what
# the comparison is for), the losses read every 25 steps and at the last on a GPU.
TORCHRUN_RUN = ["--preset", "johnson", "--dataset", "kodak", "--iterations", "50", "--precision", "fp32", "--workers",
                "0", "--checkpoint-every", "0"]


def largest_difference(a: dict[int, dict], b: dict[int, dict]) -> float:
    """The largest relative difference between two runs' loss terms (:func:`loss_readings`), at the iterations both
    read."""
    common = a.keys() & b.keys()
    if not common:
        raise RuntimeError("the two runs read their losses at no common step")
    return max(abs(a[i][k] - b[i][k]) / max(abs(a[i][k]), 1e-12) for i in common for k in a[i]
               if k not in ("iteration", "seconds"))


def torchrun_against_one(style: Path, scratch: Path, env: dict, budget: Budget) -> None:
    """The same short run under ``torchrun --nproc-per-node 1`` (NCCL on a GPU) and in one process, loss for loss;
    beside it, one process against itself run again (the GPU's own run-to-run difference: kernels that add with
    atomics, nearest upsampling's backward and some of cuDNN's, do not add in the same order twice)."""
    runs = {}
    for name, torchrun in (("one", False), ("one again", False), ("torchrun", True)):
        stem = scratch / f"dist-{name.replace(' ', '-')}"
        stst(["train", "--style", str(style), *TORCHRUN_RUN, "--loss-log", str(stem.with_suffix(".jsonl")), "-o",
              str(stem.with_suffix(".pth")), "--overwrite"], env, budget, torchrun)
        runs[name] = loss_readings(stem.with_suffix(".jsonl"))
    say(f"torchrun --nproc-per-node 1 against one process, {' '.join(TORCHRUN_RUN)}: losses read at "
        f"{list(runs['torchrun'])}, largest relative difference {largest_difference(runs['one'], runs['torchrun']):.2e}"
        f" (one process run again: {largest_difference(runs['one'], runs['one again']):.2e})")


def gpu_section(args: argparse.Namespace) -> None:
    """The sections in the order of what issue 49's acceptance needs, each while ``--budget`` allows."""
    from PIL import Image

    budget = Budget(args.budget, args.only)
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU here: --gpu is for one")
    device = torch.device("cuda")
    say(f"GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}")
    style = Path(args.style)
    say(f"painting: {style} ({'x'.join(map(str, Image.open(style).size))})")
    scratch = Path(tempfile.mkdtemp(prefix="bench-train-gpu-"))
    out = Path(args.out or scratch)
    out.mkdir(parents=True, exist_ok=True)
    env = checkout_env()
    budget.section("plain stst train", 90, lambda: plain_train(style, scratch, out, env, budget))
    budget.section("torchrun", 60, lambda: torchrun_against_one(style, scratch, env, budget))
    say("\n| batch | precision | compile | steps/s | images/s | loss at the end |\n|---|---|---|---|---|---|")

    def run(batch: int, precision: str, compile_: bool) -> None:
        budget.section(f"run at batch {batch}, {precision}{', compiled' if compile_ else ''}", 90 if compile_ else 20,
                       lambda: gpu_run(style, scratch, args.gpu_steps, batch, precision, compile_))

    first, *more = GPU_RUNS
    run(*first)
    options = make_options(str(style), ".", "johnson")
    budget.section("profile", 30,
                   lambda: profile_steps(device, options, _load_style(options), resolve_vgg_weights()[0]))
    for row in more:
        run(*row)
    budget.section("crops", 40, lambda: loader_rate(scratch))
    say(f"\n(total {budget.spent():.0f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=7)
    parser.add_argument("--preset", default="johnson", help="the recipe's losses (quick: with its palette term)")
    parser.add_argument("--gpu", action="store_true", help="the GPU section (whole runs, profile, commands)")
    parser.add_argument("--gpu-steps", type=int, default=200, help="steps of each whole run of --gpu")
    parser.add_argument("--out", help="--gpu: where the quick model goes")
    parser.add_argument("--style", default=str(PAINTING if PAINTING.is_file() else STYLE),
                        help="--gpu: the painting (default: ../shared/data's The Starry Night where it is beside the "
                             "checkout, as the CPU's quick models were judged on; else the tests' small copy)")
    parser.add_argument("--budget", type=float, default=300, help="--gpu: seconds; later sections are left out past it")
    parser.add_argument("--only", nargs="+", help="--gpu: just the sections whose names hold one of these words")
    args = parser.parse_args()
    if args.gpu:
        gpu_section(args)
        return
    device = resolve_device(args.device)
    options = make_options(str(STYLE), ".", args.preset, image_size=args.size, batch_size=args.batch)
    style = _load_style(options)
    vgg_state, _ = resolve_vgg_weights()
    x = torch.rand(args.batch, 3, args.size, args.size, device=device)
    print(f"device {device}, {torch.get_num_threads()} threads, torch {torch.__version__}; "
          f"{args.preset}'s losses, {args.size} px, batch {args.batch}, median of {args.steps} steps")

    # The plain step (pytorch/examples): two full VGG passes, everything fp32.
    torch.manual_seed(0)
    plain_net = TransformerNet().to(device).train()
    plain_opt = torch.optim.Adam(plain_net.parameters(), lr=1e-3)
    vgg = VGGFeatures(vgg_state, "relu4_3").to(device)
    layers = list(options.style_layers)
    targets = {k: gram(v) for k, v in vgg((style.float() / 255)[None].to(device), layers).items()}

    def plain_step() -> None:
        plain_opt.zero_grad()
        y = plain_net(x)
        fy, fx = vgg(y, layers), vgg(x, layers)
        content = options.content_weight * F.mse_loss(fy["relu2_2"], fx["relu2_2"])
        style_loss = sum(F.mse_loss(gram(fy[k]), targets[k].expand(args.batch, -1, -1)) for k in layers)
        tv = (y[..., 1:, :] - y[..., :-1, :]).abs().mean() + (y[..., :, 1:] - y[..., :, :-1]).abs().mean()
        (content + options.style_weight * style_loss + options.tv_weight * tv).backward()
        plain_opt.step()

    reference = median_step(plain_step, device, args.steps)
    print("\n| step | precision | s/iteration | images/s | time vs plain fp32 |\n|---|---|---|---|---|")
    print(f"| plain eager fp32 (pytorch/examples) | fp32 | {reference:.3f} | {args.batch / reference:.1f} | 1.00x |",
          flush=True)
    for label, setting in (("stst, `--precision fp32`", "fp32"), ("stst default (`--precision auto`)", "auto")):
        torch.manual_seed(0)
        net = TransformerNet().to(device).train()
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
        precision = training_precision(device, setting, net)
        loss_fn = build_loss(options, style, vgg_state, device)
        seconds = median_step(lambda: backward_step(forward_losses(net, loss_fn, x, precision), optimizer, precision),
                              device, args.steps)
        print(f"| {label} | {precision.name} | {seconds:.3f} | {args.batch / seconds:.1f} | "
              f"{seconds / reference:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
