"""The server's ASGI app: the page, and the HTTP API it uses (which scripts can use too).

Routes are plain functions over one :class:`Server` (catalog, engines, clips).
Every error is JSON ``{"error": "..."}`` with a 4xx status and one line in
the log, and the server keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image
from starlette.applications import Starlette
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from ..base.devices import resolve_device
from ..base.errors import FileProblem, StstError
from ..base.home import stst_home
from ..base.imageio import FORMAT_ALIASES, TooManyPixels, encode_photo, read_photo
from ..base.limits import DEFAULT_MAX_PIXELS
from ..stylize import JobSettings, stylize_bytes
from ..video.settings import VideoSettings
from .catalog import Catalog, UnknownModel
from .clips import ClipJobs
from .workers import QUEUE, ModelWorkers, Stylizer
from .fields import ApiError, field, look_of, tier_of
from .guard import Access, Guard
from .live import live
from .styles import MINUTES, STYLES_FOLDER, StyleJobs

PAGE = Path(__file__).resolve().parent / "page"
log = logging.getLogger("stst.serve")


@dataclass(frozen=True)
class ServeConfig:
    """What ``stst serve`` was started with (besides where it listens)."""

    models: Path | None = None  # a folder of .pth models offered beside the bundled ones
    device: str = "auto"
    precision: str = "auto"
    backend: str = "auto"
    max_upload_mb: float = 200.0
    max_pixels: int = DEFAULT_MAX_PIXELS
    video: VideoSettings = VideoSettings()
    access: Access = Access()  # who may talk to it: Host names, the page's Origin, a token
    queue: int = QUEUE  # requests that may wait per model (and clips, and paintings, in their queues)


class Server:
    """What every route shares: the models, their engines, the clips, and the limits."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        # Styles trained from the page go to --models, else to the cache, whose styles are offered too.
        trained = config.models or stst_home() / STYLES_FOLDER
        self.catalog = Catalog(config.models or (trained if trained.is_dir() else None), warn=log.warning)
        self.workers = ModelWorkers(resolve_device(config.device), config.precision, config.backend, config.queue)
        self.video = replace(config.video, max_pixels=config.max_pixels, device=self.workers.device.type)
        self.clips = ClipJobs(self.video, config.queue)
        self.styles = StyleJobs(trained, lambda name: name in self.catalog.styles, self.catalog.add, config.device,
                                config.queue)

    def settings(self, max_size: int | None = None, quality: int = 95) -> JobSettings:
        return JobSettings(max_size=max_size, quality=quality, max_pixels=self.config.max_pixels)


def _server(request: Request) -> Server:
    return request.app.state.server


def _upload(form: FormData, name: str) -> UploadFile:
    upload = form.get(name)
    if not isinstance(upload, UploadFile):
        raise ApiError(400, f"no file in the multipart field '{name}'")
    return upload


async def page(request: Request) -> Response:
    return FileResponse(PAGE / "index.html", media_type="text/html")


async def models(request: Request) -> Response:
    return JSONResponse(_server(request).catalog.describe())


async def stylize(request: Request) -> Response:
    """``POST /api/stylize``: multipart ``image`` and the fields of :func:`look_of`, ``model``, ``tier``,
    ``format`` (default png) and ``max_size``; answers the stylized image."""
    server = _server(request)
    async with request.form(max_files=1, max_fields=16) as form:
        if "mix" in form:
            raise ApiError(400, "mix: a mix is trained first, by POST /api/styles with mix=a=0.7,b=0.3; then it is "
                                "a style to stylize with (model=its name)")
        path = server.catalog.file(form.get("model"), tier_of(form))
        look = look_of(form)
        fmt = field(form, "format", lambda v: FORMAT_ALIASES[v.lower()], "PNG",
                     what=f"one of {', '.join(FORMAT_ALIASES)}")
        max_size = field(form, "max_size", int, None, lambda v: v >= 16, "a whole number of at least 16")
        upload = _upload(form, "image")
        name = Path(upload.filename or "upload").name
        if not upload.size:
            raise ApiError(422, f"{name}: empty upload")
        start = time.perf_counter()
        result = await asyncio.wrap_future(server.workers.submit(
            path, lambda stylizer: _stylize_upload(stylizer, upload, fmt, server.settings(max_size)), look))
    seconds = time.perf_counter() - start
    log.info("POST /api/stylize %s %s: %.2f s", path.stem, name, seconds)
    return Response(result, media_type=Image.MIME[fmt], headers={"X-Stst-Model": path.stem,
                                                                 "X-Stst-Seconds": f"{seconds:.3f}"})


def _stylize_upload(stylizer: Stylizer, upload: UploadFile, fmt: str, settings: JobSettings) -> bytes:
    """An uploaded photo stylized in its model's turn: read and decoded only then, so waiting costs no pixels."""
    upload.file.seek(0)
    return stylize_bytes(stylizer, upload.file.read(), Path(upload.filename or "upload").name, fmt, settings)


async def photo(request: Request) -> Response:
    """``POST /api/photo``: multipart ``image``; answers the photo as the server reads it (upright, in sRGB) as a
    JPEG, for a page whose browser cannot decode it: an iPhone's HEIC outside Safari."""
    server = _server(request)
    async with request.form(max_files=1, max_fields=2) as form:
        upload = _upload(form, "image")
        name = Path(upload.filename or "upload").name
        if not upload.size:
            raise ApiError(422, f"{name}: empty upload")
        data = await run_in_threadpool(_as_jpeg, upload, name, server.config.max_pixels)
    return Response(data, media_type="image/jpeg")


def _as_jpeg(upload: UploadFile, name: str, max_pixels: int) -> bytes:
    upload.file.seek(0)
    return encode_photo(read_photo(upload.file, None, max_pixels, name=name, uint8=True).pixels, None, "JPEG")


async def submit_clip(request: Request) -> Response:
    """``POST /api/clips``: multipart ``video``, ``model``, ``tier`` and the look fields; answers the job (202)."""
    server = _server(request)
    async with request.form(max_files=1, max_fields=16) as form:
        model = form.get("model")
        path = server.catalog.file(model, tier_of(form))
        look = look_of(form)
        upload = _upload(form, "video")
        filename = upload.filename
        target = server.clips.new_upload()
        await _save(upload, target)
    if target.stat().st_size == 0:
        target.unlink()
        raise ApiError(422, f"{Path(filename or 'upload').name}: empty upload")
    job = await run_in_threadpool(server.clips.submit, target, filename, path.stem, server.workers.bound(path, look))
    log.info("POST /api/clips %s %s: queued as %s", path.stem, Path(filename or "upload").name, job.id)
    return JSONResponse(job.describe(), status_code=202)


async def _save(upload: UploadFile, target: Path) -> None:
    with target.open("wb") as out:
        while chunk := await upload.read(1 << 20):
            out.write(chunk)


async def submit_style(request: Request) -> Response:
    """``POST /api/styles``: multipart ``painting`` (or ``mix``: ``a=0.7,b=0.3``, styles the server has), optional
    ``photo`` (previewed as the style is learned) and ``minutes`` (the budget, default the quick recipe's, or the
    mix's); answers the job (202). One trains at a time."""
    server = _server(request)
    jobs = server.styles
    async with request.form(max_files=2, max_fields=8) as form:
        minutes = field(form, "minutes", float, None, lambda v: MINUTES[0] <= v <= MINUTES[1],
                        f"a number of minutes from {MINUTES[0]:g} to {MINUTES[1]:g}")
        if "mix" in form:
            mix = await run_in_threadpool(server.catalog.mix_parts, str(form["mix"]))
            photo = await _photo(form, jobs)
            job = await run_in_threadpool(jobs.submit_mix, mix, photo, minutes)
            log.info("POST /api/styles %s: queued as %s (%s)", form["mix"], job.name, job.id)
            return JSONResponse(jobs.describe(job), status_code=202)
        upload = _upload(form, "painting")
        filename = upload.filename
        painting = jobs.new_upload("painting")
        await _save(upload, painting)
        photo = await _photo(form, jobs)
    if painting.stat().st_size == 0:
        painting.unlink()
        raise ApiError(422, f"{Path(filename or 'upload').name}: empty upload")
    job = await run_in_threadpool(jobs.submit, painting, filename, photo, minutes)
    log.info("POST /api/styles %s: queued as %s (%s)", Path(filename or "upload").name, job.name, job.id)
    return JSONResponse(jobs.describe(job), status_code=202)


async def _photo(form: FormData, jobs: StyleJobs) -> Path | None:
    """A style job's preview photo, if the form has one, saved where the jobs keep uploads."""
    if not isinstance(form.get("photo"), UploadFile):
        return None
    photo = jobs.new_upload("photo")
    await _save(form["photo"], photo)
    return photo


def _job(request: Request, jobs: dict, what: str):
    """The job that the route's ``{job}`` names among ``jobs``; a 404 when there is none (or no longer)."""
    job = jobs.get(request.path_params["job"])
    if job is None:
        raise ApiError(404, f"no {what} '{request.path_params['job'][:40]}' (finished ones are kept for a while only)")
    return job


def _style_job(request: Request):
    return _job(request, _server(request).styles.jobs, "style job")


def _clip(request: Request):
    return _job(request, _server(request).clips.jobs, "clip")


async def style_status(request: Request) -> Response:
    return JSONResponse(_server(request).styles.describe(_style_job(request)))


async def style_preview(request: Request) -> Response:
    job = _style_job(request)
    if job.preview is None:
        raise ApiError(404, f"no preview of {job.name} yet")
    return FileResponse(job.preview, media_type="image/jpeg")


async def clip_status(request: Request) -> Response:
    return JSONResponse(_clip(request).describe())


async def clip_video(request: Request) -> Response:
    job = _clip(request)
    if job.state != "done":
        raise ApiError(409, f"clip {job.id} is {job.state}" + (f": {job.error}" if job.error else ""))
    return FileResponse(job.target, media_type="video/mp4", filename=job.name)


def _status(exc: Exception) -> int:
    if isinstance(exc, ApiError):
        return exc.status
    if isinstance(exc, HTTPException):
        return exc.status_code
    if isinstance(exc, UnknownModel):
        return 404
    if isinstance(exc, TooManyPixels):
        return 413
    if isinstance(exc, FileProblem):
        return 422
    return 400


async def refuse(request: Request, exc: Exception) -> Response:
    """Every refusal: JSON with a 4xx status, and one line in the log."""
    status = _status(exc)
    message = str(exc.detail if isinstance(exc, HTTPException) else exc)
    log.warning("%s %s %d: %s", request.method, request.url.path, status, message)
    retry = getattr(exc, "retry_after", None)
    return JSONResponse({"error": message}, status_code=status,
                        headers={"Retry-After": str(retry)} if retry is not None else None)


class BodyLimit:
    """Refuses request bodies over ``limit`` bytes (413): by Content-Length at once, else while they arrive."""

    def __init__(self, app, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        too_big = f"the upload is larger than the limit of {self.limit / 1e6:g} MB (--max-upload-mb)"
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if declared.isdigit() and int(declared) > self.limit:
            log.warning("%s %s 413: %s", scope["method"], scope["path"], too_big)
            return await JSONResponse({"error": too_big}, status_code=413)(scope, receive, send)
        received = 0

        async def counted():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise ApiError(413, too_big)
            return message

        await self.app(scope, counted, send)


def create_app(config: ServeConfig = ServeConfig()) -> Starlette:
    """The app for ``config``; models are listed now, engines are built on first use."""
    server = Server(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        yield
        server.clips.close()
        server.styles.close()
        server.workers.close()

    app = Starlette(
        routes=[
            Route("/", page),
            Route("/api/models", models),
            Route("/api/stylize", stylize, methods=["POST"]),
            Route("/api/photo", photo, methods=["POST"]),
            Route("/api/clips", submit_clip, methods=["POST"]),
            Route("/api/clips/{job}", clip_status),
            Route("/api/clips/{job}/video", clip_video),
            Route("/api/styles", submit_style, methods=["POST"]),
            Route("/api/styles/{job}", style_status),
            Route("/api/styles/{job}/preview", style_preview),
            WebSocketRoute("/api/live", live),
            Mount("/static", StaticFiles(directory=PAGE)),
        ],
        middleware=[Middleware(Guard, access=config.access),
                    Middleware(BodyLimit, limit=int(config.max_upload_mb * 1e6))],
        exception_handlers={HTTPException: refuse, ApiError: refuse, StstError: refuse},
        lifespan=lifespan,
    )
    app.state.server = server
    return app
