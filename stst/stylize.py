"""Stylizing images and folders with a trained network: the Python API behind ``stst stylize``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from .errors import FileProblem, StstError
from .imageio import WRITE_FORMATS, Photo, format_of_suffix, output_format, read_photo, to_uint8, write_photo
from .network import TransformerNet


@torch.inference_mode()
def stylize_tensor(model: TransformerNet, batch: torch.Tensor) -> torch.Tensor:
    """Stylize a ``(N, 3, H, W)`` batch of 0..1 images on the model's device; returns 0..1 on the CPU."""
    device = next(model.parameters()).device
    return model(batch.to(device)).clamp_(0, 1).cpu()


def stylize_image(model: TransformerNet, image: Image.Image) -> Image.Image:
    """Stylize one Pillow image (any mode); returns an RGB image of the same size."""
    rgb = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0)
    out = stylize_tensor(model, rgb.permute(2, 0, 1).unsqueeze(0))[0]
    return Image.fromarray(to_uint8(out), "RGB")


@dataclass(frozen=True)
class Job:
    """One image to stylize: where it comes from and where its result goes."""

    source: Path
    target: Path
    format: str  # Pillow format name to write


@dataclass
class Report:
    """What a run did: counts and every failure with its reason."""

    stylized: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)

    def summary(self) -> str:
        return f"{len(self.stylized)} stylized, {len(self.skipped)} skipped, {len(self.failed)} failed"


def _files_in(folder: Path, recursive: bool) -> list[Path]:
    pattern = folder.rglob("*") if recursive else folder.glob("*")
    return sorted(
        p for p in pattern if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def plan_jobs(
    inputs: Iterable[str | Path],
    model_name: str,
    output: str | Path | None = None,
    recursive: bool = False,
    fmt: str | None = None,
) -> list[Job]:
    """Map inputs to output paths.

    - Default (no ``output``): a file's result goes beside it as ``<stem>-<model>.<ext>``;
      a folder's results go to a sibling folder ``<folder>-<model>/`` mirroring its subfolders.
    - One file input and ``output`` that is not an existing folder: ``output`` is the file to write.
    - Otherwise ``output`` is a folder; files land in it, folder contents mirror their subfolders.
    """
    inputs = [Path(p) for p in inputs]
    out = Path(output) if output is not None else None
    single_file_target = (
        out is not None
        and len(inputs) == 1
        and inputs[0].is_file()
        and not out.is_dir()
        and not str(output).endswith(("/", "\\"))
    )
    if single_file_target:
        target_fmt = output_format(format_of_suffix(out) or format_of_suffix(inputs[0]), fmt)
        return [Job(inputs[0], out, target_fmt)]

    jobs = []
    for item in inputs:
        if item.is_dir():
            base = out if out is not None else item.parent / f"{item.name}-{model_name}"
            pairs = [(f, base / f.relative_to(item).parent) for f in _files_in(item, recursive)]
        elif item.exists():
            pairs = [(item, out if out is not None else item.parent)]
        else:
            raise FileProblem(item, "no such file or folder")
        for src, folder in pairs:
            target_fmt = output_format(format_of_suffix(src), fmt)
            jobs.append(Job(src, folder / f"{src.stem}-{model_name}{WRITE_FORMATS[target_fmt]}", target_fmt))
    return jobs


def _check_target(job: Job, sources: set[Path], claimed: set[Path], overwrite: bool) -> str | None:
    """Why ``job`` must not run ('skip: ...' or a failure reason), or None."""
    target = job.target.resolve()
    if target in sources:
        return "output would overwrite an input file"
    if target in claimed:
        return f"output {job.target} is also the output of another input"
    claimed.add(target)
    if job.target.exists() and not overwrite:
        return "skip: output exists (use --overwrite to replace it)"
    return None


def _batches(
    loaded: Iterator[tuple[Job, Photo]], batch_size: int
) -> Iterator[list[tuple[Job, Photo]]]:
    """Group photos of equal size into batches, holding at most ~2 batches' worth while waiting."""
    pending: dict[tuple[int, int], list[tuple[Job, Photo]]] = {}
    held = 0
    for job, photo in loaded:
        group = pending.setdefault(photo.size, [])
        group.append((job, photo))
        held += 1
        if len(group) >= batch_size:
            held -= len(group)
            yield pending.pop(photo.size)
        elif held > 2 * batch_size:
            oldest = next(iter(pending))
            held -= len(pending[oldest])
            yield pending.pop(oldest)
    yield from pending.values()


def run_jobs(
    model: TransformerNet,
    jobs: list[Job],
    max_size: int | None = None,
    quality: int = 95,
    overwrite: bool = False,
    batch_size: int = 1,
    warn: Callable[[str], None] = lambda message: None,
    progress: bool = True,
) -> Report:
    """Stylize every job, continuing past bad files; returns what happened to each."""
    if batch_size < 1:
        raise StstError("--batch-size must be at least 1")
    report = Report()
    sources = {job.source.resolve() for job in jobs}
    claimed: set[Path] = set()
    bar = tqdm(total=len(jobs), unit="img", disable=not progress or len(jobs) <= 1, dynamic_ncols=True)

    def fail(job: Job, reason: str) -> None:
        report.failed.append((job.source, reason))
        warn(f"warning: {job.source}: {reason}")
        bar.update()

    def loaded() -> Iterator[tuple[Job, Photo]]:
        for job in jobs:
            problem = _check_target(job, sources, claimed, overwrite)
            if problem and problem.startswith("skip: "):
                report.skipped.append(job.source)
                warn(f"note: {job.target}: {problem[6:]}")
                bar.update()
            elif problem:
                fail(job, problem)
            else:
                try:
                    yield job, read_photo(job.source, max_size)
                except FileProblem as exc:
                    fail(job, exc.problem)

    for batch in _batches(loaded(), batch_size):
        outputs = stylize_tensor(model, torch.stack([photo.rgb for _, photo in batch]))
        for (job, photo), rgb in zip(batch, outputs):
            try:
                write_photo(job.target, rgb, photo.alpha, job.format, quality)
                report.stylized.append(job.target)
            except (OSError, ValueError) as exc:
                fail(job, f"cannot write {job.target} ({exc})")
                continue
            bar.update()
    bar.close()
    return report
