"""Watch mode's small HTTP server: POST /hooks/reconcile, GET /metrics, GET /healthz.

One thread runs an asyncio loop for every connection, so idle or slow clients cost a socket,
never a thread each. Requests are answered in the loop (the handlers only queue a trigger or
read counters) and each connection is closed after its answer.
"""

from __future__ import annotations

import asyncio
import hmac
import io
import json
import socket
import threading
from collections.abc import Callable
from email.message import Message
from http import HTTPStatus
from http.client import HTTPException, parse_headers
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST

from reconciler.watch.metrics import WatchMetrics
from reconciler.watch.triggers import Triggers

SECRET_HEADER = "X-Reconciler-Secret"
MAX_BODY = 1_000_000  # bytes; a larger Content-Length is refused (413) before reading
MAX_HEAD = 16 * 1024  # request line and headers
REQUEST_TIMEOUT = 5.0  # seconds for a connection to send its whole request
MAX_CONNECTIONS = 128  # open at once; a new one closes the oldest still sending its request
_CHUNK = 64 * 1024


class HookServer:
    """Serves the watcher's endpoints on a thread until `close()`."""

    def __init__(
        self,
        address: tuple[str, int],
        triggers: Triggers,
        metrics: WatchMetrics,
        secret: str | None,
        healthz: Callable[[], dict[str, Any]],
    ) -> None:
        self._app = _App(triggers, metrics, secret, healthz)
        self._socket = socket.create_server(address)  # binds now: a taken port fails here
        self._loop = asyncio.new_event_loop()
        self._stopping: asyncio.Event | None = None
        self._started = threading.Event()
        self.thread = threading.Thread(target=self._run, name="hook-server", daemon=True)

    @property
    def address(self) -> str:
        """host:port actually bound (port 0 picks a free one)."""
        host, port = self._socket.getsockname()[:2]
        return f"{host!s}:{port}"

    def start(self) -> None:
        """Serve on a background thread."""
        self.thread.start()
        self._started.wait()

    def close(self) -> None:
        """Stop serving and release the port."""
        if self.thread.is_alive() and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
            self.thread.join(timeout=10)
        self._socket.close()

    def _run(self) -> None:
        try:
            self._loop.run_until_complete(self._serve())
        finally:
            self._started.set()  # start() never waits for a loop that failed
            self._loop.close()

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        server = await asyncio.start_server(self._app.connection, sock=self._socket, limit=MAX_HEAD)
        self._started.set()
        async with server:
            await self._stopping.wait()
            for writer in list(self._app.open):
                writer.transport.abort()


class _Refused(Exception):
    """A request answered with an error status before (or instead of) reading its body."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


class _App:
    """The endpoints, and the bookkeeping of open connections."""

    def __init__(
        self,
        triggers: Triggers,
        metrics: WatchMetrics,
        secret: str | None,
        healthz: Callable[[], dict[str, Any]],
    ) -> None:
        self.triggers = triggers
        self.metrics = metrics
        # the header arrives as bytes: compare bytes, a non-ASCII secret as its UTF-8
        self.secret = secret.encode() if secret is not None else None
        self.healthz = healthz
        self.open: dict[asyncio.StreamWriter, bool] = {}  # writer -> still reading its request

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One request on one connection, within REQUEST_TIMEOUT, then close."""
        if not self._make_room():
            writer.transport.abort()  # every open connection is answering: no room
            return
        self.open[writer] = True
        try:
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    status, body, content_type = await self._request(reader)
            except _Refused as refused:
                status, body, content_type = _json(refused.status, {"error": str(refused)})
            except (TimeoutError, OSError, asyncio.IncompleteReadError):
                raise  # no request to answer: closed below
            except Exception as error:  # a bug answers 500; the server and watch carry on
                status, body, content_type = _json(
                    HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"internal error: {error!r}"}
                )
            if writer in self.open:  # not dropped by _make_room meanwhile
                self.open[writer] = False
            writer.write(_response(status, body, content_type))
            async with asyncio.timeout(REQUEST_TIMEOUT):
                await writer.drain()
        except (TimeoutError, OSError, asyncio.IncompleteReadError):
            pass  # a slow, idle or vanished client: its connection is simply closed
        finally:
            self.open.pop(writer, None)
            writer.close()

    def _make_room(self) -> bool:
        """Below the limit, or dropping the oldest connection still sending its request.

        Idle clients then cannot keep a fresh request (a /healthz probe) out.
        """
        if len(self.open) < MAX_CONNECTIONS:
            return True
        for writer, reading in self.open.items():
            if reading:
                writer.transport.abort()
                self.open.pop(writer)
                return True
        return False

    async def _request(self, reader: asyncio.StreamReader) -> tuple[HTTPStatus, bytes, str]:
        method, path, headers = await _head(reader)
        if method == "GET" and path == "/metrics":
            return HTTPStatus.OK, self.metrics.text(), CONTENT_TYPE_LATEST
        if method == "GET" and path == "/healthz":
            return _json(HTTPStatus.OK, self.healthz())
        if method == "POST" and path == "/hooks/reconcile":
            length = _content_length(headers)
            if not self._authorised(headers):
                raise _Refused(HTTPStatus.UNAUTHORIZED, f"missing or wrong {SECRET_HEADER}")
            await _discard(reader, length)  # the payload does not matter: level-based
            self.triggers.add("webhook")
            return _json(HTTPStatus.ACCEPTED, {"queued": True})
        if path in ("/metrics", "/healthz", "/hooks/reconcile"):
            raise _Refused(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} is not allowed here")
        raise _Refused(HTTPStatus.NOT_FOUND, "not found")

    def _authorised(self, headers: Message) -> bool:
        if self.secret is None:
            return True
        given = headers.get(SECRET_HEADER) or ""
        # http.client decodes header bytes as latin-1: encoding back gives the bytes sent
        raw = given.encode("latin-1", errors="replace")
        return hmac.compare_digest(raw, self.secret)


async def _head(reader: asyncio.StreamReader) -> tuple[str, str, Message]:
    """The request line and headers (at most MAX_HEAD bytes)."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError as error:
        raise _Refused(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "headers too large") from error
    line, _, rest = head.partition(b"\r\n")
    parts = line.decode("latin-1").split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise _Refused(HTTPStatus.BAD_REQUEST, "bad request line")
    try:
        headers = parse_headers(io.BytesIO(rest))
    except HTTPException as error:
        raise _Refused(HTTPStatus.BAD_REQUEST, "bad headers") from error
    return parts[0], parts[1].split("?")[0], headers


def _content_length(headers: Message) -> int:
    """The body's length: required, one non-negative integer, at most MAX_BODY."""
    if headers.get("Transfer-Encoding"):
        raise _Refused(
            HTTPStatus.BAD_REQUEST, "Transfer-Encoding is not accepted; send Content-Length"
        )
    values = headers.get_all("Content-Length") or []
    if not values:
        raise _Refused(HTTPStatus.BAD_REQUEST, "Content-Length is required")
    text = values[0].strip()
    if len(values) > 1 or not text.isascii() or not text.isdigit():
        raise _Refused(HTTPStatus.BAD_REQUEST, "Content-Length must be one non-negative integer")
    length = int(text)
    if length > MAX_BODY:
        raise _Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {MAX_BODY} bytes")
    return length


async def _discard(reader: asyncio.StreamReader, length: int) -> None:
    """Read and drop exactly `length` bytes, a chunk at a time (never buffered whole)."""
    while length > 0:
        chunk = await reader.read(min(length, _CHUNK))
        if not chunk:
            raise asyncio.IncompleteReadError(b"", length)
        length -= len(chunk)


def _json(status: HTTPStatus, data: dict[str, Any]) -> tuple[HTTPStatus, bytes, str]:
    return status, json.dumps(data).encode() + b"\n", "application/json"


def _response(status: HTTPStatus, body: bytes, content_type: str) -> bytes:
    head = (
        f"HTTP/1.1 {status.value} {status.phrase}\r\n"
        "Server: reconciler\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body
