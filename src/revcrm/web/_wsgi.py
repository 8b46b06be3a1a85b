"""A small WSGI bridge, so WSGI hosts (Flask, Django) can mount the ASGI pages.

revcrm.web is an ASGI application; a WSGI server calls a WSGI callable. The bridge runs
the ASGI app on one event loop in a background thread and answers each WSGI call with
the app's whole response (the pages are small and never streamed). The WSGI
``SCRIPT_NAME`` becomes the ASGI ``root_path``, so links stay under the host's mount
point (``DispatcherMiddleware`` in Flask, a ``path()`` prefix in Django).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any, Final

__all__ = ["WsgiBridge", "wsgi_app"]

StartResponse = Callable[..., Any]
ASGIApp = Callable[..., Any]
#: The largest request body the bridge reads (the app refuses large forms itself too).
MAX_BODY: Final = 16 * 1024 * 1024
_REASONS: Final = {
    200: "OK",
    303: "See Other",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    500: "Internal Server Error",
}


class WsgiBridge:
    """``WsgiBridge(asgi_app)`` is a WSGI application serving ``asgi_app``."""

    def __init__(self, app: ASGIApp, *, timeout: float = 60.0) -> None:
        self.app = app
        self.timeout = timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, daemon=True, name="revcrm-wsgi").start()
                self._loop = loop
            return self._loop

    def __call__(
        self, environ: MutableMapping[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        length = environ.get("CONTENT_LENGTH") or "0"
        size = int(length) if length.isdigit() else 0
        if size > MAX_BODY:
            start_response("413 Content Too Large", [("Content-Type", "text/plain")])
            return [b"Request body too large."]
        body = environ["wsgi.input"].read(size) if size else b""
        scope = _scope(environ)
        future = asyncio.run_coroutine_threadsafe(_call(self.app, scope, body), self._event_loop())
        status, headers, chunks = future.result(self.timeout)
        reason = _REASONS.get(status, "")
        start_response(
            f"{status} {reason}".strip(),
            [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers],
        )
        return [b"".join(chunks)]


def wsgi_app(app: ASGIApp) -> WsgiBridge:
    """A WSGI application serving the ASGI ``app`` (see :class:`WsgiBridge`)."""
    return WsgiBridge(app)


def _scope(environ: MutableMapping[str, Any]) -> dict[str, Any]:
    headers = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            name = key[5:].replace("_", "-").lower()
            headers.append((name.encode("latin-1"), str(value).encode("latin-1")))
    for key, name in (("CONTENT_TYPE", "content-type"), ("CONTENT_LENGTH", "content-length")):
        if environ.get(key):
            headers.append((name.encode("latin-1"), str(environ[key]).encode("latin-1")))
    root = str(environ.get("SCRIPT_NAME", ""))
    path = str(environ.get("PATH_INFO", "")) or "/"
    # WSGI hands PATH_INFO decoded as latin-1 bytes; ASGI wants it as text.
    path = path.encode("latin-1").decode("utf-8", "replace")
    server = (str(environ.get("SERVER_NAME", "localhost")), int(environ.get("SERVER_PORT", 80)))
    remote = environ.get("REMOTE_ADDR")
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": str(environ.get("SERVER_PROTOCOL", "HTTP/1.1")).split("/")[-1],
        "method": str(environ.get("REQUEST_METHOD", "GET")).upper(),
        "scheme": str(environ.get("wsgi.url_scheme", "http")),
        "root_path": root,
        # Starlette routes on the full path under root_path (as ASGI servers send it).
        "path": root + path,
        "raw_path": (root + path).encode("utf-8"),
        "query_string": str(environ.get("QUERY_STRING", "")).encode("latin-1"),
        "headers": headers,
        "server": server,
        "client": (str(remote), 0) if remote else None,
        "state": {},
        "extensions": {},
        # The host's WSGI environ, for an ``authenticate`` that reads the host's session.
        "wsgi.environ": environ,
    }


async def _call(
    app: ASGIApp, scope: dict[str, Any], body: bytes
) -> tuple[int, list[tuple[bytes, bytes]], list[bytes]]:
    sent = False
    status = 500
    headers: list[tuple[bytes, bytes]] = []
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)  # no disconnect while the app answers
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, headers
        if message["type"] == "http.response.start":
            status = int(message["status"])
            headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            chunks.append(bytes(message.get("body", b"")))

    await app(scope, receive, send)
    return status, headers, chunks
