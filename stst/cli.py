"""The ``stst`` command line: a thin layer over the Python API."""

from __future__ import annotations

import logging
import math
import os
import shlex
import sys
import traceback
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import click

from . import __version__
from .base.errors import EXIT_INTERRUPTED, EXIT_PARTIAL, EXIT_USAGE, StstError, first_line, os_problem
from .base.limits import DEFAULT_MAX_PIXELS
from .infer.engines import BACKENDS, BY_NAME, ENGINE_NAMES, PRECISIONS
from .training.options import FIXED_ON_RESUME, PRESETS, RunSettings, default


class _Finite(click.FloatRange):
    """A number option in a range that is a real number: ``nan`` passes every comparison of a plain
    FloatRange and ``inf`` every lower bound (a budget of ``--minutes nan`` would never end)."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


FORMAT_CHOICES = click.Choice(["jpg", "jpeg", "png", "webp", "tif", "tiff", "bmp"], case_sensitive=False)


def _parse_tile(value: str):
    """--tile: a size in pixels, 'auto' or 'off'."""
    if value in ("auto", "off"):
        return None if value == "off" else "auto"
    from .infer.tiling import MIN_TILE

    if not value.isdigit() or int(value) % 4 or int(value) < MIN_TILE:
        raise click.BadParameter(f"'{value}': use auto, off, or a multiple of 4 of at least {MIN_TILE}", param_hint="--tile")
    return int(value)


class _Notes(logging.Handler):
    """The library's log messages (``stst.*``, info and up) as ``note:`` lines on stderr, which a photo piped to
    stdout never shares; looked up at each message, as click's test runner swaps the stream."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(f"note: {record.getMessage()}", err=True)


def _show_notes() -> None:
    """Once per process, and under torchrun in the first process only (the others do the same); each command
    starts without the engine decisions that ``stst stylize -v`` adds."""
    library = logging.getLogger("stst")
    if os.environ.get("RANK", "0") == "0" and not any(isinstance(h, _Notes) for h in library.handlers):
        library.addHandler(_Notes())
        library.setLevel(logging.INFO)
    logging.getLogger("stst.infer").setLevel(logging.NOTSET)


class _Cli(click.Group):
    """The command group, with one error style for every subcommand.

    Every failure is one line on stderr, ``stst: error: <what>``, and an exit
    code from :mod:`stst.base.errors` (2 usage or bad model, 130 interrupted);
    ``--debug`` or ``STST_DEBUG=1`` adds the traceback.
    """

    debug = False

    def main(self, args=None, prog_name=None, **extra):  # noqa: D102 (click's signature)
        _Cli.debug = os.environ.get("STST_DEBUG", "") not in ("", "0")
        if not _Cli.debug:  # Pillow warns about damaged metadata it then ignores; that is not the user's error
            warnings.filterwarnings("ignore", category=UserWarning, module="PIL")
        extra["standalone_mode"] = False
        _show_notes()
        try:
            code = super().main(args, prog_name or "stst", **extra)
        except click.UsageError as exc:
            command = " ".join(["stst", *exc.ctx.command_path.split()[1:]]) if exc.ctx else "stst"
            hint = f" (see '{command} --help')"
            self._fail(exc, exc.format_message() + hint, EXIT_USAGE)
        except click.ClickException as exc:
            self._fail(exc, exc.format_message(), exc.exit_code)
        except (click.Abort, KeyboardInterrupt) as exc:
            self._fail(exc, "interrupted", EXIT_INTERRUPTED)
        except StstError as exc:
            self._fail(exc, str(exc), exc.exit_code)
        except MemoryError as exc:
            self._fail(exc, "out of memory (try --max-size, a smaller --batch-size or --tile)", EXIT_USAGE)
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            self._fail(exc, f"{where}{os_problem(exc)}", EXIT_USAGE)
        except Exception as exc:  # a bug: still one line, the traceback on request
            self._fail(exc, f"internal error ({type(exc).__name__}: {first_line(exc)}); rerun with --debug "
                       "for the traceback and please report it", EXIT_USAGE)
        _exit(code if isinstance(code, int) else 0)

    @staticmethod
    def _fail(exc: BaseException, message: str, code: int) -> None:
        if getattr(exc, "shared", False) and os.environ.get("RANK", "0") != "0":
            _exit(code)  # under torchrun, rank 0 reports a stop that every rank reached
        if _Cli.debug and not isinstance(exc, (click.UsageError, click.Abort, KeyboardInterrupt)):
            traceback.print_exception(exc)
        click.echo(f"stst: error: {message}", err=True)
        _exit(code)


def _exit(code: int) -> None:
    """End with ``code``; at once where a torch.compile still runs in the background (a run too short for it,
    :mod:`stst.infer.compiled`): the process would wait for it. The compile goes on in a process of its own, which
    leaves it in the cache for the next run (:func:`stst.infer.compiled.hand_over`)."""
    compiled = sys.modules.get("stst.infer.compiled")
    if compiled is not None and compiled.compiling():
        compiled.hand_over()
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def _set_debug(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        _Cli.debug = True


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="stst")
@click.option("--debug", is_flag=True, expose_value=False, is_eager=True, callback=_set_debug,
              help="Show tracebacks for errors (also: STST_DEBUG=1).")
def main() -> None:
    """Fast neural style transfer: train a style once, then stylize photos in one pass.

    Exit codes: 0 done, 1 some inputs failed (the rest were done), 2 usage
    error, bad model or bad environment, 130 interrupted.
    """


@main.command()
@click.argument("inputs", nargs=-1, type=click.Path(exists=True, allow_dash=True, path_type=Path))
@click.option("-m", "--model", "model_spec", multiple=True, metavar="NAME|FILE[=WEIGHT]",
              help="Model file (.pth, .onnx) or bundled model name (see `stst models`) [default: starry_night]. "
                   "Repeated with weights, a mix of the styles, trained the first time it is asked for and kept: "
                   "--model a=0.7 --model b=0.3.")
@click.option("--mix-minutes", type=_Finite(0.01, 600), help="How long a new mix trains [default: 1 for "
              "models fine-tuned from one base, 3 for others].")
@click.option("--tier", type=click.Choice(["full", "light", "realtime"]), default=None,
              help="full: the model itself; light: its light tier (about 3x faster, a little less faithful); "
                   "realtime: its realtime tier (about 20x faster, simpler strokes; clips get the denoiser's flow "
                   "at 320 px, the encoder's fast preset and on a CPU half-size frames, to keep up) [default: full].")
@click.option("--light", is_flag=True, help="Short for --tier light.")
@click.option("-o", "--output", help="Output file (one input), folder (several inputs, or a name ending in /), or - for "
              "standard output (one image).")
@click.option("-r", "--recursive", is_flag=True, help="Descend into subfolders of folder inputs.")
@click.option("--format", "fmt", type=FORMAT_CHOICES, help="Output format [default: the input's; PNG on standard "
              "output].")
@click.option("--quality", type=click.IntRange(1, 100), default=95, show_default=True, help="JPEG/WebP quality.")
@click.option("--max-size", type=click.IntRange(1), help="Shrink so the longest side is at most N pixels first.")
@click.option("--max-pixels", type=click.IntRange(1), default=DEFAULT_MAX_PIXELS, show_default=True,
              help="Refuse images with more pixels than this (checked before decoding).")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs (inputs are never overwritten).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--batch-size", type=click.IntRange(1),
              help="Images of equal size per forward pass [default: one per CPU core, at most 4; on CPUs ONNX Runtime "
                   "runs them side by side, one thread each; on a GPU 8, run in chunks that fit 3 GiB].")
@click.option("--precision", type=click.Choice(PRECISIONS), default="auto",
              show_default=True, help="auto: fp16 on CUDA (compiled where a long run measures it faster); on CPUs fp32, or bf16 (native bf16 only) or int8 (ONNX "
              "Runtime, where faithful to fp32) where it measures faster.")
@click.option("--backend", type=click.Choice(BACKENDS), default="auto",
              show_default=True, help="auto: on CPUs, whichever of torch, ONNX Runtime and OpenVINO measures fastest "
              "here (their graph cached); on CUDA torch, eager or compiled (inductor, its code cached).")
@click.option("--tile", default="auto", show_default=True,
              help="Tile size in pixels for huge images, 'auto' (tiles above 4 MP; on CUDA above 16 MP and out of "
                   "memory) or 'off'.")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the network (pays off for many images).")
@click.option("--example", is_flag=True, help="Stylize the sample photo that ships with stst, into the current folder.")
@click.option("--strength", type=_Finite(0, 1), default=1.0, show_default=True,
              help="0 gives back the photo, 1 the full style; in between a blend.")
@click.option("--preserve-colors", is_flag=True, help="Keep the photo's colours; take the painting's strokes and tones.")
@click.option("--stroke-scale", type=_Finite(0.25, 8), default=1.0, show_default=True,
              help="Size of the painting's strokes relative to the photo (2: twice as big, and 4x less work).")
@click.option("--crf", type=click.IntRange(0, 63), default=18, show_default=True,
              help="Video quality (constant rate factor: lower is better and bigger).")
@click.option("--codec", help="Video codec from this FFmpeg build [default: libx264, h264_nvenc on a GPU that "
              "has NVENC; libvpx-vp9 for .webm].")
@click.option("--temporal-blend", type=_Finite(0, 1, max_open=True),
              help="Video: blend each frame with the previous output along the optical flow (less flicker, "
                   "softer strokes) [default: 0.2 for the light and realtime tiers, along the denoiser's flow; "
                   "else 0].")
@click.option("--denoise", type=_Finite(0, 1, max_open=True), default=0.8, show_default=True,
              help="Video: filter the source's noise over time, along the optical flow (less flicker, strokes stay "
                   "crisp); 0 turns it off.")
@click.option("--frame-scale", type=_Finite(0.25, 1), help="Video: the network sees frames at this scale, "
              "enlarged back with their fine detail added (strokes 1/scale as big, scale^2 of the work) [default: "
              "0.5 for the light and realtime tiers on a CPU, to keep up with the camera; else 1].")
@click.option("--keep-dark/--no-keep-dark", default=True, show_default=True,
              help="Video: dim the output of dark frames with their source, so that black stays black and fades "
                   "stay fades (off: every frame a full painting).")
@click.option("-v", "--verbose", is_flag=True, help="Say which engine runs each size of image, and why.")
def stylize(inputs, model_spec, mix_minutes, tier, light, output, recursive, fmt, quality, max_size, max_pixels, overwrite, device, batch_size,
            precision, backend, tile, compile_, example, strength, preserve_colors, stroke_scale, crf, codec,
            temporal_blend, denoise, frame_scale, keep_dark, verbose) -> None:
    """Stylize images, video clips and/or folders of them with a trained model (.pth or exported .onnx).

    An INPUT of - reads one image from standard input; -o - writes one image to
    standard output (PNG unless --format says otherwise), e.g.
    cat photo.jpg | stst stylize - -o - > out.png
    """
    from .base.cores import default_batch
    from .model.bundled import example_photo
    from .infer.look import Look
    from .infer.measuring import measures
    from .stylize import JobSettings, plan_jobs, run_jobs
    from .video.settings import VideoSettings

    if verbose:
        logging.getLogger("stst.infer").setLevel(logging.DEBUG)  # each engine decision, as a note
    if example:
        if inputs:
            raise click.UsageError("--example stylizes the sample photo; give no INPUT with it")
        inputs = (example_photo(),)
        output = output or "./"
    elif not inputs:
        raise click.UsageError("give an image or folder to stylize (or --example to try the sample photo)")
    tile_setting = _parse_tile(tile)
    if light and tier not in (None, "light"):
        raise click.UsageError(f"--light is short for --tier light; it cannot go with --tier {tier}")
    model_path, model_name = _resolve_models(model_spec, "light" if light else tier or "full", mix_minutes, device)
    batch_given, batch_size = batch_size is not None, batch_size or default_batch()
    settings = JobSettings(max_size=max_size, quality=quality, overwrite=overwrite, batch_size=batch_size,
                           max_pixels=max_pixels,
                           video=VideoSettings(max_size=max_size, max_pixels=max_pixels, batch_size=max(batch_size, 4),
                                               crf=crf, codec=codec, temporal=temporal_blend, denoise=denoise,
                                               scale=frame_scale, dark=keep_dark).for_model(model_name))
    look = Look(stroke_scale, preserve_colors, strength)
    network = _Network(Path(model_path), precision, tile_setting, compile_, backend)
    if "-" in map(str, inputs) or output == "-":
        _check_pipe(inputs, output)
        network = replace(network, measure=measures(1))
        stylizer = network.express(device, look) or network.resolved(device)
        _stylize_pipe(look.around(stylizer), inputs[0], output or "-", fmt, settings)
        return
    jobs = plan_jobs(inputs, model_name, output, recursive, fmt)
    if not jobs:
        raise StstError("no files found in the given folders" + ("" if recursive else " (try --recursive)"))
    photos = all(job.kind != "video" for job in jobs)
    network = replace(network, measure=measures(len(jobs) if photos else None, network.seen()))
    express = network.express(device, look) if photos else None
    if express is not None:  # photos whose graph is recorded: torch is not imported
        report, main_rank = run_jobs(express, jobs, settings, warn=_warn, model_name=str(model_path)), True
    else:
        report, main_rank = _run_sharded(jobs, device, network, look, settings, photos, batch_given)
    code = EXIT_INTERRUPTED if report.interrupted else EXIT_PARTIAL if report.failed else 0
    if not main_rank:
        sys.exit(code)
    for path, reason in report.failed:
        click.echo(f"  failed: {path}: {reason}", err=True)
    if report.interrupted:
        done = len(report.stylized) + len(report.skipped) + len(report.failed)
        click.echo(f"stst: interrupted: {report.summary()}, {len(jobs) - done} not started", err=True)
    elif len(jobs) == 1 and report.stylized:
        click.echo(f"wrote {report.stylized[0]}")
    else:
        click.echo(report.summary())
    sys.exit(code)


def _warn(message: str) -> None:
    click.echo(message, err=True)


def _resolve_models(specs: tuple[str, ...], tier: str, mix_minutes: float | None = None,
                    device: str = "auto") -> tuple[Path, str]:
    """The model file and output name for ``--model`` given once (torch stays unloaded) or as a mix (made the
    first time)."""
    from .model.bundled import resolve_model

    if len(specs) <= 1 and not any("=" in spec and not Path(spec).is_file() for spec in specs):
        return resolve_model(specs[0] if specs else None, tier)
    from .training.mixing import resolve_mix

    return resolve_mix(list(specs), tier, mix_minutes, device, log=_warn)


@dataclass(frozen=True)
class _Network:
    """How ``stst stylize`` opens its network: --model, --precision, --tile, --compile and --backend."""

    path: Path
    precision: str
    tile: object
    compile: bool
    backend: str
    measure: bool = True  # time the engines (stst.infer.measuring): not for a few photos

    def on(self, torch_device, lane: bool):
        """The torch path (:func:`stst.infer.engine.open_stylizer`) on a resolved device; ``lane``: a run of
        photos in one process, which the express lane could serve next time."""
        from .infer.engine import open_stylizer

        return open_stylizer(self.path, torch_device, self.precision, self.tile, self.compile, self.backend, lane,
                             self.measure)

    def resolved(self, device: str):
        """The torch path for a run of photos in one process."""
        from .base.devices import resolve_device

        return self.on(resolve_device(device), lane=True)

    def seen(self) -> bool:
        """Whether a run of photos met this model and request here before (:func:`stst.infer.measuring.measures`)."""
        from .infer.express import seen

        return seen(self.path, self.precision, self.backend)

    def express(self, device: str, look):
        """The express lane (:mod:`stst.infer.express`) where it can serve this run, else None: on the CPU in one
        process, whole images, no --compile, and no look that needs torch; a .pth model with a recorded graph, or
        an exported .onnx one."""
        from .infer.express import cpu_graph, open_express, serves

        if (device not in ("auto", "cpu") or not serves(self.tile, self.compile) or not look.plain
                or "WORLD_SIZE" in os.environ):  # torchrun sets WORLD_SIZE
            return None
        if self.path.suffix.lower() == ".onnx":
            return cpu_graph(self.path, device)
        return open_express(self.path, self.precision, self.backend, fallback=lambda: self.resolved(device),
                            measure=self.measure)


def _run_sharded(jobs, device: str, network: _Network, look, settings, photos: bool, batch_given: bool) -> tuple:
    """The jobs through the torch path; under torchrun each process takes every N-th job on its own device and
    rank 0 reports for all (``photos``: the jobs hold no clip; ``batch_given``: --batch-size was). Returns the
    report and whether this process is rank 0."""
    from .base import distributed
    from .stylize import Report, run_jobs

    ctx, torch_device = distributed.setup(device)
    lane = photos and ctx.world == 1  # a run the express lane could serve next time
    settings = replace(settings, video=replace(settings.video, device=torch_device.type))
    if torch_device.type == "cuda":
        settings = settings.on_gpu(batch_given)
    report = run_jobs(look.around(network.on(torch_device, lane)), jobs[ctx.rank::ctx.world], settings, warn=_warn,
                      progress=ctx.main, model_name=str(network.path))
    report = Report.merged(distributed.gather(report))
    distributed.shutdown()
    return report, ctx.main


def _check_pipe(inputs: tuple[Path, ...], output: str | None) -> None:
    """Pipes carry one image: refuse what they cannot (several inputs, a folder, a clip, a terminal)."""
    from .video.probe import is_video

    if len(inputs) != 1:
        raise click.UsageError("- (standard input) and -o - (standard output) take one image; give one INPUT")
    source = inputs[0]
    if str(source) != "-" and (source.is_dir() or is_video(source)):
        raise click.UsageError(f"-o - writes one image to standard output; {source} is a "
                               f"{'folder' if source.is_dir() else 'video clip'} (give -o a file or folder)")
    if (output is None or output == "-") and sys.stdout.isatty():
        raise click.UsageError("standard output is a terminal; redirect it (> out.png) or give -o FILE")
    if str(source) == "-" and sys.stdin.isatty():
        raise click.UsageError("standard input is a terminal; pipe an image in (< photo.jpg)")


def _stylize_pipe(stylizer, source: Path, output: str, fmt: str | None, settings) -> None:
    """One image from a file or standard input to a file or standard output; notes go to stderr only."""
    from .base.fileio import atomic_path, check_target
    from .base.imageio import format_of_suffix, output_format
    from .stylize import stylize_bytes

    name = "<stdin>" if str(source) == "-" else str(source)
    data = sys.stdin.buffer.read() if str(source) == "-" else source.read_bytes()
    fmt = output_format(None if output == "-" else format_of_suffix(Path(output)), fmt)
    if output != "-":
        check_target(output, settings.overwrite, [] if str(source) == "-" else [source])
    try:
        result = stylize_bytes(stylizer, data, name, fmt, settings)
    except StstError as exc:  # the one input failed: exit 1, as for a file that fails
        raise click.ClickException(str(exc)) from None
    if output != "-":
        with atomic_path(output) as tmp:
            tmp.write_bytes(result)
        click.echo(f"wrote {output}")
        return
    try:
        sys.stdout.buffer.write(result)
        sys.stdout.buffer.flush()
    except BrokenPipeError:  # the reader went away (| head): nothing more to say, and no traceback at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise StstError("standard output was closed before the image was written") from None


# Below this budget, `stst train` says how to get a better model.
QUICK_NOTE_BELOW_MINUTES = 30
# The options that shape the weights, by their names here: a resumed run keeps the values it started with.
_FIXED_ON_RESUME = {"preset", *("init_model" if name == "init" else name for name in FIXED_ON_RESUME)}


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
@click.option("--dataset", help="Folder of training photos (searched recursively), or a named set fetched once into "
              "the cache: coco2017-val (5,000 photos, 0.8 GB) or coco2014-train (82,783, 13.5 GB); kodak: 12 photos "
              "that ship with stst [quick, gpu-quick: kodak; otherwise coco2017-val].")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Model file to write [default: <style>.pth].")
@click.option("--preset", type=click.Choice(["auto", *PRESETS]), default="auto", show_default=True,
              help="Recipe: quick (minutes on a CPU, from a trained network), gpu-quick (the same in under a minute on "
                   "a GPU), cpu-fast (hours on a CPU, from scratch) or johnson (the paper's, for GPUs); auto: quick on "
                   "CPUs, on GPUs gpu-quick, or johnson with --dataset. Options below override it.")
@click.option("--image-size", type=click.IntRange(16), help=f"Training crop size [johnson: {default('image_size')}, cpu-fast: {PRESETS['cpu-fast']['image_size']}].")
@click.option("--style-size", type=click.IntRange(16), help=f"Long side of the style image [default: {default('style_size')}].")
@click.option("--batch-size", type=click.IntRange(1), help=f"[default: {default('batch_size')}]")
@click.option("--iterations", type=click.IntRange(1), help=f"Optimiser steps [johnson: {default('iterations')}, cpu-fast: {PRESETS['cpu-fast']['iterations']}].")
@click.option("--epochs", type=_Finite(0, min_open=True), help="Passes over the dataset (instead of --iterations).")
@click.option("--minutes", type=_Finite(0, min_open=True),
              help=f"Train for this much wall time (the schedule fits it; a longer budget, a better model) "
                   f"[quick: {PRESETS['quick']['minutes']:g}; with --iterations or --epochs: none].")
@click.option("--lr", type=_Finite(0, min_open=True), help=f"Adam learning rate [johnson: {default('lr')}, cpu-fast: {PRESETS['cpu-fast']['lr']}].")
@click.option("--lr-schedule", type=click.Choice(["constant", "cosine"]), help="[johnson: constant, cpu-fast: cosine]")
@click.option("--content-weight", type=_Finite(0), help=f"[default: {default('content_weight'):g}]")
@click.option("--style-weight", type=_Finite(0), help=f"[default: {default('style_weight'):g}]")
@click.option("--tv-weight", type=_Finite(0), help=f"[default: {default('tv_weight'):g}]")
@click.option("--palette-weight", type=_Finite(0), help="Weight of the palette term: the output's colours, "
              "as a distribution, toward the painting's (CIELAB sliced Wasserstein distance) "
              f"[quick: {PRESETS['quick'].get('palette_weight', 0):g}; otherwise {default('palette_weight'):g}].")
@click.option("--palette-fit/--no-palette-fit", default=None, help="After training, fit a colour map of the output "
              "to the painting's palette (folded into the network: free at inference) [quick: on; otherwise off].")
@click.option("--content-layer", help=f"VGG16 layer for the content loss [default: {default('content_layer')}].")
@click.option("--style-layers", help="Comma-separated VGG16 layers, each with an optional :weight "
              f"[default: {','.join(default('style_layers'))}].")
@click.option("--width", "channels", type=click.IntRange(4), help=f"Channels of the first layer [default: {default('channels')}].")
@click.option("--residual/--no-residual", default=None, help="Global skip connection: starts from the photo, keeps more of it [default: off].")
@click.option("--seed", type=int, help=f"[default: {default('seed')}]")
@click.option("--temporal-weight", type=_Finite(0), help="Weight of the stability term: the stylized photo, "
              "moved a little, should be the moved stylization (less flicker in video; 1e7 for the bundled "
              f"models) [default: {default('temporal_weight'):g}].")
@click.option("--init", "init_model", metavar="NAME|FILE",
              help="Start from this model's weights (and width) instead of random ones: fine-tuning; a model file or "
                   f"a bundled model's name [quick: {PRESETS['quick']['init']}].")
@click.option("--device", default=default("device", RunSettings), show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--workers", type=click.IntRange(0), help="DataLoader worker processes [default: half the CPU cores, at most 4].")
@click.option("--checkpoint-every", type=click.IntRange(0), default=default("checkpoint_every", RunSettings), show_default=True, help="Save a resumable checkpoint every N iterations (0: never).")
@click.option("--resume", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Continue a run from its checkpoint.")
@click.option("--preview", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Photo to stylize during training.")
@click.option("--preview-every", type=click.IntRange(1), default=default("preview_every", RunSettings), show_default=True)
@click.option("--loss-log", "--log", "log_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write losses as JSON lines here (--log for short, but not under torchrun, whose --log-dir "
                   "and --logs-specs it abbreviates).")
@click.option("--vgg-weights", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="torchvision vgg16 state_dict to use [env: STST_VGG_WEIGHTS].")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default="auto", show_default=True,
              help="Autocast of the forward passes. auto: bf16 on CUDA (fp16 on GPUs without it), bf16 on CPUs where "
                   "it measures faster than fp32, else fp32; Gram matrices and losses stay fp32.")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the network (its first steps compile; pays "
              "off on GPUs and long runs).")
@click.option("--overwrite", is_flag=True, help="Replace an existing model (or log) file; inputs are never replaced.")
@click.pass_context
def train(ctx, style, dataset, output, preset, image_size, style_size, batch_size, iterations, epochs, minutes, lr,
          lr_schedule,
          content_weight, style_weight, tv_weight, palette_weight, palette_fit, content_layer, style_layers, channels,
          residual, seed,
          temporal_weight, init_model, device,
          workers, checkpoint_every, resume, preview, preview_every, log_path, vgg_weights, precision, compile_,
          overwrite) -> None:
    """Train a network for one style.

    On a CPU the default is the quick recipe: a trained network fine-tuned to the
    painting for 3 minutes on photos that ship with stst (--minutes 30 for a
    better model, --preset cpu-fast for the long recipe). On a GPU the same in
    40 seconds (gpu-quick); with --dataset, or --preset johnson, Johnson's recipe
    (on MS-COCO 2017 val, fetched once, unless --dataset names other photos).

    Ctrl-C saves a resumable checkpoint to the output file; --resume continues it
    with the same options (and, without --minutes, reproduces the losses of an uninterrupted run).
    With --resume, only --iterations or --minutes, --dataset (a moved data set), -o and the
    run settings (--device, --workers, --checkpoint-every, --preview*, --loss-log, --precision,
    --compile, --vgg-weights) may be given; the options that shape the weights are the run's.
    """
    from .training.data import find_images
    from .training.datasets import resolve_dataset
    from .base.distributed import context
    from .base.devices import resolve_device
    from .training.options import PRESET_DATASETS, make_options, preset_for
    from .training.train import iterations_for_epochs, train as run_training

    if iterations and epochs:
        raise click.UsageError("give --iterations or --epochs, not both")
    if resume is None and style is None:
        raise click.UsageError("--style is required (unless you --resume a run)")
    if resume is not None:
        fixed = [p for p in ctx.command.params if p.name in _FIXED_ON_RESUME
                 and ctx.get_parameter_source(p.name) == click.core.ParameterSource.COMMANDLINE]
        if fixed:
            raise click.UsageError(f"{fixed[0].opts[-1]} cannot change when resuming (the run keeps its own "
                                   "options); start a new run to change it")
    if resume is None:
        preset = preset_for(resolve_device(device).type, dataset is not None) if preset == "auto" else preset
    if resume is None or dataset is not None:
        dataset = resolve_dataset(dataset, log=lambda message: click.echo(message, err=True),
                                  **({"default": PRESET_DATASETS[preset]} if preset in PRESET_DATASETS else {}))
    options = None
    if resume is None:
        if (iterations or epochs) and minutes is None:
            minutes = 0.0  # a count of steps given alone is the limit, not the preset's budget
        options = make_options(
            str(style), str(dataset), preset, image_size=image_size, style_size=style_size, batch_size=batch_size,
            iterations=iterations, minutes=minutes, lr=lr, lr_schedule=lr_schedule, content_weight=content_weight,
            style_weight=style_weight, tv_weight=tv_weight, palette_weight=palette_weight, palette_fit=palette_fit,
            content_layer=content_layer,
            style_layers=_parse_style_layers(style_layers), channels=channels, residual=residual, seed=seed,
            temporal_weight=temporal_weight,
            # a network shape given explicitly starts from scratch rather than from the preset's model
            init=init_model or ("" if channels or residual is not None else None),
        )
        if epochs:
            iterations = iterations_for_epochs(epochs, len(find_images(dataset)), options.batch_size)
    elif epochs:
        raise click.UsageError("with --resume, give the new total as --iterations")
    output = output or (resume if resume else Path(f"{style.stem}.pth"))
    run = RunSettings(output=output, device=device, checkpoint_every=checkpoint_every, preview=preview,
                      preview_every=preview_every, log=log_path, vgg_weights=vgg_weights, overwrite=overwrite,
                      precision=precision, compile=compile_)
    if workers is not None:
        run.workers = workers
    try:
        losses = run_training(options, run, resume=resume, iterations=iterations, minutes=minutes,
                              log=lambda message: click.echo(message, err=True),
                              dataset=dataset if resume is not None else None)
    except ValueError as exc:  # bad layer names and similar option problems
        raise click.UsageError(str(exc)) from None
    if context().main:
        terms = ", ".join(f"{name} {value:.4g}" for name, value in losses.items() if name != "total")
        click.echo(f"wrote {output} ({terms})")
        if options is not None and options.minutes and options.minutes < QUICK_NOTE_BELOW_MINUTES:
            long = "johnson, the paper's recipe on COCO (0.8 GB, fetched once)" if preset == "gpu-quick" else \
                "cpu-fast, the long recipe"
            amount, unit = (round(options.minutes * 60), "second") if options.minutes < 1 else (options.minutes, "minute")
            spent = f"{amount:g} {unit}{'' if amount == 1 else 's'}"
            click.echo(f"note: a quick model ({spent}); for a better one: stst train --style "
                       f"{shlex.quote(str(style))} --minutes 30 (or --preset {long})", err=True)


@main.command()
@click.option("--vgg-weights", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="torchvision vgg16 state_dict to convert and cache.")
def weights(vgg_weights) -> None:
    """Fetch, verify and cache the VGG16 loss-network weights (for offline machines and images)."""
    from .base.home import stst_home
    from .training.weights import CACHE_NAME, FEATURES_SHA256, resolve_vgg_weights

    _, source = resolve_vgg_weights(vgg_weights, log=lambda message: click.echo(message, err=True))
    click.echo(f"VGG16 weights verified (sha256 {FEATURES_SHA256[:16]}...) from {source}")
    cache = stst_home() / CACHE_NAME
    if not cache.is_file():
        raise StstError(f"{cache.parent}: cannot write the cache folder; set STST_HOME to a writable folder")
    click.echo(f"cache: {cache}")


@main.command()
@click.argument("model_path", metavar="MODEL")
@click.argument("inputs", metavar="PHOTO_OR_FOLDER...", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--size", type=click.IntRange(16), default=512, show_default=True, help="Shrink photos so the long side is at most N.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--engine", type=click.Choice(ENGINE_NAMES), default="torch-fp32", show_default=True,
              help="The engine that stylizes (names as in `stst info --engines`), to judge what it does to the picture.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def evaluate(model_path, inputs, size, device, engine, as_json) -> None:
    """Score a model on photos: content, style and TV losses under its own training weights, LPIPS to the photo and
    the palette distance to the painting (CIELAB, sliced Wasserstein; 0 is the painting's own palette)."""
    import json
    from dataclasses import asdict

    from .base.devices import resolve_device
    from .model.bundled import resolve_model
    from .training.evaluate import SCORES, evaluate as run_evaluation, mean_score

    skipped = []

    def skip(path: Path, problem: str) -> None:
        skipped.append(path)
        click.echo(f"warning: {path}: {problem}; skipped", err=True)

    chosen = BY_NAME[engine]
    scores = run_evaluation(resolve_model(model_path)[0], list(inputs), size, resolve_device(device), skip=skip,
                            precision=chosen.precision, backend=chosen.backend)
    mean = mean_score(scores)
    if as_json:
        click.echo(json.dumps({"model": str(model_path), "size": size, "photos": [asdict(s) for s in scores],
                               "mean": mean, "skipped": [str(p) for p in skipped]}, indent=2))
        sys.exit(EXIT_PARTIAL if skipped else 0)
    width = max(len("photo"), *(len(Path(s.photo).name) for s in scores))
    click.echo(f"{'photo':<{width}}" + "".join(f"  {name:>11}" for name in SCORES))
    for s in scores:
        click.echo(f"{Path(s.photo).name:<{width}}" + "".join(f"  {getattr(s, name):11.4g}" for name in SCORES))
    click.echo(f"{'mean':<{width}}" + "".join(f"  {mean[name]:11.4g}" for name in SCORES))
    if skipped:
        click.echo(f"{len(skipped)} photo(s) skipped (unreadable or too small)", err=True)
        sys.exit(EXIT_PARTIAL)


@main.command()
@click.argument("model_spec", metavar="MODEL")
@click.option("--dataset", help="Folder of photos to teach on (searched recursively; the teacher's training set is a "
              "good choice), or a named set as for `stst train` [default: coco2017-val, fetched once].")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Model file to write [default: MODEL name + '-light.pth' or '-realtime.pth'].")
@click.option("--tier", type=click.Choice(["light", "realtime"]), default="light", show_default=True,
              help="light: Johnson's network, narrower (about 3x faster); realtime: the realtime design (about 20x).")
@click.option("--width", type=click.IntRange(4), default=16, show_default=True, help="Channels of the student's first layer.")
@click.option("--iterations", type=click.IntRange(1), default=3000, show_default=True, help="Optimisation steps.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--workers", type=click.IntRange(0), default=1, show_default=True, help="DataLoader worker processes.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file (never the teacher).")
def distill(model_spec, dataset, output, tier, width, iterations, device, workers, overwrite) -> None:
    """Make a faster tier of a model: a smaller network taught the model's outputs."""
    from .model.bundled import resolve_model
    from .training.datasets import resolve_dataset
    from .training.distill import DistillOptions, distill as run_distillation

    teacher, name = resolve_model(model_spec)
    output = output or Path(f"{name}-{tier}.pth")
    dataset = resolve_dataset(dataset, log=lambda message: click.echo(message, err=True))
    options = DistillOptions(width=width, design="realtime" if tier == "realtime" else "johnson", iterations=iterations)
    run_distillation(teacher, dataset, output, options, device=device, workers=workers, overwrite=overwrite,
                     log=click.echo)


@main.command()
def models() -> None:
    """List the bundled styles with their tiers (full, light, realtime): size and cost of each."""
    from .model.bundled import DEFAULT_MODEL, bundled_styles
    from .model.checkpoint import load_checkpoint

    found = bundled_styles()
    if not found:
        raise StstError("no bundled models are installed")
    for name, tiers in found.items():
        checkpoints = {tier: load_checkpoint(path) for tier, path in tiers.items()}
        meta = next(iter(checkpoints.values())).metadata
        style = meta.get("style", {}).get("title") or meta.get("style", {}).get("name", "?")
        default_mark = " (default)" if name == DEFAULT_MODEL else ""
        click.echo(f"{name}{default_mark}: {style}")
        for tier, ckpt in checkpoints.items():
            teacher = ckpt.metadata.get("distilled_from", {})
            source = f"  (distilled from {teacher['model']})" if teacher else ""
            click.echo(f"  {tier:<9} {tiers[tier].stat().st_size / 1e6:4.1f} MB  {ckpt.arch.macs_per_pixel():>7,} "
                       f"MACs/pixel  --model {tiers[tier].stem}{source}")


@main.command()
@click.argument("model_spec", metavar="[MODEL]", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON (the metadata exactly as stored).")
@click.option("--engines", is_flag=True, help="Show the engine table, the engines measured on this machine (by "
              "network shape and image size), which was chosen, and the graphs run without torch, instead of a model.")
def info(model_spec, as_json, engines) -> None:
    """Show what a model file holds: style, training, losses, hardware, sha256, architecture and cost."""
    import json

    if engines:
        from .infer.choice import describe_measurements, measured_here
        from .infer.engines import describe_table
        from .infer.express import describe_routes

        measured = measured_here()
        click.echo(json.dumps(measured, indent=2) if as_json else "\n".join(
            describe_table() + describe_measurements(measured) + describe_routes()))
        return
    if model_spec is None:
        raise click.UsageError("give a MODEL (a file or a bundled name), or --engines")
    from .model.bundled import resolve_model
    from .model.info import describe, model_info

    details = model_info(resolve_model(model_spec)[0])
    click.echo(json.dumps(details, indent=2) if as_json else "\n".join(describe(details)))


@main.command()
@click.argument("model_spec", metavar="MODEL")
@click.option("--format", "fmt", type=click.Choice(["onnx", "torchscript"]), required=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="File to write [default: MODEL name + .onnx / .pt].")
@click.option("--overwrite", is_flag=True, help="Replace an existing file (never the source model).")
def export(model_spec, fmt, output, overwrite) -> None:
    """Export a model to ONNX or TorchScript (any image size, RGB 0..1 in and out)."""
    from .model.bundled import resolve_model
    from .model.checkpoint import load_model
    from .model.export import export_model
    from .base.fileio import check_target, check_writable

    model_path, name = resolve_model(model_spec)
    output = output or Path(f"{name}.{'onnx' if fmt == 'onnx' else 'pt'}")
    check_target(output, overwrite, [model_path], what="export")
    check_writable(output, what="export")
    model, _ = load_model(model_path)
    export_model(model, output, fmt)
    click.echo(f"wrote {output}")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but this machine (127.0.0.1) lets others on the network use it.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="Port (0: any free one).")
@click.option("--open", "open_browser", is_flag=True, help="Open the page in the web browser.")
@click.option("--models", "models_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A folder of .pth models to offer beside the bundled ones.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True,
              help="As for stst stylize.")
@click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True, help="As for stst stylize.")
@click.option("--max-upload-mb", type=_Finite(0, min_open=True), default=200, show_default=True,
              help="Refuse uploads (photos and clips) larger than this.")
@click.option("--max-pixels", type=click.IntRange(1), default=DEFAULT_MAX_PIXELS, show_default=True,
              help="Refuse images with more pixels than this (checked before decoding).")
@click.option("--queue", type=click.IntRange(0), default=4, show_default=True,
              help="Requests that may wait per model (and clips, and paintings); more get 503 with Retry-After.")
@click.option("--allow-host", "allow_hosts", multiple=True, metavar="NAME",
              help="Also serve requests for this host name (behind a proxy); repeatable.")
@click.option("--token", metavar="VALUE", help="The token every request must carry (default: a random one "
              "when --host is not this machine, none on it).")
@click.option("--no-token", is_flag=True, help="No token even off this machine: anyone on the network may use it.")
def serve(host, port, open_browser, models_dir, device, precision, backend, max_upload_mb, max_pixels, queue,
          allow_hosts, token, no_token) -> None:
    """Serve a web page to choose a style by eye: a photo in every style, clips, and a live webcam.

    The page and its HTTP API (see the README) work offline. Only the page's
    own origin may use it; off this machine (--host) a token is needed too.
    Stop with Ctrl-C (exit 0: uploads and results are removed first).
    """
    import logging
    import webbrowser

    from .serve.app import ServeConfig, create_app
    from .serve.guard import Access, is_loopback, new_token
    from .serve.server import bind, serve as run_server, url_of

    if token is not None and no_token:
        raise click.UsageError("--token and --no-token contradict each other; give one")
    token = None if no_token else token or (None if is_loopback(host) else new_token())
    if token is None and not is_loopback(host):
        click.echo(f"warning: listening on {host} without a token: anyone who can reach this machine on the network "
                   "can use the server (and its CPU); use the default 127.0.0.1 to keep it to yourself", err=True)
    requests = logging.getLogger("stst.serve")  # the server's one line per request, on stderr, without "note:"
    requests.addHandler(logging.StreamHandler())
    requests.propagate = False
    app = create_app(ServeConfig(models=models_dir, device=device, precision=precision, backend=backend,
                                 max_upload_mb=max_upload_mb, max_pixels=max_pixels, queue=queue,
                                 access=Access.listening(host, allow_hosts, token)))
    sock = bind(host, port)
    url, local = url_of(sock, token)
    click.echo(f"stst serve: {url} (Ctrl-C to stop)")
    if local != url:
        click.echo(f"  on this machine: {local}")
    if open_browser and not webbrowser.open(local):
        click.echo(f"note: no web browser could be started here; open {local} in one", err=True)
    run_server(app, sock, on_stop=app.state.server.workers.stop)
    click.echo("stst serve: stopped", err=True)
