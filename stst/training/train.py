"""Training a style: the loop behind ``stst train``, resumable and interruptible."""

from __future__ import annotations

import json
import math
import re
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from ..base import distributed
from ..base.devices import hardware_info
from ..base.errors import EXIT_INTERRUPTED, FileProblem, StstError, first_line, os_problem
from ..base.fileio import check_target, check_writable, file_sha256
from ..base.imageio import read_photo, to_uint8, write_photo
from ..infer.engine import choose_engine, stylize_tensor
from ..infer.engine import DTYPES
from ..model.bundled import resolve_model
from ..model.checkpoint import NOT_FINITE_WEIGHTS, Checkpoint, load_checkpoint, save_checkpoint
from ..model.network import ArchConfig, TransformerNet, recolour
from .data import find_images, lift_flat
from .device_crops import crop_batches
from .losses import PerceptualLoss, Style, build_loss, style_colours
from .options import RunSettings, TrainOptions, cosine_rate, options_from_dict
from .palette import fit_colours
from .weights import resolve_vgg_weights

# Training stops when more than this share of the data set cannot be read.
MAX_UNREADABLE_SHARE = 0.5
# Room to ask for beside the output before training starts: a checkpoint holds
# the float32 weights and Adam's two moments (3x), twice for the temporary copy.
CHECKPOINT_BYTES_PER_PARAMETER = 4 * 3 * 2
# A painting enlarged more than this to --style-size teaches blurred strokes (a thumbnail): the run says so.
MAX_STYLE_ENLARGEMENT = 2
# The colour fit's photos (spread over the data set) and their long side: 0.5 M output pixels in about a second.
FIT_PHOTOS = 12
FIT_SIZE = 256
# On a GPU the losses are read (a wait for the GPU: the host stops queueing the next steps) every this many steps,
# and at the last; a CPU computes them as it goes, so there every step is read.
GPU_LOSS_EVERY = 25


class TrainingError(StstError):
    """Training cannot go on (non-finite loss, nothing to resume)."""


class TrainingInterrupted(StstError):
    """Ctrl-C: training stopped at a step (a run writes a resumable checkpoint; a mix keeps nothing)."""

    exit_code = EXIT_INTERRUPTED


def iterations_for_epochs(epochs: float, images: int, batch_size: int) -> int:
    """Iterations that show every training image ``epochs`` times."""
    return max(1, math.ceil(epochs * images / batch_size))


@dataclass(frozen=True)
class TrainingPrecision:
    """The autocast dtype of the forward passes (None: fp32), and the gradient scaler fp16 needs."""

    name: str
    dtype: torch.dtype | None = None
    scaler: torch.amp.GradScaler | None = None


def training_precision(device: torch.device, setting: str, net: TransformerNet) -> TrainingPrecision:
    """``auto``: bf16 on CUDA GPUs that run it (else fp16 with loss scaling); on CPUs bf16 only where
    :func:`stst.infer.engine.choose_engine` measured the network faster in bf16 than fp32 (native bf16, and
    not every such CPU); fp32 elsewhere. Gram matrices and loss sums stay fp32 (see :mod:`stst.training.losses`).
    """
    if setting == "auto":
        if device.type == "cuda":
            setting = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        elif device.type == "cpu":
            setting = choose_engine(device, net, "auto", backend="torch")[1]
        else:
            setting = "fp32"
    if setting not in DTYPES:
        raise TrainingError(f"unknown precision '{setting}' (use auto, fp32, bf16 or fp16)")
    scaler = torch.amp.GradScaler(device.type) if setting == "fp16" else None
    return TrainingPrecision(setting, DTYPES[setting], scaler)


def forward_losses(net: torch.nn.Module, loss_fn: PerceptualLoss, x: torch.Tensor,
                   precision: TrainingPrecision) -> dict[str, torch.Tensor]:
    """The loss terms of one batch, the forward passes under the run's autocast."""
    with torch.autocast(x.device.type, dtype=precision.dtype or torch.float32, enabled=precision.dtype is not None):
        if loss_fn.temporal is None:
            return loss_fn(net(x), x)
        output, temporal = loss_fn.temporal(net, x)
        terms = loss_fn(output, x)
        terms["temporal"] = temporal
        terms["total"] = terms["total"] + temporal
        return terms


def fused_adam(device: torch.device) -> bool:
    """Whether Adam runs fused on ``device``: on a GPU (one kernel for every weight), where it also skips a step on the
    device where its loss is not finite (:func:`backward_step`), so that losses need not be read at every step."""
    return device.type == "cuda"


def loss_every(device: torch.device, world: int = 1) -> int:
    """Every how many steps the losses are read on ``device``: :data:`GPU_LOSS_EVERY` where a fused optimiser skips
    the steps whose loss is not finite (a GPU), else each. Under torchrun every step: a rank whose loss is not finite
    must tell the others before the gradients are shared."""
    return GPU_LOSS_EVERY if fused_adam(device) and world == 1 else 1


def backward_step(terms: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer,
                  precision: TrainingPrecision) -> None:
    """Gradients of the total and one optimiser step (scaled for fp16, so that small gradients survive). A fused
    optimiser leaves the weights as they were where the total is not finite, decided on the device (fp16's scaler
    does so for any gradient that is not)."""
    optimizer.zero_grad(set_to_none=True)
    if precision.scaler is None:
        terms["total"].backward()
        if optimizer.param_groups[0].get("fused"):
            optimizer.found_inf = (~torch.isfinite(terms["total"].detach())).float()
        optimizer.step()
        return
    precision.scaler.scale(terms["total"]).backward()
    precision.scaler.step(optimizer)
    precision.scaler.update()


def budget_seconds(options: TrainOptions) -> float | None:
    """The run's wall-clock budget for its training steps, in seconds; None without one."""
    return options.minutes * 60 if options.minutes > 0 else None


def learning_rate(options: TrainOptions, iteration: int, seconds: float) -> float:
    """The rate for step ``iteration`` (0-based) after ``seconds`` of training: a function of position (of the
    share of the budget spent, under ``--minutes``), so resuming needs no scheduler state."""
    if options.lr_schedule != "cosine":
        return options.lr
    budget = budget_seconds(options)
    if budget is None:
        return cosine_rate(options.lr, iteration, options.iterations)
    return cosine_rate(options.lr, min(seconds, budget), budget)


def _load_style(options: TrainOptions, log: Callable[[str], None] = print) -> Style:
    """The run's painting with its long side resized to ``style_size``, aspect kept, as (3, H, W) uint8; for a
    mix, the paintings the mixed models hold, with their weights. A thumbnail trains, blurred: a note says so."""
    if options.mix:
        parts = [(load_checkpoint(path).style_image, weight) for path, weight in options.mix.items()]
        for (image, _), path in zip(parts, options.mix):
            if image is None:
                raise FileProblem(path, "holds no style image, so it cannot be mixed")
        return parts
    photo = read_photo(options.style)
    h, w = photo.size
    scale = options.style_size / max(h, w)
    if scale > MAX_STYLE_ENLARGEMENT:
        log(f"note: {options.style} is only {w}x{h} pixels, enlarged {scale:.0f}x to {options.style_size} (--style-size):"
            " the style's strokes come out blurred; a larger picture of the painting gives a better style")
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    rgb = torch.nn.functional.interpolate(photo.rgb[None], size=size, mode="bicubic", antialias=True)[0]
    return torch.from_numpy(to_uint8(rgb)).permute(2, 0, 1).contiguous()


def _check_outputs(run: RunSettings, resume: str | Path | None, continuing: bool, inputs: list[Path],
                   arch: ArchConfig) -> None:
    """Before any work: the model and log can be written, and replace no input and (without --overwrite) no file.

    Continuing a run into its own checkpoint (and appending to its log) is the one allowed replacement.
    """
    check_target(run.output, run.overwrite or continuing, inputs, what="model")
    with torch.device("meta"):  # counts the parameters without allocating them
        params = sum(p.numel() for p in TransformerNet(arch).parameters())
    check_writable(run.output, params * CHECKPOINT_BYTES_PER_PARAMETER, what="model")
    if run.log:
        check_target(run.log, run.overwrite or resume is not None, [*inputs, run.output], what="log")
        check_writable(run.log, what="log")


def _next_batch(batches) -> dict:
    """The next batch; a failure inside a DataLoader worker becomes one line, not the worker's traceback."""
    try:
        return next(batches)
    except Exception as exc:  # the loader re-raises a worker's error with its traceback in the message
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        if isinstance(exc, StstError) and len(lines) == 1:
            raise
        last = re.sub(r"^[\w.]+: ", "", lines[-1]) if lines else repr(exc)  # "stst.base.errors.StstError: ..."
        raise TrainingError(f"reading the training images failed: {last}") from None


def _channels_last(layer: torch.nn.Module, inputs: tuple[torch.Tensor]) -> tuple[torch.Tensor]:
    """The input of the layer that paints the output, in channels_last: oneDNN's backward pass of that 9x9
    convolution to 3 channels is 4.5x faster so on an AVX2 CPU (a 128 px training step 15% faster in all;
    the whole network in channels_last gained less; docs/training.md)."""
    return (inputs[0].contiguous(memory_format=torch.channels_last),)


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


@dataclass
class _Start:
    """Where a run begins: the options it trains with, its position, and what it continues from."""

    options: TrainOptions
    iteration: int = 0
    seconds: float = 0.0
    style: Style | None = None  # a resumed run's own; a new run loads its style after the checks
    resumed: Checkpoint | None = None
    init: Checkpoint | None = None  # fine-tuning: the model whose shape and weights the run starts from

    @property
    def arch(self) -> ArchConfig:
        return ArchConfig(channels=self.options.channels, residual=self.options.residual)


def _resumed(resume: str | Path, dataset: str | Path | None, log: Callable[[str], None]) -> _Start:
    """The options, position and style image of a checkpoint to continue; ``dataset`` moves its data set."""
    ckpt = load_checkpoint(resume)
    if not ckpt.training or ckpt.style_image is None:
        raise TrainingError(f"{resume}: holds no training state, so it cannot be resumed")
    state = ckpt.metadata
    try:
        options = options_from_dict(state.get("options"))
        start, seconds = int(state["iterations"]), float(state["train_seconds"])
    except (ValueError, KeyError, TypeError) as exc:
        raise FileProblem(resume, f"cannot be resumed: corrupt training state ({first_line(exc)})") from None
    moved = str(Path(dataset).resolve()) if dataset is not None else options.dataset
    if moved != options.dataset:
        log(f"note: resuming with the data set {moved} (was {options.dataset})")
        options = replace(options, dataset=moved)
    return _Start(options, start, seconds, ckpt.style_image, resumed=ckpt)


def _starting_point(options: TrainOptions | None, resume: str | Path | None, limits: dict[str, float | None],
                    dataset: str | Path | None, log: Callable[[str], None]) -> _Start:
    """Step 1: the run's options (paths made absolute; ``init`` a file or a bundled model's name) and where it
    starts, new, resumed or fine-tuned; ``limits`` (iterations, minutes) replace the run's where given."""
    if resume is not None:
        begin = _resumed(resume, dataset, log)
    elif options is None:
        raise TrainingError("give the training options or a checkpoint to resume")
    else:
        begin = _Start(replace(options, style=options.style if options.mix else str(Path(options.style).resolve()),
                               mix={str(Path(k).resolve()): w for k, w in options.mix.items()},
                               dataset=str(Path(options.dataset).resolve()),
                               init=str(resolve_model(options.init)[0].resolve()) if options.init else ""))
    begin.options = replace(begin.options, **{k: v for k, v in limits.items() if v is not None})
    if begin.options.init and begin.resumed is None:
        begin.init = load_checkpoint(begin.options.init)
        if not begin.init.finite:
            raise FileProblem(begin.options.init, f"{NOT_FINITE_WEIGHTS}, so it cannot be fine-tuned")
        if begin.init.arch.design != "johnson":
            raise TrainingError(f"{begin.options.init}: a {begin.init.arch.design} network cannot be fine-tuned; "
                                "fine-tune its full model, then distill the tier again (stst distill --tier)")
        begin.options = replace(begin.options, channels=begin.init.arch.channels, residual=begin.init.arch.residual)
    return begin


def _provenance(begin: _Start) -> tuple[dict, dict | None]:
    """What the checkpoint says of the style image and of the model fine-tuned from (kept when resuming)."""
    if begin.resumed is not None:
        return begin.resumed.metadata.get("style", {}), begin.resumed.metadata.get("init")
    options, init = begin.options, begin.init
    if options.mix:
        style = {"name": options.style, "mix": [{"name": Path(k).name, "sha256": file_sha256(k), "weight": w}
                                                for k, w in options.mix.items()]}
    else:
        style = {"name": Path(options.style).name, "size": list(begin.style.shape[1:]),
                 "sha256": file_sha256(options.style)}
    if init is None:
        return style, None
    return style, {"name": Path(options.init).name, "sha256": file_sha256(options.init),
                   **{k: init.metadata[k] for k in ("iterations", "train_seconds") if k in init.metadata}}


class _Session:
    """Step 2: a run set up on this process's device: network, optimiser, losses, data, log and progress bar.

    :meth:`loop` trains to the last iteration, :meth:`save` writes the checkpoint.
    """

    def __init__(self, begin: _Start, run: RunSettings, ctx: distributed.Context, device: torch.device,
                 files: list[Path], resume: str | Path | None, continuing: bool, log: Callable[[str], None]) -> None:
        options = self.options = begin.options
        self.run, self.ctx, self.device, self.files = run, ctx, device, files
        self.iteration, self.seconds = begin.iteration, begin.seconds
        self.style_image = begin.style if isinstance(begin.style, torch.Tensor) else None  # a mix keeps none
        vgg_state, vgg_source = resolve_vgg_weights(run.vgg_weights, log)
        self.loss_fn = build_loss(options, begin.style, vgg_state, device)
        self._network(begin, resume)
        self.loader = crop_batches(files, options.image_size, options.batch_size, options.seed, device,
                                   begin.iteration * options.batch_size, run.workers, rank=ctx.rank, world=ctx.world)
        self.preview = read_photo(run.preview, max_size=512).rgb[None] if run.preview and ctx.main else None
        self.style_meta, self.init_meta = _provenance(begin)
        self.hardware = {**hardware_info(device), **({"processes": ctx.world} if ctx.active else {})}
        self.vgg_source = vgg_source
        self.unreadable: set[str] = set()
        self.losses: dict[str, float] = begin.resumed.metadata.get("losses", {}) if begin.resumed else {}
        self.palette = style_colours(begin.style) if options.palette_fit else None
        self.colour_map: dict | None = None
        self.unfitted: dict[str, torch.Tensor] = {}  # the weights the colour map replaced, for --resume
        try:
            self.log_file = open(run.log, "a" if resume else "w") if run.log and ctx.main else None
        except OSError as exc:
            raise FileProblem(run.log, f"cannot write the log ({os_problem(exc)})") from None
        self.saved_at = begin.iteration if continuing else None
        self.saved_seconds = begin.seconds
        self.budget = budget_seconds(options)
        self.every = loss_every(device, ctx.world)
        self.unfinite = torch.zeros((), dtype=torch.int64, device=device)  # steps whose loss was not, since a reading
        self.bar = self._progress_bar(run.progress and ctx.main)

    def _progress_bar(self, shown: bool) -> tqdm:
        """Iterations, or under a budget the seconds of it spent, counting down to its end."""
        if self.budget is None:
            return tqdm(total=self.options.iterations, initial=self.iteration, unit="it", desc="training",
                        disable=not shown, dynamic_ncols=True)
        return tqdm(total=round(self.budget), initial=min(round(self.seconds), round(self.budget)), unit="s",
                    desc="training", disable=not shown, dynamic_ncols=True,
                    bar_format="{desc}: {percentage:3.0f}%|{bar}| {remaining} left{postfix}")

    def running(self) -> bool:
        """Whether another step fits: iterations left, and budget left under ``--minutes``."""
        return self.iteration < self.options.iterations and (self.budget is None or self.seconds < self.budget)

    def warn(self, message: str) -> None:
        """A warning on stderr, above the progress bar (tqdm.write goes to stdout unless told)."""
        self.bar.write(message, file=sys.stderr)

    def _network(self, begin: _Start, resume: str | Path | None) -> None:
        """The seeded network, its first weights (fine-tuned or resumed), the optimiser, DDP and compile."""
        options, device = self.options, self.device
        torch.manual_seed(options.seed)
        model = TransformerNet(begin.arch).to(device).train()
        self.dtype = next(model.parameters()).dtype
        self.precision = training_precision(device, self.run.precision, model)
        if device.type == "cuda":  # cuDNN's convolutions prefer channels_last, in fp16/bf16 most of all
            model = model.to(memory_format=torch.channels_last)
            self.loss_fn.encoder.to(memory_format=torch.channels_last)
        elif device.type == "cpu":
            model.last.register_forward_pre_hook(_channels_last)
        if begin.init is not None:
            model.load_state_dict(begin.init.state_dict)
        self.optimizer = torch.optim.Adam(model.parameters(), lr=options.lr, fused=fused_adam(device))
        if begin.resumed is not None:
            # a finished run's colour map is undone: the steps go on from the trained weights, as without a stop
            try:
                model.load_state_dict({**begin.resumed.state_dict, **begin.resumed.training.get("unfitted", {})})
            except (TypeError, RuntimeError):  # torch's message starts with a line that names nothing
                raise FileProblem(resume, "cannot be resumed: corrupt training state (weights that do not fit the "
                                          "network)") from None
            try:
                self.optimizer.load_state_dict(begin.resumed.training["optimizer"])
            except (ValueError, KeyError, TypeError, RuntimeError) as exc:
                raise FileProblem(resume, f"cannot be resumed: corrupt optimiser state ({first_line(exc)})") from None
            for group in self.optimizer.param_groups:  # fused where this device wants it, wherever the run began
                group["fused"] = fused_adam(device)
        self.model = model
        # Under torchrun each process computes its share of every global batch; DDP averages the gradients.
        ddp = self.ctx.active
        net = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None) if ddp else model
        # compile the wrapped module, so that DDP's gradient hooks stay outside the compiled graph
        self.net = torch.compile(net) if self.run.compile else net

    def save(self, final: bool = False) -> None:
        """Write the checkpoint; when the output cannot be written, keep the work in a rescue file."""
        options, output, iteration = self.options, self.run.output, self.iteration
        metadata = {
            "style": self.style_meta,
            "options": asdict(options),
            "iterations": iteration,
            "losses": self.losses,
            "train_seconds": self.seconds,
            "hardware": self.hardware,
            "dataset": {"path": str(options.dataset), "images": len(self.files), "unreadable": len(self.unreadable)},
            "vgg_weights": self.vgg_source,
            **({"init": self.init_meta} if self.init_meta else {}),
            **({"colour_map": self.colour_map} if self.colour_map else {}),
        }
        training = {"optimizer": self.optimizer.state_dict(), **({"unfitted": self.unfitted} if self.unfitted else {})}
        try:
            save_checkpoint(output, self.model, metadata, training=training, style_image=self.style_image)
            self.saved_at, self.saved_seconds = iteration, self.seconds
            return
        except OSError as exc:
            problem = f"cannot write {output} ({os_problem(exc)})"
        if not final:
            self.warn(f"warning: {problem}; training goes on, the next checkpoint will try again")
            return
        rescue = Path(tempfile.gettempdir()) / f"{Path(output).stem}-rescued-{iteration}.pth"
        try:
            save_checkpoint(rescue, self.model, metadata, training=training, style_image=self.style_image)
            kept = f"the model at iteration {iteration} was saved to {rescue} instead"
        except OSError:
            kept = (f"the last checkpoint (iteration {self.saved_at}) is {output}" if self.saved_at is not None
                    else "nothing could be saved")
        raise TrainingError(f"{problem}; {kept}")

    def _step_losses(self, batches, read: bool) -> dict[str, torch.Tensor]:
        """This process's share of one batch through the network and the losses; raises TrainingError (where
        ``read``: a loss that is not finite, this step's or a skipped earlier one's)."""
        batch = _next_batch(batches)
        for message in batch["skipped"]:
            if message not in self.unreadable:
                self.unreadable.add(message)
                self.warn(f"warning: skipping unreadable training image {message}")
        if len(self.unreadable) > MAX_UNREADABLE_SHARE * len(self.files):
            raise TrainingError(f"{len(self.unreadable)} of the {len(self.files)} images in {self.options.dataset} "
                                "are unreadable; fix or remove them")
        x = lift_flat(batch["image"].to(self.device, self.dtype, non_blocking=True))
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        terms = forward_losses(self.net, self.loss_fn, x, self.precision)
        self.unfinite += ~torch.isfinite(terms["total"].detach())  # on the device: read with the losses
        if read and self.unfinite.item():
            raise self._not_finite(terms)
        return terms

    def _not_finite(self, terms: dict[str, torch.Tensor] | None = None) -> TrainingError:
        """The error for the steps since the last reading whose loss was not finite (skipped on the device by a
        fused optimiser): this step's, with its terms, or earlier ones (``terms`` None: after the last step)."""
        count = int(self.unfinite.item())
        if terms is not None and not torch.isfinite(terms["total"]).item():
            values = ", ".join(f"{k}={v.item():.4g}" for k, v in terms.items())
            earlier = f"; {count - 1} step(s) since the last reading had none either, and were skipped" if count > 1 \
                else ""
            where = f"at iteration {self.iteration + 1} ({values}{earlier})"
        else:
            where = f"in {count} step(s) up to iteration {self.iteration} (skipped)"
        return TrainingError(f"loss is not finite {where}; try a lower --lr or loss weights")

    def _reads(self) -> bool:
        """Whether the next step's losses are read (:func:`loss_every`; the last step's too, where it is known)."""
        step = self.iteration + 1
        return step % self.every == 0 or step >= self.options.iterations

    def _stop(self, failure: TrainingError | None, failed: bool, interrupted: bool, start: int) -> None:
        """A rank failed or Ctrl-C came: rank 0 saves what changed, then every rank raises."""
        ctx, iteration = self.ctx, self.iteration
        if ctx.main and (iteration > (self.saved_at if self.saved_at is not None else start) or interrupted):
            self.save(final=True)
        if failure is not None:
            raise failure
        if failed:
            raise TrainingError(f"another process failed at iteration {iteration + 1} (see its message)", shared=True)
        raise TrainingInterrupted(
            f"interrupted at iteration {iteration}; checkpoint saved to {self.run.output}. "
            f"Resume with: stst train --resume {self.run.output}", shared=not ctx.main
        )

    def _record(self, terms: dict[str, torch.Tensor], read: bool) -> None:
        """After a step: where ``read``, the ranks' mean losses to the bar and the log; a preview and a checkpoint
        when due."""
        run, iteration = self.run, self.iteration
        if read:
            self.losses = losses = distributed.mean(terms, self.device)
            shown = {name: f"{value:.3g}" for name, value in losses.items() if name != "total"}
            self.bar.set_postfix(**({} if self.budget is None else {"it": iteration}), **shown, refresh=False)
            if self.log_file:
                self.log_file.write(json.dumps({"iteration": iteration, **losses,
                                                "seconds": round(self.seconds, 3)}) + "\n")
                self.log_file.flush()
        self.bar.update(1 if self.budget is None else min(round(self.seconds), round(self.budget)) - self.bar.n)
        if self.preview is not None and (iteration % run.preview_every == 0 or iteration == 1):
            self.model.eval()
            out = stylize_tensor(self.model, self.preview)[0]
            self.model.train()
            path = run.output.with_name(f"{run.output.stem}-preview-{iteration:06d}.jpg")
            try:
                write_photo(path, out, None, "JPEG")
            except OSError as exc:
                self.warn(f"warning: cannot write the preview {path} ({os_problem(exc)})")
        if self.ctx.main and self._checkpoint_due() and self.running():
            self.save()
        if run.on_step is not None:
            run.on_step(iteration, self.seconds)

    def _checkpoint_due(self) -> bool:
        """Every ``checkpoint_every`` iterations; under a budget, also each tenth of it (at least a minute)."""
        if self.run.checkpoint_every and self.iteration % self.run.checkpoint_every == 0:
            return True
        return self.budget is not None and self.seconds - self.saved_seconds >= max(60.0, self.budget / 10)

    def loop(self) -> None:
        """Step 3: train to the last iteration; Ctrl-C or a failure on any rank stops all ranks at one iteration."""
        start = self.iteration
        with _InterruptFlag() as interrupt:
            batches = iter(self.loader)
            while self.running():
                tick = time.perf_counter()
                failure = None
                read = self._reads()
                try:
                    terms = self._step_losses(batches, read)
                except TrainingError as exc:
                    failure = exc
                # Before the backward pass (a collective under DDP), every rank learns whether any rank
                # failed or was interrupted, so that all stop at the same iteration and rank 0 saves.
                failed, interrupted = distributed.agree([failure is not None, interrupt.raised], self.device)
                if failed or interrupted:
                    self._stop(failure, failed, interrupted, start)
                for group in self.optimizer.param_groups:
                    group["lr"] = learning_rate(self.options, self.iteration, self.seconds)
                backward_step(terms, self.optimizer, self.precision)
                self.iteration += 1
                self.seconds += time.perf_counter() - tick
                self._record(terms, read or not self.running())
            if self.unfinite.item():  # the budget's last steps: skipped on the device, not read before
                self._stop(self._not_finite(), False, False, start)

    def fit_palette(self) -> None:
        """Step 4 (``palette_fit``): a colour map of the trained network's output fitted to the painting's palette on
        training photos (:func:`stst.training.palette.fit_colours`) and folded into its last layer."""
        if self.model.residual:
            self.warn("note: no colour fit: a residual network's output cannot take one")
            return
        step = max(1, len(self.files) // FIT_PHOTOS)
        outputs = []
        self.model.eval()
        with torch.no_grad():
            for path in self.files[::step][:FIT_PHOTOS]:
                try:
                    photo = read_photo(path, max_size=FIT_SIZE).rgb[None].to(self.device, self.dtype)
                except FileProblem:
                    continue  # counted and reported by the loader
                outputs.append(self.model(photo).movedim(1, -1).reshape(-1, 3))
        self.model.train()
        if outputs:
            matrix, shift = fit_colours(torch.cat(outputs), self.palette)
            last = next(name for name, module in self.model.named_modules() if module is self.model.last)
            self.unfitted = {k: v.clone() for k, v in self.model.last.state_dict(prefix=f"{last}.").items()}
            recolour(self.model, matrix, shift)
            self.colour_map = {"matrix": matrix.tolist(), "shift": shift.tolist()}

    def close(self) -> None:
        bar = self.bar
        if not bar.disable and bar.last_print_n == bar.n:
            # The last step drew the final state: tqdm's close would draw it once more (a repeated line in a
            # log or a pipe), so end the line and let the bar go without it.
            bar.fp.write("\n")
            bar.fp.flush()
            bar.leave = False
            bar.disable = True
            tqdm._decr_instances(bar)
        bar.close()
        if self.log_file:
            self.log_file.close()


def train(
    options: TrainOptions | None,
    run: RunSettings,
    resume: str | Path | None = None,
    iterations: int | None = None,
    log: Callable[[str], None] = print,
    dataset: str | Path | None = None,
    minutes: float | None = None,
) -> dict:
    """Train a style network and write it to ``run.output``; returns the final losses.

    With ``resume``, the options, weights, optimiser state and position in the
    data stream come from that checkpoint; ``iterations`` or ``minutes`` (if
    given) extend or shorten the run and ``dataset`` points it at a moved data set.
    """
    ctx, device = distributed.setup(run.device)
    begin = _starting_point(options, resume, {"iterations": iterations, "minutes": minutes}, dataset, log)
    options = begin.options
    files = find_images(options.dataset)
    continuing = resume is not None and Path(resume).resolve() == Path(run.output).resolve()
    if ctx.main:
        styles = [Path(k) for k in options.mix] or [Path(options.style)]
        sources = [] if resume else [*styles, *([Path(options.init)] if options.init else [])]
        _check_outputs(run, resume, continuing, files + sources, begin.arch)
    if begin.style is None:
        begin.style = _load_style(options, log)
    session = _Session(begin, run, ctx, device, files, resume, continuing, log)
    try:
        session.loop()
    finally:
        session.close()
        distributed.shutdown()
    if ctx.main:
        if options.palette_fit:
            session.fit_palette()
        session.save(final=True)
    if session.unreadable:
        log(f"{len(session.unreadable)} unreadable training image(s) were skipped")
    return session.losses
