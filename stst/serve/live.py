"""``WS /api/live``: the browser's camera frames in, stylized frames out, the newest frame first.

The client sends frames as binary messages (JPEG or PNG) and its settings as
text (JSON: ``model``, ``tier``, and the look fields ``strength``,
``stroke_scale``, ``preserve_colors``). The server keeps only the newest frame
that waits: when the network is slower than the camera, older frames are
dropped, never queued, so the delay stays under two frames' time. Each
stylized frame (JPEG) follows a text message ``{"ms": ..., "dropped": ...}``
(``dropped``: frames replaced so far, which get no answer); a bad frame gets
``{"error": "...", "frame": true}`` instead, a bad setting ``{"error": "..."}``,
and the stream goes on. Frames reach the network as clips' frames do
(:meth:`stst.video.settings.VideoSettings.network_scale`: at half size for the
quick tiers on a CPU).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

import anyio
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..base.errors import StstError
from ..stylize import stylize_bytes
from .fields import ApiError, look_of, tier_of

log = logging.getLogger("stst.serve")
QUALITY = 85  # JPEG quality of the frames sent back


class _Slot:
    """The newest frame not yet stylized; a newer one replaces it (and counts as a drop)."""

    def __init__(self) -> None:
        self.frame: bytes | None = None
        self.dropped = 0
        self.ready = anyio.Event()

    def put(self, frame: bytes) -> None:
        self.dropped += self.frame is not None
        self.frame = frame
        self.ready.set()

    async def take(self) -> bytes:
        await self.ready.wait()
        self.ready = anyio.Event()
        frame, self.frame = self.frame, None
        return frame


async def live(ws: WebSocket) -> None:
    server = ws.app.state.server
    await ws.accept()
    state = {"model": server.catalog.default}
    state.update(tier=server.catalog.fastest(state["model"]), path=server.catalog.file(state["model"],
                 server.catalog.fastest(state["model"])), look=look_of({}))
    slot = _Slot()

    async def say(message: dict) -> None:
        await ws.send_text(json.dumps(message))

    def configure(text: str) -> None:
        try:
            settings = json.loads(text)
            if not isinstance(settings, dict):
                raise ValueError("settings must be a JSON object")
        except ValueError as exc:
            raise ApiError(400, f"bad settings message ({exc})") from None
        model = settings.get("model", state["model"])
        tier = tier_of(settings) or server.catalog.fastest(model)
        path, look = server.catalog.file(model, tier), look_of(settings)
        state.update(model=model, tier=tier, path=path, look=look)

    async def receive() -> None:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("bytes"):
                slot.put(message["bytes"])
            elif message.get("text"):
                try:
                    configure(message["text"])
                except (ApiError, StstError) as exc:
                    log.warning("WS /api/live: %s", exc)
                    await say({"error": str(exc)})

    async def answer() -> None:
        settings = server.settings(quality=QUALITY)
        while True:
            frame = await slot.take()
            start = time.perf_counter()
            try:
                scaled = server.video.for_model(state["path"].stem).around
                out = await asyncio.wrap_future(server.workers.submit(
                    state["path"], lambda stylizer: stylize_bytes(scaled(stylizer), frame, "frame", "JPEG", settings),
                    state["look"], limited=False))
            except StstError as exc:
                log.warning("WS /api/live: %s", exc)
                await say({"error": str(exc), "frame": True, "dropped": slot.dropped})
                continue
            try:
                await say({"ms": round(1000 * (time.perf_counter() - start), 1), "dropped": slot.dropped,
                           "model": state["model"], "tier": state["tier"]})
                await ws.send_bytes(out)
            except (WebSocketDisconnect, RuntimeError, OSError):  # the client left mid-answer: receive() sees it
                return

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(answer)
        try:
            await receive()
        except WebSocketDisconnect:  # the client went away while the server was answering
            pass
        tasks.cancel_scope.cancel()

