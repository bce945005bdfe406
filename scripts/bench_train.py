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
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from stst.base.devices import resolve_device
from stst.training.losses import build_loss, gram
from stst.model.network import TransformerNet
from stst.training.options import make_options
from stst.training.train import _load_style, backward_step, forward_losses, training_precision
from stst.training.vgg import VGGFeatures
from stst.training.weights import resolve_vgg_weights

STYLE = Path(__file__).resolve().parents[1] / "tests" / "data" / "styles" / "starry_night.jpg"


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=7)
    args = parser.parse_args()
    device = resolve_device(args.device)
    options = make_options(str(STYLE), ".", "johnson", image_size=args.size, batch_size=args.batch)
    style = _load_style(options)
    vgg_state, _ = resolve_vgg_weights()
    x = torch.rand(args.batch, 3, args.size, args.size, device=device)
    print(f"device {device}, {torch.get_num_threads()} threads, torch {torch.__version__}; "
          f"{args.size} px, batch {args.batch}, median of {args.steps} steps")

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
