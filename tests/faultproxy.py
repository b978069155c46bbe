"""A real TCP proxy on 127.0.0.1 that injects network faults in front of a git server.

    with FaultProxy(daemon.port) as proxy:
        url = f"git://127.0.0.1:{proxy.port}/repo.git"
        proxy.cut_after(16_384, times=1)   # the first connection that uploads more is dropped
        proxy.delay(0.02)                  # every chunk, both ways, waits 20 ms
        proxy.cut_reply_after(16_384)      # a server that got a pack is cut as it answers
        proxy.passing()                    # back to a plain relay

Faults are chosen per connection when it is accepted, so a test can change them between
CLI runs; the counters say what was actually injected.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Self

HOST = "127.0.0.1"
_CHUNK = 16_384


@dataclass(frozen=True)
class _Fault:
    delay: float = 0.0  # seconds before relaying each chunk
    cut_after: int | None = None  # drop the connection once the client sent more than this
    cut_reply_after: int | None = None  # drop it when the server answers an upload that big


class FaultProxy:
    """Relays 127.0.0.1:port to 127.0.0.1:upstream_port, passing, delaying or cutting."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self._lock = threading.Lock()
        self._fault = _Fault()
        self._cuts_left: int | None = None  # None: every matching connection is cut
        self.connections = 0
        self.cuts = 0  # connections actually dropped mid-stream
        self._listener = socket.create_server((HOST, 0))
        self.port: int = self._listener.getsockname()[1]
        self._open: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._acceptor: threading.Thread | None = None
        self._closed = False

    # ---- choosing the fault ------------------------------------------------------------------

    def passing(self) -> None:
        """Relay everything unchanged."""
        with self._lock:
            self._fault, self._cuts_left = _Fault(), None

    def delay(self, seconds: float) -> None:
        """Wait `seconds` before relaying every chunk, in both directions."""
        with self._lock:
            self._fault, self._cuts_left = _Fault(delay=seconds), None

    def cut_after(self, upload_bytes: int, times: int | None = None) -> None:
        """Drop a connection (RST) once its client sent more than `upload_bytes`: a pack
        being pushed is cut, a ref listing passes. `times`: only the first so many cuts."""
        with self._lock:
            self._fault, self._cuts_left = _Fault(cut_after=upload_bytes), times

    def cut_reply_after(self, upload_bytes: int, times: int | None = None) -> None:
        """Drop a connection (RST) a few bytes into the server's answer once its client sent
        more than `upload_bytes`: a pushed pack arrives and is stored, its report is lost."""
        with self._lock:
            self._fault, self._cuts_left = _Fault(cut_reply_after=upload_bytes), times

    def refuse(self) -> None:
        """Stop listening: new connections are refused, as by a stopped server."""
        self._close_listener()
        self._join_acceptor()

    def _close_listener(self) -> None:
        # shutdown wakes the acceptor blocked in accept(); close alone would not (Linux).
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self._listener.close()

    def listen(self) -> None:
        """Listen again on the same port after `refuse`."""
        self._listener = socket.create_server((HOST, self.port))
        self._start_acceptor()

    # ---- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> Self:
        self._start_acceptor()
        return self

    def _start_acceptor(self) -> None:
        self._acceptor = threading.Thread(
            target=self._accept, args=(self._listener,), name=f"FaultProxy:{self.port}", daemon=True
        )
        self._acceptor.start()

    def _join_acceptor(self) -> None:
        if self._acceptor is not None:
            self._acceptor.join(timeout=5)
            self._acceptor = None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop accepting and drop every open connection."""
        self._closed = True
        self._close_listener()
        with self._lock:
            sockets = list(self._open)
        for sock in sockets:
            _abort(sock)
        self._join_acceptor()
        for thread in self._threads:
            thread.join(timeout=5)

    # ---- relaying ------------------------------------------------------------------------------

    def _accept(self, listener: socket.socket) -> None:
        while not self._closed:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                fault = self._fault
                self._open.add(client)
            try:
                server = socket.create_connection((HOST, self.upstream_port), timeout=5)
            except OSError:
                _abort(client)
                continue
            server.settimeout(None)
            with self._lock:
                self._open.add(server)
            pair = _Pair(self, client, server, fault)
            for source, sink, upload in ((client, server, True), (server, client, False)):
                thread = threading.Thread(
                    target=pair.pump, args=(source, sink, upload), daemon=True
                )
                thread.start()
                self._threads.append(thread)

    def _take_cut(self) -> bool:
        """Whether this over-limit connection is cut (counts down `times`)."""
        with self._lock:
            if self._cuts_left is not None:
                if self._cuts_left <= 0:
                    return False
                self._cuts_left -= 1
            self.cuts += 1
            return True

    def _forget(self, *sockets: socket.socket) -> None:
        with self._lock:
            for sock in sockets:
                self._open.discard(sock)


class _Pair:
    """One proxied connection: two pumps, one upload counter."""

    def __init__(
        self, proxy: FaultProxy, client: socket.socket, server: socket.socket, fault: _Fault
    ) -> None:
        self.proxy = proxy
        self.client = client
        self.server = server
        self.fault = fault
        self.uploaded = 0
        self.cut = False
        self.pumps_done = 0
        self._lock = threading.Lock()

    def pump(self, source: socket.socket, sink: socket.socket, upload: bool) -> None:
        try:
            while True:
                data = source.recv(_CHUNK)
                if not data:
                    with contextlib.suppress(OSError):
                        sink.shutdown(socket.SHUT_WR)  # half-close, as the peer did
                    return
                if self.fault.delay:
                    time.sleep(self.fault.delay)
                if not upload and self._replying_after_upload():
                    # The headers and a few bytes first: the client sees an answer begun, then
                    # lost (on no answer at all, curl sends the request again by itself).
                    head = data.find(b"\r\n\r\n")
                    if head < 0:
                        sink.sendall(data)
                        continue
                    sink.sendall(data[: head + 12])
                    _abort(self.client)
                    _abort(self.server)
                    return
                if upload and self._over_limit(len(data)):
                    # Pass what fits under the limit, then drop both sides mid-stream.
                    limit = self.fault.cut_after or 0
                    sink.sendall(data[: max(0, limit - (self.uploaded - len(data)))])
                    _abort(self.client)
                    _abort(self.server)
                    return
                sink.sendall(data)
        except OSError:
            _abort(self.client)
            _abort(self.server)
        finally:
            self._finished()

    def _finished(self) -> None:
        """The second pump to end closes both sockets (the first may only have half-closed)."""
        with self._lock:
            self.pumps_done += 1
            last = self.pumps_done == 2
        if last:
            self.proxy._forget(self.client, self.server)
            self.client.close()
            self.server.close()

    def _replying_after_upload(self) -> bool:
        with self._lock:
            limit = self.fault.cut_reply_after
            if limit is None or self.cut:
                return self.cut and limit is not None
            if self.uploaded <= limit:
                return False
            self.cut = self.proxy._take_cut()
            return self.cut

    def _over_limit(self, size: int) -> bool:
        with self._lock:
            self.uploaded += size
            if self.cut or self.fault.cut_after is None or self.uploaded <= self.fault.cut_after:
                return False
            self.cut = self.proxy._take_cut()
            return self.cut


def _abort(sock: socket.socket) -> None:
    """Close with RST (linger 0): the peer sees a dropped connection, not a clean end."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        # shutdown wakes the other pump blocked in recv on this socket; close alone would not.
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
