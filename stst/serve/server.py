"""Running the app under uvicorn on a socket bound first, so that ``--port 0`` works and the address is known."""

from __future__ import annotations

import contextlib
import ipaddress
import signal
import socket
from collections.abc import Callable

import uvicorn
from starlette.applications import Starlette

from ..base.errors import StstError


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port`` (0: any free port); a one-line error when it cannot be had."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)  # now, not when uvicorn starts: a client given the printed address is queued, not refused
    except OSError as exc:
        sock.close()
        raise StstError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); try another --port") from None
    return sock


def url_of(sock: socket.socket, token: str | None = None) -> tuple[str, str]:
    """The page's address on a bound socket, with the token to open it, and its address from this machine
    (they differ on a socket bound to every address, which others reach by the machine's name)."""
    host, port = sock.getsockname()[:2]
    query = f"?token={token}" if token else ""

    def url(name: str) -> str:
        return f"http://{f'[{name}]' if ':' in name else name}:{port}/{query}"

    if not ipaddress.ip_address(host).is_unspecified:
        return url(host), url(host)
    return url(socket.gethostname()), url("::1" if ":" in host else "127.0.0.1")


class _Server(uvicorn.Server):
    """uvicorn's server, stopping on Ctrl-C or SIGTERM without raising the signal again once it has shut down
    (uvicorn does, and asyncio then cancels the app's shutdown half-way, with a traceback)."""

    on_stop: Callable[[], None] = staticmethod(lambda: None)

    def handle_exit(self, sig, frame) -> None:
        self.on_stop()
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self):
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def serve(app: Starlette, sock: socket.socket, on_stop: Callable[[], None] = lambda: None) -> None:
    """Serve ``app`` on ``sock`` until Ctrl-C or SIGTERM; ``on_stop`` is called as the stop begins (before the
    requests in progress are waited for)."""
    server = _Server(uvicorn.Config(app, access_log=False, log_level="warning", ws_max_size=32 << 20))
    server.on_stop = on_stop
    server.run(sockets=[sock])
