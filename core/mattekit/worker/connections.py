"""The worker's connections: a TCP server that keeps connections in a waiting room until their headers
are in, then hands them to a bounded pool of handler threads; and :class:`App`, what the connections and
requests need of the worker behind them.

A new connection waits in one selector thread until its request line and headers have all arrived (at
most ``CONNECTION_TIMEOUT`` seconds after it was accepted, however slowly they trickle in); only then does
one of ``pool_size`` handler threads take it; a health check (``GET /v1/health``) goes to a thread of its own,
which no job can hold, so that a worker whose handler threads all wait on runs still says it is alive and busy.
At most ``max_connections`` are open at once: beyond that the oldest waiting one is closed (or, when none is
waiting, the new one).
"""
from __future__ import annotations

import queue
import re
import selectors
import socket
import socketserver
import threading
import time
import traceback
from typing import Protocol

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


class Server(socketserver.TCPServer):
    """A TCP server with a waiting room for idle connections and a bounded pool of handler threads."""

    allow_reuse_address = False
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, address, handler, worker: App, pool_size: int = POOL_SIZE,
                 max_connections: int = MAX_CONNECTIONS):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)
        self.worker = worker
        self.hosts = allowed_hosts(*self.server_address[:2])
        self.max_connections = max_connections
        self.lock = threading.Lock()
        self.open_connections = 0
        self.waiting: dict[socket.socket, tuple[float, tuple]] = {}  # socket -> (deadline, address)
        self.partial: set[socket.socket] = set()  # waiting sockets holding part of their headers (not selected)
        self.incoming: list = []
        self.closing = False
        self.selector = selectors.DefaultSelector()
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.selector.register(self.wake_r, selectors.EVENT_READ)
        self.ready: queue.Queue = queue.Queue()  # connections for the handler pool
        self.health: queue.Queue = queue.Queue()  # health checks, for their own thread
        self.threads = [threading.Thread(target=self._waiting_room, name="mattekit-http-wait", daemon=True)]
        self.threads += [threading.Thread(target=self._handle_ready, args=(self.ready,), name=f"mattekit-http-{i}",
                                          daemon=True) for i in range(pool_size)]
        self.threads.append(threading.Thread(target=self._handle_ready, args=(self.health,), name="mattekit-http-health",
                                             daemon=True))
        for thread in self.threads:
            thread.start()

    # -- admission
    def process_request(self, request, client_address):
        with self.lock:
            if self.open_connections >= self.max_connections:
                oldest = min(self.waiting, key=lambda s: self.waiting[s][0], default=None)
                if oldest is None:
                    self.worker.log(f"refused a connection from {client_address[0]}: "
                                    f"{self.max_connections} connections are busy")
                    self.shutdown_request(request)
                    return
                self._drop_waiting(oldest)
            self.open_connections += 1
            self.incoming.append((request, client_address))
        self.wake_w.send(b"\0")

    def _drop_waiting(self, sock) -> None:
        """Close a waiting connection (lock held)."""
        del self.waiting[sock]
        if sock in self.partial:
            self.partial.discard(sock)
        else:
            self.selector.unregister(sock)
        self.shutdown_request(sock)
        self.open_connections -= 1

    def _hand_over(self, sock) -> None:
        """Give a waiting connection whose headers are in to the handler pool, or a health check to its own
        thread (lock held)."""
        _, address = self.waiting.pop(sock)
        if sock in self.partial:
            self.partial.discard(sock)
        else:
            self.selector.unregister(sock)
        try:
            health = HEALTH_LINE.match(sock.recv(32, socket.MSG_PEEK)) is not None
        except OSError:  # the handler meets the error and ends the connection
            health = False
        (self.health if health else self.ready).put((sock, address))

    def _waiting_room(self) -> None:
        while not self.closing:
            events = self.selector.select(timeout=0.1 if self.partial else 1.0)
            with self.lock:
                for key, _ in events:
                    sock = key.fileobj
                    if sock is self.wake_r:
                        try:
                            sock.recv(4096)
                        except BlockingIOError:
                            pass
                    elif sock in self.waiting and not headers_complete(sock):
                        self.selector.unregister(sock)  # polled below until complete: a selector would spin
                        self.partial.add(sock)
                    elif sock in self.waiting:
                        self._hand_over(sock)
                for sock in [s for s in self.partial if headers_complete(s)]:
                    self._hand_over(sock)
                deadline = time.monotonic() + CONNECTION_TIMEOUT
                for sock, address in self.incoming:
                    sock.setblocking(False)  # peeked without blocking; the handler sets its own timeout
                    self.waiting[sock] = (deadline, address)
                    self.selector.register(sock, selectors.EVENT_READ)
                self.incoming.clear()
                now = time.monotonic()
                for sock in [s for s, (limit, _) in self.waiting.items() if limit < now]:
                    self._drop_waiting(sock)

    def _handle_ready(self, connections: queue.Queue) -> None:
        while True:
            item = connections.get()
            if item is None:
                return
            request, address = item
            try:
                self.finish_request(request, address)
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


def headers_complete(sock: socket.socket) -> bool:
    """Whether a connection's request line and headers have all arrived (or it ended, or overflowed)."""
    try:
        data = sock.recv(MAX_HEADER_BYTES, socket.MSG_PEEK)
    except BlockingIOError:
        return False
    except OSError:
        return True  # the handler meets the error and ends the connection
    return not data or b"\r\n\r\n" in data or b"\n\n" in data or len(data) >= MAX_HEADER_BYTES


def allowed_hosts(host: str, port: int) -> set[str]:
    """Host header values naming this worker: loopback names (and the bound address) with the port."""
    bound = f"[{host}]" if ":" in host else host
    return {f"{name}:{port}".lower() for name in (*LOOPBACK_NAMES, bound)}
