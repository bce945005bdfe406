"""Training a style: the loop behind ``stst train``, resumable and interruptible."""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from .checkpoint import load_checkpoint, save_checkpoint
from .data import CropDataset, ResumableSampler, collate, find_images, ignore_sigint
from .devices import resolve_device
from .errors import StstError
from .imageio import read_photo, to_uint8, write_photo
from .losses import ContentLoss, PerceptualLoss, StyleLoss, TotalVariationLoss, style_targets
from .network import ArchConfig, TransformerNet
from .options import RunSettings, TrainOptions
from .stylize import stylize_tensor
from .vgg import LAYERS, VGGFeatures, check_layers
from .weights import resolve_vgg_weights

EXIT_INTERRUPTED = 130


class TrainingError(StstError):
    """Training cannot go on (non-finite loss, nothing to resume)."""


class TrainingInterrupted(StstError):
    """Ctrl-C: a resumable checkpoint was written."""

    exit_code = EXIT_INTERRUPTED


def iterations_for_epochs(epochs: float, images: int, batch_size: int) -> int:
    """Iterations that show every training image ``epochs`` times."""
    return max(1, math.ceil(epochs * images / batch_size))


def build_loss(
    options: TrainOptions, style_image: torch.Tensor, vgg_state: dict[str, torch.Tensor], device: torch.device
) -> PerceptualLoss:
    """The perceptual loss of a run: its layers and weights, with Gram targets from the (3, H, W) uint8 style image."""
    check_layers([options.content_layer, *options.style_layers])
    deepest = max([options.content_layer, *options.style_layers], key=LAYERS.get)
    encoder = VGGFeatures(vgg_state, deepest).to(device)
    targets = style_targets(encoder, (style_image.float() / 255)[None].to(device), list(options.style_layers))
    return PerceptualLoss(
        encoder,
        ContentLoss(options.content_layer, options.content_weight),
        StyleLoss(targets, dict(options.style_layers), options.style_weight),
        TotalVariationLoss(options.tv_weight),
    )


def learning_rate(options: TrainOptions, iteration: int) -> float:
    """The rate for step ``iteration`` (0-based): a function of position, so resuming needs no scheduler state."""
    if options.lr_schedule == "cosine":
        return options.lr * 0.5 * (1 + math.cos(math.pi * iteration / options.iterations))
    return options.lr


def _load_style(path: str | Path, long_side: int) -> torch.Tensor:
    """The style image with its long side resized to ``long_side``, aspect kept, as (3, H, W) uint8."""
    photo = read_photo(path)
    h, w = photo.size
    scale = long_side / max(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    rgb = torch.nn.functional.interpolate(photo.rgb[None], size=size, mode="bicubic", antialias=True)[0]
    return torch.from_numpy(to_uint8(rgb)).permute(2, 0, 1).contiguous()


def _hardware(device: torch.device) -> dict:
    info = {"device": str(device), "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine()}
    try:
        info["cpu"] = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


class _InterruptFlag:
    """First Ctrl-C asks the loop to checkpoint and stop; a second one stops at once."""

    def __init__(self) -> None:
        self.raised = False
        self.previous = None

    def __enter__(self) -> "_InterruptFlag":
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.raised:
            raise KeyboardInterrupt
        self.raised = True

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def train(
    options: TrainOptions | None,
    run: RunSettings,
    resume: str | Path | None = None,
    iterations: int | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Train a style network and write it to ``run.output``; returns the final losses.

    With ``resume``, the options, weights, optimiser state and position in the
    data stream come from that checkpoint, and ``iterations`` (if given)
    extends or shortens the run.
    """
    device = resolve_device(run.device)
    state = None
    if resume is not None:
        ckpt = load_checkpoint(resume)
        if not ckpt.training or ckpt.style_image is None:
            raise TrainingError(f"{resume}: holds no training state, so it cannot be resumed")
        state = ckpt.metadata
        options = TrainOptions(**state["options"])
        style_image = ckpt.style_image
    elif options is None:
        raise TrainingError("give the training options or a checkpoint to resume")
    if iterations is not None:
        options = replace(options, iterations=iterations)

    files = find_images(options.dataset)
    if resume is None:
        style_image = _load_style(options.style, options.style_size)
    vgg_state, vgg_source = resolve_vgg_weights(run.vgg_weights, log)
    loss_fn = build_loss(options, style_image, vgg_state, device)

    torch.manual_seed(options.seed)
    model = TransformerNet(ArchConfig(channels=options.channels, residual=options.residual)).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=options.lr)
    start, seconds = 0, 0.0
    if state is not None:
        model.load_state_dict(ckpt.state_dict)
        optimizer.load_state_dict(ckpt.training["optimizer"])
        start, seconds = state["iterations"], state["train_seconds"]

    loader = DataLoader(
        CropDataset(files, options.image_size, options.seed),
        batch_size=options.batch_size,
        sampler=ResumableSampler(len(files), options.seed, start * options.batch_size),
        num_workers=run.workers,
        collate_fn=collate,
        worker_init_fn=ignore_sigint if run.workers else None,
        pin_memory=device.type == "cuda",
    )
    preview = read_photo(run.preview, max_size=512).rgb[None] if run.preview else None
    if state is None:
        style_meta = {"name": Path(options.style).name, "size": list(style_image.shape[1:]),
                      "sha256": hashlib.sha256(Path(options.style).read_bytes()).hexdigest()}
    else:
        style_meta = state["style"]
    hardware = _hardware(device)
    unreadable: set[str] = set()
    losses: dict[str, float] = state["losses"] if state else {}
    log_file = open(run.log, "a" if resume else "w") if run.log else None

    def save(iteration: int) -> None:
        metadata = {
            "style": style_meta,
            "options": asdict(options),
            "iterations": iteration,
            "losses": losses,
            "train_seconds": seconds,
            "hardware": hardware,
            "dataset": {"path": str(options.dataset), "images": len(files), "unreadable": len(unreadable)},
            "vgg_weights": vgg_source,
        }
        save_checkpoint(run.output, model, metadata, training={"optimizer": optimizer.state_dict()},
                        style_image=style_image)

    bar = tqdm(total=options.iterations, initial=start, unit="it", desc="training", disable=not run.progress,
               dynamic_ncols=True)
    iteration = start
    try:
        with _InterruptFlag() as interrupt:
            batches = iter(loader)
            while iteration < options.iterations:
                tick = time.perf_counter()
                batch = next(batches)
                for message in batch["skipped"]:
                    if message not in unreadable:
                        unreadable.add(message)
                        bar.write(f"warning: skipping unreadable training image {message}")
                x = batch["image"].to(device, non_blocking=True)
                terms = loss_fn(model(x), x)
                if not torch.isfinite(terms["total"]):
                    values = ", ".join(f"{k}={v.item():.4g}" for k, v in terms.items())
                    raise TrainingError(f"loss is not finite at iteration {iteration + 1} ({values}); "
                                        "try a lower --lr or loss weights")
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate(options, iteration)
                optimizer.zero_grad(set_to_none=True)
                terms["total"].backward()
                optimizer.step()
                iteration += 1
                seconds += time.perf_counter() - tick
                losses = {k: v.item() for k, v in terms.items()}
                bar.set_postfix(content=f"{losses['content']:.3g}", style=f"{losses['style']:.3g}",
                                tv=f"{losses['tv']:.3g}", refresh=False)
                bar.update()
                if log_file:
                    log_file.write(json.dumps({"iteration": iteration, **losses, "seconds": round(seconds, 3)}) + "\n")
                    log_file.flush()
                if preview is not None and iteration % run.preview_every == 0:
                    model.eval()
                    out = stylize_tensor(model, preview)[0]
                    model.train()
                    path = run.output.with_name(f"{run.output.stem}-preview-{iteration:06d}.jpg")
                    write_photo(path, out, None, "JPEG")
                if interrupt.raised:
                    save(iteration)
                    raise TrainingInterrupted(
                        f"interrupted at iteration {iteration}; checkpoint saved to {run.output}. "
                        f"Resume with: stst train --resume {run.output}"
                    )
                if run.checkpoint_every and iteration % run.checkpoint_every == 0 and iteration < options.iterations:
                    save(iteration)
    finally:
        bar.close()
        if log_file:
            log_file.close()
    save(iteration)
    if unreadable:
        log(f"{len(unreadable)} unreadable training image(s) were skipped")
    return losses
