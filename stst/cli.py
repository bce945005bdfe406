"""The ``stst`` command line: a thin layer over the Python API."""

from __future__ import annotations

import sys
from functools import wraps
from pathlib import Path

import click

from . import __version__
from .errors import EXIT_PARTIAL, StstError

FORMAT_CHOICES = click.Choice(["jpg", "jpeg", "png", "webp", "tif", "tiff", "bmp"], case_sensitive=False)


def reports_errors(func):
    """Turn :class:`StstError` into one line on stderr and its exit code."""

    @wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except StstError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(exc.exit_code)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="stst")
def main() -> None:
    """Fast neural style transfer: train a style once, then stylize photos in one pass."""


@main.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("-m", "--model", "model_path", required=True, type=click.Path(path_type=Path), help="Model file (.pth).")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Output file (one input) or folder.")
@click.option("-r", "--recursive", is_flag=True, help="Descend into subfolders of folder inputs.")
@click.option("--format", "fmt", type=FORMAT_CHOICES, help="Output format [default: the input's].")
@click.option("--quality", type=click.IntRange(1, 100), default=95, show_default=True, help="JPEG/WebP quality.")
@click.option("--max-size", type=click.IntRange(1), help="Shrink so the longest side is at most N pixels first.")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs (inputs are never overwritten).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--batch-size", type=click.IntRange(1), default=1, show_default=True, help="Images of equal size per forward pass.")
@reports_errors
def stylize(inputs, model_path, output, recursive, fmt, quality, max_size, overwrite, device, batch_size) -> None:
    """Stylize image files and/or folders of images with a trained model."""
    from .checkpoint import load_model
    from .devices import resolve_device
    from .stylize import plan_jobs, run_jobs

    model, _ = load_model(model_path, resolve_device(device))
    jobs = plan_jobs(inputs, model_path.stem, output, recursive, fmt)
    if not jobs:
        raise StstError("no files found in the given folders" + ("" if recursive else " (try --recursive)"))
    report = run_jobs(
        model, jobs, max_size=max_size, quality=quality, overwrite=overwrite, batch_size=batch_size,
        warn=lambda message: click.echo(message, err=True),
    )
    if len(jobs) == 1 and report.stylized:
        click.echo(f"wrote {report.stylized[0]}")
    else:
        click.echo(report.summary())
    for path, reason in report.failed:
        click.echo(f"  failed: {path}: {reason}", err=True)
    if report.failed:
        sys.exit(EXIT_PARTIAL)
