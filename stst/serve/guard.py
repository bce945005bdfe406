"""Who may talk to the server: the Host it is asked by, the page's Origin, and a token off this machine.

A server on 127.0.0.1 is still reachable from any web page the user opens: through DNS rebinding (a name
that resolves to 127.0.0.1, so the Host header is not ours) and through cross-site requests and WebSockets
(the browser sends the other site's Origin). So, before any route runs:

- **Host**: bound to a loopback address, only ``localhost``, ``127.0.0.1``, ``::1``, the bound address
  and the ``--allow-host`` names are served (any port); others get 403. Off loopback the token guards.
- **Origin**: a WebSocket and every request that changes something (not GET or HEAD) with a browser
  ``Origin`` that is not the server's own get 403; requests without one (curl, scripts) pass.
- **Token**: when set, every request carries it as ``Authorization: Bearer TOKEN``, ``?token=TOKEN`` or
  the cookie the page gets when it is opened with ``?token=`` (then redirected to the bare address).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import secrets
from dataclasses import dataclass
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, urlsplit

from starlette.responses import JSONResponse, RedirectResponse, Response

log = logging.getLogger("stst.serve")
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
COOKIE = "stst_token"
SAFE_METHODS = ("GET", "HEAD")


def is_loopback(host: str) -> bool:
    """Whether listening on ``host`` keeps the server to this machine."""
    try:
        return host.strip("[]").lower() == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_name(netloc: str) -> str:
    """The name in a Host header or an origin's ``host:port``, lower case, without port or brackets."""
    netloc = netloc.strip().lower()
    if netloc.startswith("["):
        return netloc[1:].split("]", 1)[0]
    return (netloc.rsplit(":", 1)[0] if netloc.count(":") == 1 else netloc).rstrip(".")


def new_token() -> str:
    return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class Access:
    """The checks of :class:`Guard`: the Host names served (``None``: any) and the token (``None``: none)."""

    hosts: frozenset[str] | None = LOOPBACK_NAMES
    token: str | None = None
    also: frozenset[str] = frozenset()  # --allow-host names: served, and trusted as an Origin's host

    @classmethod
    def listening(cls, host: str, allow_hosts: tuple[str, ...] = (), token: str | None = None) -> Access:
        """The checks for a server bound to ``host``: Host names on loopback; off it, whatever ``token`` says."""
        also = frozenset(host_name(name) for name in allow_hosts)
        hosts = LOOPBACK_NAMES | {host_name(host)} | also if is_loopback(host) else None
        return cls(hosts, token, also)


def _header(scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


class Guard:
    """ASGI middleware: refuses a foreign Host (403), a foreign browser Origin (403) and a missing token (401)."""

    def __init__(self, app, access: Access) -> None:
        self.app, self.access = app, access

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        refusal = self._refusal(scope)
        if refusal is None and self.access.token is not None:
            refusal = self._token_refusal(scope)
        if refusal is None and self._opened_with_token(scope):
            return await self._to_bare_page(scope, receive, send)
        if refusal is None:
            return await self.app(scope, receive, send)
        status, message = refusal
        method = scope.get("method", "WS")
        log.warning("%s %s %d: %s", method, scope["path"], status, message)
        await self._refuse(scope, receive, send, JSONResponse({"error": message}, status_code=status))

    def _refusal(self, scope) -> tuple[int, str] | None:
        host = _header(scope, b"host") or ""
        if self.access.hosts is not None and host_name(host) not in self.access.hosts:
            return 403, f"host '{host[:80]}' is not served here (stst serve --allow-host NAME adds a name)"
        origin = _header(scope, b"origin")
        if origin is not None and (scope["type"] == "websocket" or scope["method"] not in SAFE_METHODS):
            own = urlsplit(origin).netloc.lower() == host.lower() or host_name(urlsplit(origin).netloc) in self.access.also
            if not own:
                return 403, f"requests from the page at '{origin[:80]}' are refused: only this server's own page may"
        return None

    def _token_refusal(self, scope) -> tuple[int, str] | None:
        given = [*parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [])]
        authorization = _header(scope, b"authorization") or ""
        if authorization.lower().startswith(("bearer ", "token ")):
            given.append(authorization.split(" ", 1)[1].strip())
        cookie = SimpleCookie(_header(scope, b"cookie") or "").get(COOKIE)
        if cookie is not None:
            given.append(cookie.value)
        if any(hmac.compare_digest(value.encode(), self.access.token.encode()) for value in given):
            return None
        return 401, ("a token is needed: open the address with ?token= that stst serve printed, "
                     "or send the header Authorization: Bearer TOKEN")

    def _opened_with_token(self, scope) -> bool:
        return (self.access.token is not None and scope["type"] == "http" and scope["path"] == "/"
                and "token" in parse_qs(scope.get("query_string", b"").decode("latin-1")))

    async def _to_bare_page(self, scope, receive, send) -> None:
        """The page opened with its token: the cookie set, and on to the address without it (kept out of view)."""
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, self.access.token, httponly=True, samesite="strict")
        await response(scope, receive, send)

    async def _refuse(self, scope, receive, send, response: Response) -> None:
        if scope["type"] == "http":
            return await response(scope, receive, send)
        await receive()  # the handshake's websocket.connect
        if "websocket.http.response" in scope.get("extensions", {}):
            return await response(scope, receive, send)  # the status and the JSON, as the denial response
        await send({"type": "websocket.close", "code": 1008})

