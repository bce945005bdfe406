"""The ``stst`` command line: a thin layer over the Python API."""

from __future__ import annotations

import sys
from functools import wraps
from pathlib import Path

import click

from . import __version__
from .errors import EXIT_PARTIAL, StstError
from .options import RunSettings, default

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


def _parse_style_layers(value: str | None) -> dict[str, float] | None:
    """``relu1_2,relu2_2:0.5`` -> {"relu1_2": 1.0, "relu2_2": 0.5}."""
    if value is None:
        return None
    layers = {}
    for item in value.split(","):
        name, _, weight = item.strip().partition(":")
        try:
            layers[name] = float(weight) if weight else 1.0
        except ValueError:
            raise click.BadParameter(f"'{item}': the weight after ':' must be a number") from None
    return layers


@main.command()
@click.option("--style", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Style image (painting).")
@click.option("--dataset", type=click.Path(exists=True, file_okay=False, path_type=Path), help="Folder of training photos (searched recursively).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Model file to write [default: <style>.pth].")
@click.option("--image-size", type=click.IntRange(16), default=default("image_size"), show_default=True, help="Training crop size.")
@click.option("--style-size", type=click.IntRange(16), default=default("style_size"), show_default=True, help="Long side of the style image.")
@click.option("--batch-size", type=click.IntRange(1), default=default("batch_size"), show_default=True)
@click.option("--iterations", type=click.IntRange(1), help=f"Optimiser steps [default: {default('iterations')}].")
@click.option("--epochs", type=click.FloatRange(0, min_open=True), help="Passes over the dataset (instead of --iterations).")
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=default("lr"), show_default=True, help="Adam learning rate.")
@click.option("--content-weight", type=float, default=default("content_weight"), show_default=True)
@click.option("--style-weight", type=float, default=default("style_weight"), show_default=True)
@click.option("--tv-weight", type=float, default=default("tv_weight"), show_default=True)
@click.option("--content-layer", default=default("content_layer"), show_default=True, help="VGG16 layer for the content loss.")
@click.option("--style-layers", help="Comma-separated VGG16 layers, each with an optional :weight "
              f"[default: {','.join(default('style_layers'))}].")
@click.option("--seed", type=int, default=default("seed"), show_default=True)
@click.option("--device", default=default("device", RunSettings), show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--workers", type=click.IntRange(0), help="DataLoader worker processes [default: half the CPU cores, at most 4].")
@click.option("--checkpoint-every", type=click.IntRange(0), default=default("checkpoint_every", RunSettings), show_default=True, help="Save a resumable checkpoint every N iterations (0: never).")
@click.option("--resume", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Continue a run from its checkpoint.")
@click.option("--preview", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Photo to stylize during training.")
@click.option("--preview-every", type=click.IntRange(1), default=default("preview_every", RunSettings), show_default=True)
@click.option("--log", "log_path", type=click.Path(dir_okay=False, path_type=Path), help="Write losses as JSON lines here.")
@click.option("--vgg-weights", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="torchvision vgg16 state_dict to use [env: STST_VGG_WEIGHTS].")
@reports_errors
def train(style, dataset, output, image_size, style_size, batch_size, iterations, epochs, lr, content_weight,
          style_weight, tv_weight, content_layer, style_layers, seed, device, workers, checkpoint_every, resume,
          preview, preview_every, log_path, vgg_weights) -> None:
    """Train a network for one style on a folder of photos.

    Ctrl-C saves a resumable checkpoint to the output file; --resume continues it
    with the same options (and reproduces the losses of an uninterrupted run).
    """
    from .data import find_images
    from .options import TrainOptions
    from .train import iterations_for_epochs, train as run_training

    if iterations and epochs:
        raise click.UsageError("give --iterations or --epochs, not both")
    if resume is None and (style is None or dataset is None):
        raise click.UsageError("--style and --dataset are required (unless you --resume a run)")
    options = None
    if resume is None:
        layers = _parse_style_layers(style_layers)
        options = TrainOptions(
            style=str(style), dataset=str(dataset), image_size=image_size, style_size=style_size,
            batch_size=batch_size, lr=lr, content_weight=content_weight, style_weight=style_weight,
            tv_weight=tv_weight, content_layer=content_layer, seed=seed,
            **({"style_layers": layers} if layers else {}),
        )
        if epochs:
            iterations = iterations_for_epochs(epochs, len(find_images(dataset)), batch_size)
    elif epochs:
        raise click.UsageError("with --resume, give the new total as --iterations")
    output = output or (resume if resume else Path(f"{style.stem}.pth"))
    run = RunSettings(output=output, device=device, checkpoint_every=checkpoint_every, preview=preview,
                      preview_every=preview_every, log=log_path, vgg_weights=vgg_weights)
    if workers is not None:
        run.workers = workers
    try:
        losses = run_training(options, run, resume=resume, iterations=iterations,
                              log=lambda message: click.echo(message, err=True))
    except ValueError as exc:  # bad layer names and similar option problems
        raise click.UsageError(str(exc)) from None
    click.echo(f"wrote {output} (content {losses['content']:.4g}, style {losses['style']:.4g}, tv {losses['tv']:.4g})")


@main.command()
@click.option("--vgg-weights", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="torchvision vgg16 state_dict to convert and cache.")
@reports_errors
def weights(vgg_weights) -> None:
    """Fetch, verify and cache the VGG16 loss-network weights (for offline machines and images)."""
    from .weights import CACHE_NAME, FEATURES_SHA256, resolve_vgg_weights, stst_home

    _, source = resolve_vgg_weights(vgg_weights, log=lambda message: click.echo(message, err=True))
    click.echo(f"VGG16 weights verified (sha256 {FEATURES_SHA256[:16]}...) from {source}")
    click.echo(f"cache: {stst_home() / CACHE_NAME}")
