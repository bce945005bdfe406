"""Stylizing files and folders: the job runner behind ``stst stylize`` (the network runs in :mod:`stst.infer.engine`).

Photos travel as numpy arrays and clips are stylized by a module imported when
there are clips, so that a run of photos through the express lane
(:mod:`stst.infer.express`) never imports torch.
"""

from __future__ import annotations

import io
import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .base.cores import default_batch, gpu_io_threads
from .base.errors import FileProblem, StstError, first_line
from .base.fileio import check_folder
from .base.imageio import (WRITE_FORMATS, CodedPhoto, DecodeFailed, Photo, all_finite, batched, coded_jpeg,
                           encode_photo, format_of_suffix, output_format, read_photo, source_format,
                           write_photo)
from .base.limits import DEFAULT_MAX_PIXELS
from .base.prefetch import ordered_map, prefetch
from .infer.sizes import GPU_BATCH, runs_in_tiles
from .video.probe import is_video, output_suffix
from .video.settings import VideoSettings

log = logging.getLogger(__name__)

NOT_FINITE = "produced NaN or infinite values (a broken model?); nothing written"
# A network for the job runner: a (N, 3, H, W) batch of 0..1 float32 in, the same out, as an array or a CPU tensor.
# One that ``takes_uint8`` (on a GPU: stst.infer.engine.Stylizer.submit) is handed photos as decoded instead, and
# one that ``decodes_jpeg`` is handed JPEG files (CodedPhoto) to decode itself.
Network = Callable[[np.ndarray], object]
Loaded = Photo | CodedPhoto


@dataclass(frozen=True)
class Job:
    """One image to stylize: where it comes from and where its result goes."""

    source: Path
    target: Path
    format: str  # Pillow format name to write; "" for video clips
    kind: str = "image"  # or "video"


@dataclass
class Report:
    """What a run did: counts and every failure with its reason."""

    stylized: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    interrupted: bool = False  # Ctrl-C: the jobs after the last finished one were not started

    def summary(self) -> str:
        return f"{len(self.stylized)} stylized, {len(self.skipped)} skipped, {len(self.failed)} failed"

    @classmethod
    def merged(cls, reports: list["Report"]) -> "Report":
        """One report for the shares of several processes (torchrun)."""
        return cls([p for r in reports for p in r.stylized], [p for r in reports for p in r.skipped],
                   [f for r in reports for f in r.failed], any(r.interrupted for r in reports))


@dataclass(frozen=True)
class JobSettings:
    """How every job of a run is read and written: images by these fields, clips by ``video``."""

    max_size: int | None = None
    quality: int = 95
    overwrite: bool = False
    batch_size: int = field(default_factory=default_batch)  # photos of equal size run together
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    video: VideoSettings = VideoSettings()
    readers: int = 1  # threads that decode photos (beside the network's): one keeps up with two CPU cores' network
    writers: int = 1  # threads that encode them

    def on_gpu(self, batch_given: bool) -> "JobSettings":
        """These settings for a run on a GPU: the codecs on every core (:func:`stst.base.cores.gpu_io_threads`) and,
        unless ``--batch-size`` was given, batches of :data:`stst.infer.sizes.GPU_BATCH` photos or frames (run in
        chunks that fit)."""
        threads = gpu_io_threads()
        if batch_given:
            return replace(self, readers=threads, writers=threads)
        return replace(self, readers=threads, writers=threads, batch_size=GPU_BATCH,
                       video=replace(self.video, batch_size=GPU_BATCH))


def _files_in(folder: Path, recursive: bool, exclude: list[Path]) -> list[Path]:
    """Visible files of ``folder`` (and its subfolders), except those inside the ``exclude`` folders."""
    pattern = folder.rglob("*") if recursive else folder.glob("*")
    return sorted(
        p for p in pattern
        if p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        and not any(p.resolve().is_relative_to(e) for e in exclude)
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
    - One file input and ``output`` that is not an existing folder and does not end in ``/``:
      ``output`` is the file to write (``fmt``, if given, must agree with its extension).
    - Otherwise ``output`` is a folder (created); files land in it, folder contents mirror their subfolders.

    Files inside an output folder are never inputs, so a second run does not stylize the first run's results.
    """
    inputs = [Path(p) for p in inputs]
    out = Path(output) if output is not None else None
    names_folder = output is not None and (out.is_dir() or str(output).endswith(("/", "\\")))
    if out is not None and len(inputs) == 1 and inputs[0].is_file() and not names_folder:
        if is_video(inputs[0]):
            return [Job(inputs[0], out, "", "video")]
        named = format_of_suffix(out)
        if fmt and named and output_format(None, fmt) != named:
            raise StstError(f"--format {fmt} contradicts the output name {out}; give one or make them agree")
        if out.suffix and not named and not fmt:  # a JPEG named x.mp4 or x.heic would mislead whatever opens it
            raise StstError(f"{out}: an image cannot be written as {out.suffix} (name it {', '.join(WRITE_FORMATS.values())}"
                            ", or give --format)")
        return [Job(inputs[0], out, output_format(named or source_format(inputs[0]), fmt))]

    def base_of(folder: Path) -> Path:
        if out is not None:
            return out
        folder = folder.resolve()
        return folder.parent / f"{folder.name}-{model_name}"

    bases = [base_of(item).resolve() for item in inputs if item.is_dir()]
    jobs = []
    for item in inputs:
        if item.is_dir():
            base = base_of(item)
            if base.resolve() == item.resolve():
                raise FileProblem(item, "the output folder is the input folder", "choose another folder with -o")
            pairs = [(f, base / f.relative_to(item).parent) for f in _files_in(item, recursive, bases)]
        elif item.exists():
            pairs = [(item, out if out is not None else item.parent)]
        else:
            raise FileProblem(item, "no such file or folder")
        for src, folder in pairs:
            if is_video(src):
                jobs.append(Job(src, folder / f"{src.stem}-{model_name}{output_suffix(src)}", "", "video"))
                continue
            target_fmt = output_format(source_format(src), fmt)
            jobs.append(Job(src, folder / f"{src.stem}-{model_name}{WRITE_FORMATS[target_fmt]}", target_fmt))
    return jobs


@dataclass(frozen=True)
class _Refusal:
    """Why a job must not run: ``skip`` (reported as a note, the output exists) or a failure."""

    reason: str
    skip: bool = False


def _check_target(job: Job, sources: set[Path], claimed: set[Path], overwrite: bool) -> _Refusal | None:
    """Why ``job`` must not run, or None."""
    target = job.target.resolve()
    if target in sources:
        return _Refusal("output would overwrite an input file")
    if target in claimed:
        return _Refusal(f"output {job.target} is also the output of another input")
    claimed.add(target)
    if job.target.exists() and not overwrite:
        return _Refusal("output exists (use --overwrite to replace it)", skip=True)
    return None


def _batches(
    loaded: Iterator[tuple[Job, Loaded]], batch_size: int
) -> Iterator[list[tuple[Job, Loaded]]]:
    """Group photos of equal size into batches, holding at most ~2 batches' worth while waiting; photos that run
    in tiles (:func:`stst.infer.sizes.runs_in_tiles`) go alone, as the tiles run them, without waiting in memory for another."""
    pending: dict[tuple[tuple[int, int], str], list[tuple[Job, Loaded]]] = {}
    held = 0
    for job, photo in loaded:
        if runs_in_tiles(*photo.size):
            yield [(job, photo)]
            continue
        kind = "jpeg" if isinstance(photo, CodedPhoto) else photo.pixels.dtype.str
        key = (photo.size, kind)  # uint8 photos, 16-bit ones (float) and files to decode on the device apart
        group = pending.setdefault(key, [])
        group.append((job, photo))
        held += 1
        if len(group) >= batch_size:
            held -= len(group)
            yield pending.pop(key)
        elif held > 2 * batch_size:
            oldest = next(iter(pending))
            held -= len(pending[oldest])
            yield pending.pop(oldest)
    yield from pending.values()


class _Run:
    """One run of :func:`run_jobs`: what it reports, and its steps (admit, read, stylize, write; then the clips)."""

    def __init__(self, stylizer: Network, jobs: list[Job], settings: JobSettings, warn: Callable[[str], None],
                 progress: bool, model_name: str) -> None:
        self.stylizer, self.settings, self.warn, self.progress, self.model_name = (stylizer, settings, warn,
                                                                                    progress, model_name)
        self.report = Report()
        self.sources = {job.source.resolve() for job in jobs}
        self.claimed: set[Path] = set()
        self.photos = [job for job in jobs if job.kind != "video"]
        self.clips = [job for job in jobs if job.kind == "video"]
        self.bar = tqdm(total=len(self.photos), unit="img", disable=not progress or len(self.photos) <= 1,
                        dynamic_ncols=True)
        self.writes: deque[tuple[Job, Future]] = deque()
        self.uint8 = bool(getattr(stylizer, "takes_uint8", False))  # photos handed over as decoded (a GPU)
        self.coded = bool(getattr(stylizer, "decodes_jpeg", False))  # JPEGs handed over as files (nvJPEG)

    def done(self, job: Job) -> None:
        if job.kind == "image":  # clips have a frame bar of their own
            self.bar.update()

    def fail(self, job: Job, reason: str) -> None:
        self.report.failed.append((job.source, reason))
        self.warn(f"warning: {job.source}: {reason}")
        self.done(job)

    def admitted(self, job: Job) -> bool:
        """Whether ``job`` may run; a skipped or refused one is reported here."""
        refusal = _check_target(job, self.sources, self.claimed, self.settings.overwrite)
        if refusal is not None and refusal.skip:
            self.report.skipped.append(job.source)
            self.warn(f"note: {job.target}: {refusal.reason}")
            self.done(job)
        elif refusal is not None:
            self.fail(job, refusal.reason)
        return refusal is None

    def read(self, job: Job) -> tuple[Job, Loaded | FileProblem]:
        settings = self.settings
        coded = coded_jpeg(job.source, settings.max_size, settings.max_pixels) if self.coded else None
        if coded is not None:
            return job, coded
        try:
            return job, read_photo(job.source, settings.max_size, settings.max_pixels, uint8=self.uint8)
        except FileProblem as exc:
            return job, exc

    def loaded(self) -> Iterator[tuple[Job, Loaded]]:
        """The admitted photos, decoded (in ``settings.readers`` threads, in order); the unreadable ones reported."""
        admitted = (job for job in self.photos if self.admitted(job))
        for job, photo in ordered_map(self.read, admitted, self.settings.readers):
            if isinstance(photo, FileProblem):
                self.fail(job, photo.problem)
                continue
            if photo.frames > 1:
                self.warn(f"note: {job.source}: has {photo.frames} frames (animated or multipage); "
                          "only the first is stylized")
            yield job, photo

    def start(self, batch: list[tuple[Job, Loaded]]) -> tuple[list[tuple[Job, Loaded]], Callable] | None:
        """One forward pass begun: the batch it runs and how to take its outputs (on a GPU while the next batch
        runs). None where it failed (each photo reported)."""
        try:
            if isinstance(batch[0][1], CodedPhoto):
                try:
                    return batch, self.stylizer.submit([photo for _, photo in batch]).result
                except DecodeFailed as exc:
                    batch = self.decoded_here(batch, exc)
            if not batch:
                return None
            if self.uint8:  # each photo copied once, into the pinned buffer
                return batch, self.stylizer.submit([photo.pixels for _, photo in batch]).result
            outputs = self.stylizer(batched([photo.pixels for _, photo in batch]))
            for _, photo in batch:
                photo.release()
            return batch, lambda: outputs
        except (StstError, RuntimeError, MemoryError) as exc:  # e.g. out of memory for this size
            self.fail_batch(batch, exc)
            return None

    def decoded_here(self, batch: list[tuple[Job, CodedPhoto]], why: DecodeFailed) -> list[tuple[Job, Photo]]:
        """JPEG files the device did not decode, decoded on the CPU (those that fail reported). Where its decoder
        refused them, the rest of the run is decoded on the CPU too."""
        if why.refused and self.coded:
            self.coded = False
            log.info("JPEGs are decoded on the CPU from here on: the device's decoder refused a batch (%s)", why)
        decoded = []
        for job, photo in batch:
            try:
                decoded.append((job, photo.decoded(job.source)))
            except FileProblem as exc:
                self.fail(job, exc.problem)
        return decoded

    def fail_batch(self, batch: list[tuple[Job, Loaded]], exc: Exception) -> None:
        reason = "out of memory" if isinstance(exc, MemoryError) else first_line(exc)
        for job, _ in batch:
            self.fail(job, f"cannot stylize ({reason})")

    def finish(self, batch: list[tuple[Job, Loaded]], outputs: Callable[[], Iterable[object]],
               writer: ThreadPoolExecutor) -> None:
        """A batch's outputs taken; each finite one handed to the writers."""
        try:
            images = list(outputs())
        except (StstError, RuntimeError, MemoryError) as exc:  # a GPU's errors come when its work is waited for
            self.fail_batch(batch, exc)
            return
        for (job, photo), rgb in zip(batch, images):
            if rgb is None or not all_finite(rgb):
                self.fail(job, f"{self.model_name} {NOT_FINITE}")
            else:
                self.writes.append((job, writer.submit(write_photo, job.target, rgb, photo.alpha, job.format,
                                                       self.settings.quality)))

    def finish_write(self) -> None:
        job, future = self.writes.popleft()
        try:
            future.result()
            self.report.stylized.append(job.target)
            self.done(job)
        except Exception as exc:  # OSError (disk full, permissions) or an encoder's error
            self.fail(job, f"cannot write {job.target} ({first_line(exc)})")

    def run_photos(self) -> None:
        """Decoding ahead (``settings.readers`` threads), the network here, encoding behind (``settings.writers``);
        on a GPU one batch runs while the last one's outputs come back. Ctrl-C finishes the writes in flight (they
        are atomic) and starts no others."""
        settings = self.settings
        writer = ThreadPoolExecutor(max_workers=settings.writers)
        in_flight = None
        try:
            for batch in _batches(prefetch(self.loaded(), depth=2), settings.batch_size):
                started = self.start(batch)
                if in_flight is not None:
                    self.finish(*in_flight, writer)
                    in_flight = None
                if started is not None and self.uint8:
                    in_flight = started
                elif started is not None:
                    self.finish(*started, writer)
                while len(self.writes) > 2 * max(settings.batch_size, settings.writers):
                    self.finish_write()
            if in_flight is not None:
                self.finish(*in_flight, writer)
            while self.writes:
                self.finish_write()
        except KeyboardInterrupt:
            self.report.interrupted = True
            while self.writes:
                self.finish_write()
        finally:
            writer.shutdown(wait=True)
            self.bar.close()

    def run_clips(self) -> None:
        """Each clip through :func:`stst.video.video.stylize_video`, after the photos."""
        if not self.clips or self.report.interrupted:
            return
        from .video.video import stylize_video  # torch and PyAV come with the first clip

        for job in self.clips:
            if not self.admitted(job):
                continue
            try:
                clip = stylize_video(self.stylizer, job.source, job.target, self.settings.video,
                                     progress=self.progress)
            except FileProblem as exc:
                self.fail(job, exc.problem if exc.path == job.source else str(exc))
                continue
            except KeyboardInterrupt:
                self.report.interrupted = True
                break
            for note in clip.notes:
                self.warn(f"note: {job.source}: {note}")
            if clip.error:
                self.fail(job, f"decoding stopped after {clip.frames} frames ({clip.error}); {job.target} holds "
                               "those frames")
            else:
                self.report.stylized.append(job.target)


def run_jobs(
    stylizer: Network,
    jobs: list[Job],
    settings: JobSettings = JobSettings(),
    warn: Callable[[str], None] = lambda message: None,
    progress: bool = True,
    model_name: str = "the model",
) -> Report:
    """Stylize every job, continuing past bad files; returns what happened to each.

    Decoding runs ahead in one thread and encoding behind in another, so that
    the network (``stylizer``, e.g. a :class:`stst.infer.engine.Stylizer`) is rarely idle. A
    non-finite result (a broken model, fp16 overflow) is a failure, never a
    written file. Video clips follow the images, each through
    :func:`stst.video.video.stylize_video` with ``settings.video``. Ctrl-C stops after
    the writes in flight and sets ``report.interrupted``. An output folder that
    cannot be written (a file in the way) raises :class:`FileProblem` before any work.
    """
    if settings.batch_size < 1:
        raise StstError("--batch-size must be at least 1")
    for folder in sorted({job.target.parent for job in jobs}):  # one line for the run, not one per photo
        check_folder(folder, "outputs")
    run = _Run(stylizer, jobs, settings, warn, progress, model_name)
    run.run_photos()
    run.run_clips()
    return run.report


def stylize_bytes(
    stylizer: Network,
    data: bytes,
    name: str,
    fmt: str = "PNG",
    settings: JobSettings = JobSettings(),
) -> bytes:
    """One image file's bytes in, the stylized file's bytes out, in Pillow format ``fmt`` (for pipes and the server).

    The same steps as a job of :func:`run_jobs` (``settings.max_size``,
    ``max_pixels``, ``quality``), without a file on either side; errors are
    :class:`FileProblem` naming ``name``.
    """
    photo = read_photo(io.BytesIO(data), settings.max_size, settings.max_pixels, name=name)
    rgb = stylizer(photo.pixels[None])[0]
    if not all_finite(rgb):
        raise FileProblem(name, f"the model {NOT_FINITE}")
    return encode_photo(rgb, photo.alpha, fmt, settings.quality)
