"""New styles from the page: a painting uploaded, or a mix of styles the server has, trained by the quick recipe
in a worker thread, one at a time.

Like the clips: uploads live in a private temporary folder under names the server makes, never the client's;
each job can be polled for its place in the queue, its progress and a preview of the client's photo as the
network learns. The finished model goes into the server's models folder (``--models DIR``, else
``$STST_HOME/styles``) under a name made from the painting's file name (cut to safe characters) or the mix's
parts, never the name of a style the server already has; then it joins the catalog. A mix made before (by
the CLI too) is taken from the mixes' cache at once.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..base.errors import FileProblem, StstError, first_line
from ..base.fileio import atomic_path
from ..base.imageio import IMAGE_SUFFIXES, read_photo
from ..model.mix import Mix, mix_name
from ..training.datasets import SHIPPED_PHOTOS
from ..training.options import PRESETS, RunSettings, make_options
from ..training.mixing import make_mix, mix_file, mix_minutes
from ..training.train import train
from .clips import safe_stem
from .workers import QUEUE
from .fields import busy

STYLES_FOLDER = "styles"  # in $STST_HOME, where new styles go without --models
KEEP = 8  # finished jobs kept for polling
PREVIEW_EVERY = 10  # iterations between previews of the client's photo (about 15 s on 2 CPU cores)
MINUTES = (0.05, 60.0)  # the budgets a client may ask for


@dataclass
class StyleJob:
    """One painting being made into a style: where it stands, for ``GET /api/styles/{id}``."""

    id: str
    name: str  # the style's name in the catalog once done
    painting: Path | None  # a new painting's upload; None for a mix
    photo: Path | None
    minutes: float
    mix: Mix | None = None  # a mix's styles, normalised, with their checkpoints
    state: str = "queued"  # queued, running, done, failed
    iteration: int = 0
    seconds: float = 0.0
    error: str | None = None
    preview: Path | None = None  # the latest preview of the photo
    notes: list[str] = field(default_factory=list)  # what the training said of the painting (a thumbnail's blur)

    def describe(self, place: int) -> dict:
        return {"id": self.id, "name": self.name, "state": self.state, "place": place,
                "iteration": self.iteration, "seconds": round(self.seconds, 1), "budget": self.minutes * 60,
                "preview": self.preview is not None, "error": self.error, "notes": self.notes}

    def note(self, message: str) -> None:
        """Keep a training's notes for the client, the painting named as uploaded, not by the server's path;
        its other lines (progress, the summary) are the job's state already."""
        if message.startswith("note: "):
            message = message.removeprefix("note: ")
            self.notes.append(message.replace(str(self.painting), self.painting.name) if self.painting else message)


def safe_suffix(filename: str | None) -> str:
    """A file name's suffix if it is an image's (``.jpg``), else none."""
    suffix = Path(filename or "").suffix.lower()
    return suffix if suffix in IMAGE_SUFFIXES else ""


def _discard(*uploads: Path | None) -> None:
    for upload in uploads:
        if upload is not None:
            upload.unlink(missing_ok=True)


def _check_images(uploads: list[tuple[Path | None, str]]) -> None:
    """Each upload given decodes as an image; else all are removed and the error names the bad one."""
    for path, what in uploads:
        if path is None:
            continue
        try:
            read_photo(path, max_size=64)
        except FileProblem as exc:
            _discard(*(upload for upload, _ in uploads))
            raise FileProblem(what, exc.problem) from None


class StyleJobs:
    """The server's trainings: accepted paintings, one worker that trains them in turn, and where models go."""

    def __init__(self, models: Path, taken: Callable[[str], bool], added: Callable[[str, Path], None],
                 device: str = "auto", queue: int = QUEUE) -> None:
        self.models, self.queue = models, queue
        self.taken, self.added, self.device = taken, added, device
        self.jobs: dict[str, StyleJob] = {}  # in the order they came: the queue is the queued ones among them
        self._lock = threading.Lock()
        self._folder: Path | None = None
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stst-styles")
        self._closing = False

    @property
    def folder(self) -> Path:
        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="stst-styles-"))
        return self._folder

    def new_upload(self, kind: str) -> Path:
        return self.folder / f"{uuid.uuid4().hex}.{kind}"

    def _free_name(self, stem: str) -> str:
        name, n = stem, 2
        while self.taken(name) or (self.models / f"{name}.pth").exists() or name in {j.name for j in self.jobs.values()}:
            name, n = f"{stem}-{n}", n + 1
        return name

    def _admit(self, *uploads: Path | None) -> None:
        """A 503 for a job beyond the queue (its uploads removed)."""
        ahead = [job for job in list(self.jobs.values()) if job.state in ("queued", "running")]
        if len(ahead) > self.queue:
            _discard(*uploads)
            raise busy(len(ahead) - 1, "the styles before it", self.queue, 60 * sum(j.minutes for j in ahead))

    def _queue(self, job: StyleJob, suffix: str = "") -> StyleJob:
        """The job in the queue, under a free name, its painting (if any) moved into its own folder."""
        with self._lock:
            job.name = self._free_name(job.name)
            (self.folder / job.id).mkdir()
            if job.painting is not None:  # its name is the style's title
                job.painting = job.painting.rename(self.folder / job.id / f"{job.name}{suffix}")
            self.jobs[job.id] = job
            self._forget_old()
        self._worker.submit(self._run, job)
        return job

    def submit(self, painting: Path, filename: str | None, photo: Path | None, minutes: float | None) -> StyleJob:
        """Queue the painting (and a preview photo) at paths :meth:`new_upload` named; refuses what is no image,
        and a painting beyond the queue (503)."""
        self._admit(painting, photo)
        _check_images([(painting, filename or "painting"), (photo, "photo")])
        minutes = PRESETS["quick"]["minutes"] if minutes is None else minutes
        job = StyleJob(painting.stem, safe_stem(filename).lower() or "style", painting, photo, minutes)
        return self._queue(job, safe_suffix(filename))

    def submit_mix(self, mix: Mix, photo: Path | None, minutes: float | None) -> StyleJob:
        """Queue ``mix`` (:meth:`stst.serve.catalog.Catalog.mix_parts`), with a preview photo; a 503 beyond the
        queue."""
        self._admit(photo)
        _check_images([(photo, "photo")])
        return self._queue(StyleJob(uuid.uuid4().hex, mix_name(mix.parts), None, photo, mix_minutes(mix, minutes), mix))

    def describe(self, job: StyleJob) -> dict:
        """The job as the API shows it, with its place in the queue (1: next; 0: not waiting)."""
        queued = [j.id for j in list(self.jobs.values()) if j.state == "queued"]
        return job.describe(queued.index(job.id) + 1 if job.id in queued else 0)

    def _run(self, job: StyleJob) -> None:
        job.state = "running"
        try:
            out = self.folder / job.id / f"{job.name}.pth"
            made = self._mix(job, out) if job.mix else self._train(job, out)
            self.models.mkdir(parents=True, exist_ok=True)
            target = self.models / out.name
            with atomic_path(target) as tmp:
                shutil.copyfile(made, tmp)
            self.added(job.name, target)
            job.state = "done"
        except StstError as exc:
            job.state, job.error = "failed", str(exc)
        except Exception as exc:  # a painting must never stop the worker: the next one still runs
            job.state, job.error = "failed", first_line(exc)
        finally:
            _discard(job.painting, job.photo)

    def _settings(self, job: StyleJob, out: Path) -> RunSettings:
        """How a job's training runs: its progress and previews told to the job, stopped when the server stops."""
        def stepped(iteration: int, seconds: float) -> None:
            if self._closing:
                raise StstError("the server stopped")
            job.iteration, job.seconds = iteration, seconds
            shown = out.with_name(f"{out.stem}-preview-{iteration:06d}.jpg")
            if shown.is_file():
                job.preview = shown

        return RunSettings(output=out, device=self.device, workers=0, checkpoint_every=0, preview=job.photo,
                           preview_every=PREVIEW_EVERY, progress=False, on_step=stepped)

    def _train(self, job: StyleJob, out: Path) -> Path:
        options = make_options(str(job.painting), str(SHIPPED_PHOTOS), "quick", minutes=job.minutes)
        train(options, self._settings(job, out), log=job.note)
        return out

    def _mix(self, job: StyleJob, out: Path) -> Path:
        """The mix from the cache, or trained into it."""
        kept = mix_file(job.mix.parts, job.minutes)
        if not kept.is_file():
            make_mix(job.mix, kept, job.minutes, self._settings(job, out), log=job.note)
        return kept

    def _forget_old(self) -> None:
        finished = [job for job in self.jobs.values() if job.state in ("done", "failed")]
        for job in finished[: max(0, len(finished) - KEEP)]:
            shutil.rmtree(self.folder / job.id, ignore_errors=True)
            del self.jobs[job.id]

    def close(self) -> None:
        """Stop the training in progress at its next step; remove every upload and preview."""
        self._closing = True
        self._worker.shutdown(wait=True, cancel_futures=True)
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
