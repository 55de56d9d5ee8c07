"""One HTTP request to the worker (:class:`Handler`): its plumbing and the checks it passes, then the
endpoint :mod:`.routes` names for it (it comes on a connection that :mod:`.connections` handed over).

Every request, in this order: its Host header must name this worker on loopback (or the address it
was told to bind) with its port, else 403 (DNS rebinding); a browser's request (an ``Origin`` or
``Sec-Fetch-Site`` header) gets 403; without the token, 401. Refusals are logged, rate-limited.

Answer writes time out after ``CONNECTION_TIMEOUT`` s. A body must arrive whole before one total deadline
(:func:`body_seconds`), however it trickles: else 408 and the connection closes. A request refused on its
headers (Host, browser, token) is answered and closed at once: its body is never waited for, so strangers
cannot hold the handler threads.
"""

from __future__ import annotations

import hmac
import http.server
import io
import json
import select
import socket
import time
import traceback
from typing import Callable

from .. import __version__
from ..wire import protocol
from .connections import CONNECTION_TIMEOUT, App, HeadFirst

BROWSER_HEADERS = ("Origin", "Sec-Fetch-Site")
BODY_SECONDS = 5.0  # seconds any body may take to arrive, plus one second per BODY_RATE bytes
BODY_RATE = 20 << 20
SKIM_BYTES = 1 << 20  # of a refused request's body, what has already arrived is read (not waited for)


ERROR_CODES = {414: "uri_too_long", 431: "headers_too_large", 501: "unsupported_method", 505: "bad_version"}


def body_seconds(length: int) -> float:
    """The total time a body of ``length`` bytes is given to arrive."""
    return BODY_SECONDS + length / BODY_RATE


class RequestError(Exception):
    """A request the worker refuses: an HTTP status, a short code, one sentence, extra headers."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


class Handler(http.server.BaseHTTPRequestHandler):
    """One request: its plumbing and checks, then the endpoint :attr:`routes` names for it
    ({(method, first path part after the API version, number of parts): endpoint}, set by :mod:`.routes`)."""

    server_version = f"mattekit/{__version__}"
    protocol_version = "HTTP/1.0"
    timeout = CONNECTION_TIMEOUT
    routes: dict[tuple[str, str, int], Callable] = {}

    def __init__(self, request, client_address, server, head: bytes = b""):
        self.head = head  # what the waiting room read of this connection: its headers, perhaps a body's start
        super().__init__(request, client_address, server)

    # -- plumbing
    def setup(self):
        super().setup()
        self.rfile.close()  # the socket's own reader: replaced by one that starts with what was read already
        self.rfile = io.BufferedReader(HeadFirst(self.connection, self.head), 1 << 16)

    @property
    def worker(self) -> App:
        return self.server.worker

    def log_message(self, format, *args):  # noqa: A002 - quiet: requests are not worth a line each
        pass

    def log_error(self, format, *args):  # noqa: A002 - malformed requests and timeouts, rate-limited
        self.worker.log("refused a malformed request from %s: %s" % (self.client_address[0], format % args))

    def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_error(self, code, message=None, explain=None):
        """The standard library's own refusals (a malformed request line, headers too large, a method the
        worker has no handler for) as the worker's JSON error body with one sentence, not an HTML page."""
        self.log_error("code %d, message %s", code, message)
        sentence = {
            414: "The request's path is too long.",
            431: "The request's headers are too large.",
            501: f"The method {str(self.command)[:20]!r} is not part of the API.",
        }.get(code)
        self.close_connection = True
        try:
            self._send(
                code,
                protocol.error_body(
                    ERROR_CODES.get(code, "bad_request"), sentence or f"The request is malformed ({message or code})."
                ),
                "application/json",
            )
        except OSError:  # the client is gone
            pass

    def _json(self, status: int, payload: dict, headers: dict | None = None) -> None:
        self._send(status, json.dumps(payload).encode("utf-8"), "application/json", headers)

    def _error(self, exc: RequestError) -> None:
        headers = dict(exc.headers)
        if exc.status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="mattekit"'
        self._send(exc.status, protocol.error_body(exc.code, exc.message), "application/json", headers)

    def _check_caller(self) -> None:
        """Host on loopback, no browser, the token: RequestError otherwise (module docstring)."""
        host = (self.headers.get("Host") or "").strip().lower()
        if host not in self.server.hosts:
            raise RequestError(403, "bad_host", "The Host header must name this worker on loopback with its port.")
        if any(self.headers.get(name) is not None for name in BROWSER_HEADERS):
            raise RequestError(403, "browser_refused", "Requests from web pages are refused.")
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        if not (scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self.worker.token.encode())):
            raise RequestError(401, "unauthorised", "A valid worker token is required.")

    def _receive(self, length: int, into: bytearray | None = None) -> int:
        """Read ``length`` body bytes (into ``into``, else dropped) before one total deadline, however slowly
        they trickle: the count read (fewer when the client hung up); TimeoutError when the deadline passed."""
        self._consumed = True
        deadline = time.monotonic() + body_seconds(length)
        buffer = memoryview(into if into is not None else bytearray(min(length, 1 << 20)))
        got = 0
        try:
            while got < length:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("the body did not arrive in time")
                self.connection.settimeout(left)
                start = got if into is not None else 0
                count = self.rfile.readinto1(buffer[start : start + min(length - got, len(buffer) - start)])
                if not count:
                    break
                got += count
        finally:
            self.connection.settimeout(self.timeout)
        return got

    def _skim(self) -> None:
        """Read what has already arrived of an unread body, without waiting, so that closing the connection
        does not reset it before the client has read our answer."""
        try:
            self.connection.setblocking(False)
            for _ in range(SKIM_BYTES >> 16):
                if not self.connection.recv(1 << 16):
                    break
        except OSError:  # nothing more has arrived (or the client is gone)
            pass

    def _drain(self, limit: int = 1 << 20) -> None:
        """Read a small unread body before answering an error, so the client gets to read the answer."""
        if getattr(self, "_consumed", False):
            return
        self._consumed = True
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return
        if length > limit:
            self.close_connection = True
        elif length > 0:
            self._discard(length)

    def _client_gone(self) -> bool:
        """Whether the client has closed its connection (its end is readable and holds nothing: a hang-up),
        checked without waiting, for a handler that waits on something else meanwhile."""
        try:
            if not select.select([self.connection], [], [], 0)[0]:
                return False
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:  # reset, or closed under us
            return True

    def _length(self) -> int:
        """The announced body length, refused (411/413) before anything is read when missing or too large."""
        length = self.headers.get("Content-Length")
        if length is None:
            raise RequestError(411, "length_required", "The request must say its Content-Length.")
        try:
            length = int(length)
            if length < 0:
                raise ValueError
        except ValueError:
            raise RequestError(400, "bad_length", "The Content-Length header is not a number.") from None
        if length > self.worker.max_request:
            self._discard(length)
            raise RequestError(
                413,
                "too_large",
                f"The request holds {length} bytes; this worker accepts at most "
                f"{self.worker.max_request} (mattekit serve --max-request-mb).",
            )
        return length

    def _discard(self, length: int) -> None:
        """Skip a body we refuse (up to 64 MiB, so that the client reads our answer); close the connection."""
        self._consumed = True
        self.close_connection = True
        if length <= 64 << 20:
            try:
                self._receive(length)
            except TimeoutError:
                pass

    def _body(self, length: int) -> bytearray:
        body = bytearray(length)
        try:
            got = self._receive(length, body)
        except TimeoutError:
            self.close_connection = True
            raise RequestError(
                408, "body_timeout", f"The request body did not arrive within {body_seconds(length):.0f} s."
            ) from None
        if got != length:
            raise RequestError(400, "short_body", "The request ended before its Content-Length.")
        return body

    def _dispatch(self, method: str) -> None:
        worker = self.worker
        activity = False  # only authorised work keeps the worker alive, not health checks or strangers
        worker.enter_request()
        try:
            try:
                self._check_caller()
            except RequestError as exc:
                worker.log(f"refused {method} {self.path[:80]!r} from {self.client_address[0]}: {exc.message}")
                self._consumed = self.close_connection = True  # answered and closed at once, body unread
                self._error(exc)
                self._skim()
                return
            path = self.path.split("?", 1)[0].rstrip("/")
            parts = path.split("/")[1:]
            activity = parts[1:2] != ["health"]
            if len(parts) < 2 or parts[0] != protocol.API:
                raise RequestError(
                    404, "not_found", f"There is no {path or '/'} here; the API lives under /{protocol.API}/."
                )
            handler = self.routes.get((method, parts[1], len(parts)))
            if handler is None:
                other_method = any(p == parts[1] and n == len(parts) for _, p, n in self.routes)
                if other_method:
                    raise RequestError(405, "method_not_allowed", f"{method} {path} is not part of the API.")
                raise RequestError(404, "not_found", f"{method} {path} is not part of the API.")
            handler(self, parts[2:])
        except RequestError as exc:
            self._drain()
            self._error(exc)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True
        except Exception as exc:  # never let a bug kill the connection without an answer
            worker.log("request failed:\n" + traceback.format_exc())
            try:
                self._error(RequestError(500, "internal", f"Internal error ({type(exc).__name__})."))
            except OSError:
                pass
        finally:
            worker.leave_request(activity)

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def do_PUT(self):
        self._dispatch("PUT")
