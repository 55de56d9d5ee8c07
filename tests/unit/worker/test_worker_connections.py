"""The local worker's connections: idle and half-sent requests time out, trickled bodies hold no handler thread,
many clients get no resets, floods of strangers are answered and logged rate-limited, the log rotates."""

from __future__ import annotations

import json
import select
import socket
import threading
import time

import numpy as np
import pytest

from mattekit.wire import client
from mattekit.wire.client import Pixels
from mattekit.wire import protocol
from mattekit.worker import connections, request
from mattekit.worker.log import WorkerLog
from workers import IDENTITY, _answer, _echo_operation, _in_threads, _until, raw


@pytest.mark.slow  # ~23 s: idle connections held open until the worker's timeouts
def test_idle_connections_take_no_threads_and_do_not_lock_clients_out(make_worker):
    srv, worker = make_worker()
    before = set(threading.enumerate())
    socks = [socket.create_connection((srv.host, srv.port), timeout=30) for _ in range(3000)]
    _until(
        lambda: (
            not select.select([srv.httpd.socket], [], [], 0)[0]  # none left to accept
            and _open_connections(srv) == connections.MAX_CONNECTIONS
        ),
        "the worker's taking in of the connections",
    )
    new_threads = set(threading.enumerate()) - before
    health = worker.health()  # a real client is served while the idle connections wait
    open_now = _open_connections(srv)
    for s in socks:
        s.close()
    print(
        f"worker idle connections: 3000 opened; connections held {open_now} (cap {connections.MAX_CONNECTIONS}), "
        f"threads started for them {sorted(t.name for t in new_threads)} (pool {connections.POOL_SIZE})"
    )
    assert health["ok"] and not new_threads and open_now <= connections.MAX_CONNECTIONS


def test_half_sent_requests_and_idle_connections_time_out(make_worker, monkeypatch):
    monkeypatch.setattr(connections, "CONNECTION_TIMEOUT", 1.0)
    monkeypatch.setattr(request.Handler, "timeout", 1.0)
    srv, worker = make_worker()
    threads, handled, finish = set(threading.enumerate()), [], srv.httpd.finish_request
    srv.httpd.finish_request = lambda request, address, *head: (
        handled.append(address),
        finish(request, address, *head),
    )
    idle = socket.create_connection((srv.host, srv.port), timeout=30)
    half = socket.create_connection((srv.host, srv.port), timeout=30)
    half.sendall(b"GET /v1/health HTTP/1.0\r\nHost: 127.0.0.1\r\n")  # never finishes its headers
    trickle = socket.create_connection((srv.host, srv.port), timeout=0.2)
    trickle.sendall(b"G")
    _until(lambda: len(srv.httpd.waiting) == 3, "the three connections' arrival in the waiting room")
    closed = False
    deadline = time.monotonic() + 30  # 30 timeouts of 1 s: a timer each byte restarted would never close it
    while not closed:  # one header byte every 0.2 s, forever
        assert time.monotonic() < deadline, "the worker never hung up on a connection trickling its headers"
        try:
            trickle.sendall(b"X")
            closed = trickle.recv(100) == b""  # the worker closed it
        except socket.timeout:
            pass
        except OSError:  # reset: the worker closed it while we were sending
            closed = True
        assert set(threading.enumerate()) <= threads, "a slow connection took a thread"
    assert idle.recv(100) == b"" and half.recv(100) == b""  # the worker hung up on all three
    assert _open_connections(srv) == 0 and not srv.httpd.waiting and not handled, "dropped from the waiting room"
    for sock in (idle, half, trickle):
        sock.close()
    assert worker.health()["ok"]


def _open_connections(srv) -> int:
    """The connections the worker holds open, read under its lock (so no drop is half done)."""
    with srv.httpd.lock:
        return srv.httpd.open_connections


def _trickle(socks: list, stop: threading.Event, every: float) -> threading.Thread:
    """A thread sending one byte to each socket every ``every`` seconds until ``stop`` (errors ignored)."""

    def run():
        while not stop.wait(every):
            for sock in socks:
                try:
                    sock.send(b"x")
                except OSError:
                    pass

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_strangers_trickling_a_body_do_not_hold_the_handler_threads(make_worker, monkeypatch):
    """Refused requests trickling their bodies do not hold the handler threads: each is answered 401 and hung up on,
    and a health check is answered while they trickle."""
    monkeypatch.setattr(request, "BODY_SECONDS", 600.0)  # a body waited for would hold its thread past the timeout
    srv, _ = make_worker()
    head = (
        f"POST /v1/run/remove HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\nAuthorization: Bearer wrong\r\n"
        f"Content-Length: 1000\r\n\r\nx"
    ).encode()
    stalls = [socket.create_connection((srv.host, srv.port), timeout=20) for _ in range(connections.POOL_SIZE + 2)]
    for sock in stalls:
        sock.sendall(head)
    stop = threading.Event()
    trickling = _trickle(stalls, stop, 0.5)  # 1,000 bytes at 2 a second: 500 s per request
    try:  # were the strangers holding the handler threads, the health check would wait 500 s: the timeout fails it
        health = client.WorkerClient(srv.url, srv.token, timeout=60).health()  # all stalling sockets still open
        answers = [sock.recv(4096) for sock in stalls]  # each stranger was answered 401 and hung up on
    finally:
        stop.set()
        trickling.join()
        for sock in stalls:
            sock.close()
    assert health["ok"]
    assert all(answer.startswith(b"HTTP/1.0 401") for answer in answers), answers[0][:40]


def test_a_body_gets_one_total_deadline_however_it_trickles(make_worker, monkeypatch):
    monkeypatch.setattr(request, "BODY_SECONDS", 1.0, raising=False)
    srv, worker = make_worker(operations_table={"echo": _echo_operation()})
    metas = [
        {"width": 10, "height": 10, "channels": 3, "dtype": "u8"},
        {"width": 10, "height": 10, "channels": 1, "dtype": "u8"},
    ]
    sock = socket.create_connection((srv.host, srv.port), timeout=30)  # a hang, were the deadline per byte (80 s)
    sock.sendall(
        (
            f"POST /v1/run/echo HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\nAuthorization: Bearer {srv.token}\r\n"
            f"{protocol.META_HEADER}: {json.dumps({'inputs': metas})}\r\nContent-Length: 400\r\n\r\nx"
        ).encode()
    )
    stop = threading.Event()
    trickling = _trickle([sock], stop, 0.2)  # 400 bytes at 5 a second: 80 s, were each byte to reset a timer
    try:
        answer = _answer(sock)  # the worker's answer while the body still trickles in
    finally:
        stop.set()
        trickling.join()
        sock.close()
    assert answer.startswith(b"HTTP/1.0 408") and b"body_timeout" in answer, answer[:200]
    assert worker.health()["ok"]


def test_50_concurrent_clients_get_no_connection_resets(make_worker):
    srv, worker = make_worker()
    rgb = np.random.default_rng(4).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    inputs = [Pixels(rgb.tobytes(), 32, 32, 3, "u8")]
    failures, done = [], []

    def one_client():
        own = client.WorkerClient(srv.url, srv.token, timeout=120)
        for _ in range(10):
            try:
                (out,) = own.run("enhance", inputs, IDENTITY)
                done.append(out.data == inputs[0].data)
            except Exception as exc:
                failures.append(repr(exc))

    elapsed = _in_threads(lambda k: one_client(), 50)
    print(
        f"worker concurrency: 50 clients x 10 requests in {elapsed:.1f} s ({500 / elapsed:.0f} requests/s), "
        f"{len(failures)} failures"
    )
    assert not failures, failures[:3]
    assert len(done) == 500 and all(done)


def test_unauthenticated_floods_are_answered_401_and_logged_rate_limited(make_worker, tmp_path):
    path = tmp_path / "log" / "worker.log"
    log = WorkerLog(str(path))
    srv, _ = make_worker(log=log)
    start = time.perf_counter()
    statuses = set()
    for i in range(1000):
        status, body, _ = raw(
            srv,
            "GET" if i % 2 else "POST",
            "/v1/health" if i % 2 else "/v1/run/remove",
            token=None if i % 3 else "Bearer nope",
        )
        statuses.add((status, body["error"]["code"]))
    elapsed = time.perf_counter() - start
    lines = path.read_text().splitlines()
    bound = log.burst + log.rate * elapsed + 1
    print(
        f"worker log: 1000 unauthenticated requests in {elapsed:.1f} s -> {len(lines)} log lines "
        f"(bound {bound:.0f}: burst {log.burst:g} + {log.rate:g}/s)"
    )
    assert statuses == {(401, "unauthorised")}
    assert 1 <= len(lines) <= bound and not any("Traceback" in line for line in lines)


def test_the_log_rotates_at_its_size_cap(tmp_path):
    path = tmp_path / "worker.log"
    log = WorkerLog(str(path), max_bytes=4000, rate=1e6, burst=1e6)
    for i in range(500):
        log(f"line {i} " + "x" * 60)
    sizes = sorted(p.name for p in tmp_path.iterdir())
    assert sizes == ["worker.log", "worker.log.1"]
    assert path.stat().st_size <= 4000 + 200 and (tmp_path / "worker.log.1").stat().st_size <= 4000 + 200
    assert "line 499" in path.read_text()


def test_50_sockets_holding_partial_or_oversized_headers_do_not_stall_health_or_operations(make_worker):
    """Issue 81: strangers without the token hold 50 connections, each with partial headers or 64 KiB and more of
    header lines that never end (some as health checks), a byte more every 0.5 s: health and an operation's
    request are still answered, and no connection is left holding a thread."""
    srv, worker = make_worker()
    line = b"X-Fill: " + b"a" * 16000 + b"\r\n"  # long lines: few enough for the 100-header limit never to end them
    socks = []
    for k in range(50):
        sock = socket.create_connection((srv.host, srv.port), timeout=5)
        first = b"GET /v1/health HTTP/1.1\r\n" if k % 3 == 0 else b"GET /v1/operations HTTP/1.1\r\n"
        sock.sendall(first + (b"Host: 127.0.0.1\r\nX-Partial: a" if k % 3 == 1 else line * 5))
        socks.append(sock)
    stop = threading.Event()
    trickling = _trickle(socks, stop, 0.5)
    try:
        quick = client.WorkerClient(srv.url, srv.token, timeout=5)  # the target is 0.5 s: a generous bound here
        start = time.perf_counter()
        health = quick.health()
        health_seconds = time.perf_counter() - start
        start = time.perf_counter()
        offered = quick.get_json("/operations")
        operations_seconds = time.perf_counter() - start
        oversized = [sock for k, sock in enumerate(socks) if k % 3 != 1]
        answers = [_answer(sock) for sock in oversized[:3]]  # refused by the waiting room, not by a thread
    finally:
        stop.set()
        trickling.join()
        for sock in socks:
            sock.close()
    print(
        f"worker under 50 slow header sockets: health in {health_seconds:.3f} s, operations in "
        f"{operations_seconds:.3f} s"
    )
    assert health["ok"] and "remove" in {op["name"] for op in offered["operations"]}
    assert all(answer.startswith(b"HTTP/1.0 431") and b"headers_too_large" in answer for answer in answers), answers
