"""Running the app under uvicorn: bind first (so ``--port 0`` works and the URL is known), then serve."""

from __future__ import annotations

import logging
import socket
import webbrowser
from collections.abc import Callable

import uvicorn

from ..base.errors import StstError
from .app import ServeConfig, create_app


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StstError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); try another --port") from None
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/"


def run(config: ServeConfig, host: str, port: int, open_browser: bool = False,
        announce: Callable[[str], None] = print) -> None:
    """Serve until Ctrl-C; ``announce`` hears the page's URL once the port is bound."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    app = create_app(config)
    sock = _bind(host, port)
    url = url_of(sock)
    announce(url)
    if open_browser:
        webbrowser.open(url)
    server = uvicorn.Server(uvicorn.Config(app, access_log=False, log_level="warning", ws_max_size=32 << 20))
    server.run(sockets=[sock])
