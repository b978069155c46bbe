"""Watch mode's small HTTP server: POST /hooks/reconcile, GET /metrics, GET /healthz."""

from __future__ import annotations

import hmac
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST

from reconciler.engine.metrics import WatchMetrics
from reconciler.engine.triggers import Triggers

SECRET_HEADER = "X-Reconciler-Secret"


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
        handler = _handler(triggers, metrics, secret, healthz)
        self.server = ThreadingHTTPServer(address, handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.5}, daemon=True
        )

    @property
    def address(self) -> str:
        """host:port actually bound (port 0 picks a free one)."""
        host, port = self.server.server_address[:2]
        return f"{host!s}:{port}"

    def start(self) -> None:
        """Serve on a background thread."""
        self.thread.start()

    def close(self) -> None:
        """Stop serving and release the port."""
        self.server.shutdown()
        self.server.server_close()


def _handler(
    triggers: Triggers,
    metrics: WatchMetrics,
    secret: str | None,
    healthz: Callable[[], dict[str, Any]],
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "reconciler"

        def do_POST(self) -> None:
            length = min(int(self.headers.get("Content-Length") or 0), 1_000_000)
            self.rfile.read(length)  # the payload does not matter: reconciling is level-based
            if self.path.split("?")[0] != "/hooks/reconcile":
                self._send(404, {"error": "not found"})
            elif secret is not None and not _same(self.headers.get(SECRET_HEADER), secret):
                self._send(401, {"error": f"missing or wrong {SECRET_HEADER}"})
            else:
                triggers.add("webhook")
                self._send(202, {"queued": True})

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            if path == "/metrics":
                self._reply(200, metrics.text(), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                self._send(200, healthz())
            else:
                self._send(404, {"error": "not found"})

        def _send(self, status: int, data: dict[str, Any]) -> None:
            self._reply(status, json.dumps(data).encode() + b"\n", "application/json")

        def _reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Requests are not logged (a secret header must never reach a log)."""

    return Handler


def _same(given: str | None, secret: str) -> bool:
    """Constant-time comparison of the header with the shared secret."""
    return hmac.compare_digest((given or "").encode(), secret.encode())
