"""The worker's connections: a TCP server that keeps connections in a waiting room until their headers
are in, then hands them to a bounded pool of handler threads; and :class:`App`, what the connections and
requests need of the worker behind them.

A new connection waits in one selector thread, which reads its request line and headers as they arrive
(at most ``MAX_HEADER_BYTES``, before one total deadline of ``CONNECTION_TIMEOUT`` seconds after it was
accepted, however slowly they trickle in). No thread is ever held by a connection whose headers are not
all in: only then does one of ``pool_size`` handler threads take it, with the bytes already read; headers
that outgrow ``MAX_HEADER_BYTES`` are answered 431 by the waiting room itself and closed. A health check
(``GET /v1/health``) goes to a thread of its own, which no job can hold, so that a worker whose handler
threads all wait on runs still says it is alive and busy. At most ``max_connections`` are open at once:
beyond that the oldest waiting one is closed (or, when none is waiting, the new one).
"""

from __future__ import annotations

import io
import queue
import re
import selectors
import socket
import socketserver
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Protocol

from ..wire import protocol

CONNECTION_TIMEOUT = 30.0  # seconds: idle before the first byte, and per read or write
LISTEN_BACKLOG = 128
POOL_SIZE = 8
MAX_CONNECTIONS = 256
MAX_HEADER_BYTES = 1 << 16
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
HEALTH_LINE = re.compile(rb"GET /v1/health/?[? ]")  # a request line the health thread takes


class App(Protocol):
    """What the server and its request handlers need of the worker they serve."""

    token: str  # every request must carry it
    max_request: int  # bytes a request body may hold

    def log(self, line: str) -> None: ...

    def enter_request(self) -> None: ...

    def leave_request(self, activity: bool) -> None:
        """A request ended; ``activity``: it was authorised work (not a health check), which keeps the worker alive."""


@dataclass
class Waiting:
    """A connection in the waiting room: when it must have sent its headers, from where, what it sent so far."""

    deadline: float  # time.monotonic()
    address: tuple
    head: bytearray = field(default_factory=bytearray)


class Server(socketserver.TCPServer):
    """A TCP server with a waiting room for connections whose headers are not in, and a bounded pool of
    handler threads for those whose headers are."""

    allow_reuse_address = False
    request_queue_size = LISTEN_BACKLOG

    def __init__(
        self, address, handler, worker: App, pool_size: int = POOL_SIZE, max_connections: int = MAX_CONNECTIONS
    ):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)
        self.worker = worker
        self.hosts = allowed_hosts(*self.server_address[:2])
        self.max_connections = max_connections
        self.lock = threading.Lock()
        self.open_connections = 0
        self.waiting: dict[socket.socket, Waiting] = {}
        self.incoming: list = []
        self.closing = False
        self.selector = selectors.DefaultSelector()
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.selector.register(self.wake_r, selectors.EVENT_READ)
        self.ready: queue.Queue = queue.Queue()  # (socket, address, bytes read) for the handler pool
        self.health: queue.Queue = queue.Queue()  # the same, of health checks, for their own thread
        self.threads = [threading.Thread(target=self._waiting_room, name="mattekit-http-wait", daemon=True)]
        self.threads += [
            threading.Thread(target=self._handle_ready, args=(self.ready,), name=f"mattekit-http-{i}", daemon=True)
            for i in range(pool_size)
        ]
        self.threads.append(
            threading.Thread(target=self._handle_ready, args=(self.health,), name="mattekit-http-health", daemon=True)
        )
        for thread in self.threads:
            thread.start()

    # -- admission
    def process_request(self, request, client_address):
        with self.lock:
            if self.open_connections >= self.max_connections:
                oldest = min(self.waiting, key=lambda s: self.waiting[s].deadline, default=None)
                if oldest is None:
                    self.worker.log(
                        f"refused a connection from {client_address[0]}: {self.max_connections} connections are busy"
                    )
                    self.shutdown_request(request)
                    return
                self._drop_waiting(oldest)
            self.open_connections += 1
            self.incoming.append((request, client_address))
        self.wake_w.send(b"\0")

    def _drop_waiting(self, sock, answer: bytes = b"") -> None:
        """Close a waiting connection (lock held), sending ``answer`` first if it fits without waiting."""
        del self.waiting[sock]
        self.selector.unregister(sock)
        if answer:
            try:
                sock.send(answer)
                for _ in range(16):  # what has arrived meanwhile, so that closing does not reset the answer away
                    if not sock.recv(1 << 16):
                        break
            except OSError:  # nothing more has arrived, or its buffer is full, or it is gone
                pass
        self.shutdown_request(sock)
        self.open_connections -= 1

    def _read_head(self, sock) -> None:
        """Take what has arrived on a waiting connection (lock held); hand it over once its headers are in,
        answer 431 when they outgrow :data:`MAX_HEADER_BYTES`, drop it when it ended."""
        waiting = self.waiting[sock]
        try:
            data = sock.recv(MAX_HEADER_BYTES - len(waiting.head))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the client hung up (or reset) before its headers were in
            self._drop_waiting(sock)
            return
        seen = max(0, len(waiting.head) - 3)
        waiting.head += data
        if waiting.head.find(b"\r\n\r\n", seen) >= 0 or waiting.head.find(b"\n\n", seen) >= 0:
            self._hand_over(sock)
        elif len(waiting.head) >= MAX_HEADER_BYTES:
            self.worker.log(
                f"refused a request from {waiting.address[0]}: its headers outgrew {MAX_HEADER_BYTES} bytes"
            )
            self._drop_waiting(sock, TOO_LARGE)

    def _hand_over(self, sock) -> None:
        """Give a waiting connection whose headers are in to the handler pool, or a health check to its own
        thread (lock held)."""
        waiting = self.waiting.pop(sock)
        self.selector.unregister(sock)
        head = bytes(waiting.head)
        (self.health if HEALTH_LINE.match(head) else self.ready).put((sock, waiting.address, head))

    def _waiting_room(self) -> None:
        while not self.closing:
            events = self.selector.select(timeout=1.0)
            with self.lock:
                for key, _ in events:
                    sock = key.fileobj
                    if sock is self.wake_r:
                        try:
                            sock.recv(4096)
                        except BlockingIOError:
                            pass
                    elif sock in self.waiting:
                        self._read_head(sock)
                deadline = time.monotonic() + CONNECTION_TIMEOUT
                for sock, address in self.incoming:
                    sock.setblocking(False)  # read without waiting; the handler sets its own timeout
                    self.waiting[sock] = Waiting(deadline, address)
                    self.selector.register(sock, selectors.EVENT_READ)
                self.incoming.clear()
                now = time.monotonic()
                for sock in [s for s, waiting in self.waiting.items() if waiting.deadline < now]:
                    self._drop_waiting(sock)

    def finish_request(self, request, client_address, head: bytes = b""):
        """Serve one connection whose first bytes ``head`` (its headers, perhaps a body's start) the waiting
        room has read."""
        self.RequestHandlerClass(request, client_address, self, head)

    def _handle_ready(self, connections: queue.Queue) -> None:
        while True:
            item = connections.get()
            if item is None:
                return
            request, address, head = item
            try:
                self.finish_request(request, address, head)
            except (ConnectionError, TimeoutError) as exc:  # the client went away: a line, not a traceback
                self.worker.log(f"connection from {address[0]} ended early ({type(exc).__name__})")
            except Exception:  # a handler bug must not end this pool thread
                self.worker.log("connection failed:\n" + traceback.format_exc())
            finally:
                self.shutdown_request(request)
                with self.lock:
                    self.open_connections -= 1

    def server_close(self):
        super().server_close()
        self.closing = True
        for _ in self.threads[1:]:
            self.ready.put(None)
        self.health.put(None)
        self.wake_w.send(b"\0")
        with self.lock:
            for sock in list(self.waiting):
                self._drop_waiting(sock)
            for sock, _ in self.incoming:
                self.shutdown_request(sock)
            self.incoming.clear()


class HeadFirst(io.RawIOBase):
    """A connection's reads for its handler: the bytes the waiting room already took, then the socket's
    (which raises TimeoutError past its timeout)."""

    def __init__(self, sock: socket.socket, head: bytes):
        super().__init__()
        self.sock = sock
        self.head = memoryview(head)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.head:
            count = min(len(buffer), len(self.head))
            buffer[:count] = self.head[:count]
            self.head = self.head[count:]
            return count
        return self.sock.recv_into(buffer)


def _refusal(status: str, code: str, sentence: str) -> bytes:
    """A whole HTTP/1.0 answer refusing a request, the worker's JSON error body, for the waiting room to send."""
    body = protocol.error_body(code, sentence)
    return (
        f"HTTP/1.0 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        f"Cache-Control: no-store\r\nConnection: close\r\n\r\n"
    ).encode() + body


TOO_LARGE = _refusal("431 Request Header Fields Too Large", "headers_too_large", "The request's headers are too large.")


def allowed_hosts(host: str, port: int) -> set[str]:
    """Host header values naming this worker: loopback names (and the bound address) with the port."""
    bound = f"[{host}]" if ":" in host else host
    return {f"{name}:{port}".lower() for name in (*LOOPBACK_NAMES, bound)}
