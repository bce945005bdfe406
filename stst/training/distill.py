"""The faster tiers: a smaller network (narrower, or of the realtime design) taught to reproduce a style model.

Knowledge distillation (Hinton, Vinyals, Dean 2015, https://arxiv.org/abs/1503.02531;
for style networks, Wang et al. 2020, "Collaborative Distillation for
Ultra-Resolution Universal Style Transfer", https://arxiv.org/abs/2003.08436).
The student (by default width 16: a quarter of the multiply-adds) sees random
crops of the training photos and learns the teacher's output on the same crops:
an L1 loss on the colours and on their horizontal and vertical differences, so
that edges and strokes stay as sharp as the teacher's. No VGG pass is needed,
so an iteration costs a fraction of a training iteration, and the student
inherits the teacher's style without its loss weights being tuned again.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..base.devices import hardware_info, resolve_device
from ..base.errors import FileProblem, StstError
from ..base.fileio import check_target, check_writable, file_sha256
from ..model.checkpoint import NOT_FINITE_WEIGHTS, load_checkpoint, save_checkpoint
from ..model.network import ArchConfig, build_network
from .data import crop_loader, find_images
from .options import cosine_rate, options_from_dict


@dataclass(frozen=True)
class DistillOptions:
    """How a faster tier is taught; stored in its metadata under ``distilled_from``."""

    width: int = 16
    design: str = "johnson"  # or "realtime" (stst.model.network.RealtimeNet)
    iterations: int = 3000  # the bundled tiers taught for 3000 scored 13-46% lower than for 1500 (models/README.md)
    image_size: int = 128
    batch_size: int = 4
    lr: float = 2e-3  # cosine decay to 0 over the run
    seed: int = 0


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """L1 distance of the colours plus L1 distance of the neighbouring-pixel differences (0..1 images)."""
    def diffs(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x[..., 1:, :] - x[..., :-1, :], x[..., :, 1:] - x[..., :, :-1]

    (sy, sx), (ty, tx) = diffs(student), diffs(teacher)
    return F.l1_loss(student, teacher) + F.l1_loss(sy, ty) + F.l1_loss(sx, tx)


def distill(
    teacher_path: str | Path,
    dataset: str | Path,
    output: str | Path,
    options: DistillOptions = DistillOptions(),
    device: str = "auto",
    workers: int = 0,
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> float:
    """Teach a ``options.width`` network the outputs of the model at ``teacher_path``; returns the final loss.

    The student keeps the teacher's metadata (style, training options with the
    new width, style image), so that ``stst evaluate`` scores it against the
    same painting, and records how it was made under ``distilled_from``.
    """
    teacher_path, output = Path(teacher_path), Path(output)
    dev = resolve_device(device)
    ckpt = load_checkpoint(teacher_path)
    if not ckpt.finite:  # it would teach a black picture to the end, and the student would be written
        raise FileProblem(teacher_path, f"{NOT_FINITE_WEIGHTS}, so it cannot be distilled")
    files = find_images(dataset)
    check_target(output, overwrite, [teacher_path, *files], what="model")
    check_writable(output, what="model")
    teacher = ckpt.build(dev).train()  # train mode: no inference border, the same function on crops as the student
    for p in teacher.parameters():
        p.requires_grad_(False)
    torch.manual_seed(options.seed)
    arch = ArchConfig(channels=options.width, residual=ckpt.arch.residual, design=options.design)
    student = build_network(arch).to(dev).train()
    optimizer = torch.optim.Adam(student.parameters(), lr=options.lr)
    loader = crop_loader(files, options.image_size, options.batch_size, options.seed, workers=workers,
                         pin_memory=dev.type == "cuda")
    seconds, loss = 0.0, float("nan")
    batches = iter(loader)
    bar = tqdm(range(options.iterations), unit="it", desc="distilling", disable=not progress, dynamic_ncols=True)
    for iteration in bar:
        tick = time.perf_counter()
        x = next(batches)["image"].to(dev, non_blocking=True)
        with torch.no_grad():
            target = teacher(x).clamp(0, 1)
        for group in optimizer.param_groups:
            group["lr"] = cosine_rate(options.lr, iteration, options.iterations)
        value = distillation_loss(student(x), target)
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()
        loss = value.item()
        if not math.isfinite(loss):  # finite weights whose outputs overflow, or the student's steps
            raise StstError(f"the loss is not finite at iteration {iteration + 1}; nothing was written")
        bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
        seconds += time.perf_counter() - tick

    metadata = {k: v for k, v in ckpt.metadata.items() if k not in ("created", "stst_version", "torch_version")}
    if "options" in metadata:
        metadata["options"] = asdict(replace(options_from_dict(metadata["options"]), channels=options.width))
    metadata["distilled_from"] = {
        "model": teacher_path.name,
        "sha256": file_sha256(teacher_path),
        "teacher_width": ckpt.arch.channels,
        "teacher_design": ckpt.arch.design,
        **asdict(options),
        "dataset": str(Path(dataset).resolve()),
        "loss": loss,
        "seconds": round(seconds, 1),
        "hardware": hardware_info(dev),
    }
    save_checkpoint(output, student, metadata, style_image=ckpt.style_image)
    log(f"distilled {teacher_path.name} (width {ckpt.arch.tag}) into {output} (width {arch.tag}): "
        f"{options.iterations} iterations, {seconds / 60:.1f} min, final loss {loss:.4g}")
    return loss
