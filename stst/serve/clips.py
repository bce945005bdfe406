"""Clips uploaded to the server: stylized one at a time in a worker thread, with progress to poll.

Uploads and results live in one private temporary folder under names the
server makes (a random id and a fixed suffix), never the client's; an
upload is removed as soon as its clip is done, results when the server stops
or when more than :data:`KEEP` finished clips pile up.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch

from ..base.errors import FileProblem, first_line
from ..video.probe import SOUND_ALONE, clip_kind
from ..video.settings import VideoSettings
from ..video.video import stylize_video
from .workers import QUEUE
from .fields import busy

KEEP = 8  # finished clips kept for download
RETRY_CLIP = 30  # seconds a client beyond the queue is told to wait


@dataclass
class ClipJob:
    """One uploaded clip: where it stands, for ``GET /api/clips/{id}``."""

    id: str
    name: str  # the download's file name: the upload's stem (made safe) and the model
    source: Path
    target: Path
    settings: VideoSettings
    state: str = "queued"  # queued, running, done, failed
    frames: int = 0
    total: int | None = None
    error: str | None = None

    def describe(self) -> dict:
        return {"id": self.id, "state": self.state, "frames": self.frames, "total": self.total, "error": self.error,
                "name": self.name}


def safe_stem(filename: str | None) -> str:
    """A file name's stem cut down to letters, digits, '-' and '_' (for a download's name only)."""
    stem = Path(filename or "clip").stem
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in stem)[:60] or "clip"


class ClipJobs:
    """The server's clips: accepted uploads, a worker that stylizes them in turn, and their results."""

    def __init__(self, settings: VideoSettings = VideoSettings(), queue: int = QUEUE) -> None:
        self.settings, self.queue = settings, queue
        self._folder: Path | None = None
        self.jobs: dict[str, ClipJob] = {}
        self._lock = threading.Lock()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stst-clips")

    @property
    def folder(self) -> Path:
        """The private temporary folder, made on the first upload."""
        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="stst-serve-"))
        return self._folder

    def new_upload(self) -> Path:
        """A fresh path for an upload. Its suffix names no format, so only a file FFmpeg can open counts as a clip."""
        return self.folder / f"{uuid.uuid4().hex}.upload"

    def submit(self, upload: Path, filename: str | None, model: str,
               stylizer: Callable[[torch.Tensor], torch.Tensor]) -> ClipJob:
        """Queue the clip at ``upload`` (a file :meth:`new_upload` named); refuses what is not a clip, and a clip
        beyond the queue (503)."""
        admitted = sum(job.state in ("queued", "running") for job in list(self.jobs.values()))
        if admitted > self.queue:
            upload.unlink(missing_ok=True)
            raise busy(admitted - 1, "the clips before it", self.queue, RETRY_CLIP)
        kind = clip_kind(upload)
        if kind != "video":
            upload.unlink(missing_ok=True)
            raise FileProblem(filename or "upload", SOUND_ALONE if kind == "sound" else
                              "not a video clip that FFmpeg can read")
        job_id = upload.stem
        job = ClipJob(job_id, f"{safe_stem(filename)}-{model}.mp4", upload, self.folder / f"{job_id}-out.mp4",
                      self.settings.for_model(model))
        with self._lock:
            self.jobs[job_id] = job
            self._forget_old()
        self._worker.submit(self._run, job, stylizer)
        return job

    def _run(self, job: ClipJob, stylizer: Callable[[torch.Tensor], torch.Tensor]) -> None:
        job.state = "running"

        def heard(frames: int, total: int | None) -> None:
            job.frames, job.total = frames, total

        try:
            report = stylize_video(stylizer, job.source, job.target, job.settings, progress=False, on_frames=heard)
            job.error = f"decoding stopped after {report.frames} frames ({report.error})" if report.error else None
            job.state = "done"
        except FileProblem as exc:
            job.state, job.error = "failed", exc.problem
        except Exception as exc:  # a clip must never stop the worker: the next one still runs
            job.state, job.error = "failed", first_line(exc)
        finally:
            job.source.unlink(missing_ok=True)

    def _forget_old(self) -> None:
        finished = [job for job in self.jobs.values() if job.state in ("done", "failed")]
        for job in finished[: max(0, len(finished) - KEEP)]:
            job.target.unlink(missing_ok=True)
            del self.jobs[job.id]

    def close(self) -> None:
        """Stop after the clip in progress and remove every upload and result."""
        self._worker.shutdown(wait=True, cancel_futures=True)
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
