"""A synchronous job (POST /v1/run/OP) whose client hangs up is cancelled, and the handler thread that waited for
it is free again."""

from __future__ import annotations

import json
import re
import socket
import threading
import time

import numpy as np

from mattekit.wire import client, protocol
from workers import _echo_operation, _slow_operation

IMAGE = {"width": 4, "height": 4, "channels": 3, "dtype": "u8"}
STEPS = 10000  # 10 ms each: about 100 s unless cancelled


def _hang_up_after_sending(
    srv, operation: str = "slow", options: dict | None = None, image: dict = IMAGE, body: bytes = bytes(4 * 4 * 3)
):
    """A generator: its first step sends a whole synchronous request on a raw socket; closing it hangs up
    without reading the answer."""
    meta = json.dumps({"inputs": [image], "options": {"steps": STEPS} if options is None else options})
    with socket.create_connection((srv.host, srv.port)) as sock:
        sock.sendall(
            (
                f"POST /{protocol.API}/run/{operation} HTTP/1.1\r\nHost: {srv.host}:{srv.port}\r\n"
                f"Authorization: Bearer {srv.token}\r\n{protocol.META_HEADER}: {meta}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body
        )
        yield


def _until(condition, what: str, limit: float = 60) -> None:
    """Wait for ``condition()``; fail naming ``what`` if it does not come within ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen"
        time.sleep(0.01)


def _submitted(srv) -> list:
    """The jobs the worker's table takes from now on (the table's own submit, recorded)."""
    taken, submit = [], srv.jobs.submit

    def record(*args, **kwargs):
        taken.append(submit(*args, **kwargs))
        return taken[-1]

    srv.jobs.submit = record
    return taken


def test_a_sync_job_whose_client_hangs_up_is_cancelled_and_frees_its_handler(make_worker):
    log, lines = [], []
    srv, worker = make_worker(operations_table={"slow": _slow_operation(log)}, pool_size=1, log=lines.append)
    taken = _submitted(srv)
    running = _hang_up_after_sending(srv)
    next(running)  # the request is sent and its connection open
    _until(lambda: "start" in log, "the job's start")
    running.close()  # the client hangs up
    # the one handler thread is free: a health check is answered while the job (100 s uncancelled) would still run
    assert worker.health()["ok"]
    assert taken[0].done_event.wait(60), "the job ran on after its client hung up"
    assert taken[0].state == "cancelled" and len([s for s in log if s != "start"]) < STEPS, taken[0].status()
    assert not srv.jobs.busy() and srv.jobs.queued_bytes == 0
    assert any("hung up before the answer" in line for line in lines), lines


def test_a_queued_sync_job_whose_client_hangs_up_never_starts(make_worker):
    log = []
    srv, worker = make_worker(operations_table={"slow": _slow_operation(log)})
    taken = _submitted(srv)
    first = _hang_up_after_sending(srv)
    next(first)
    _until(lambda: "start" in log, "the first job's start")
    second = _hang_up_after_sending(srv)
    next(second)
    _until(lambda: len(taken) == 2, "the second job's submission")
    assert taken[1].state == "queued"
    second.close()
    assert taken[1].done_event.wait(60) and taken[1].state == "cancelled"
    first.close()
    assert taken[0].done_event.wait(60) and taken[0].state == "cancelled"
    assert log.count("start") == 1, "the queued job never ran"
    assert not srv.jobs.busy()


def _held_at_tile(srv, tile: int) -> tuple[list, list, "threading.Event", "threading.Event"]:
    """The jobs the worker takes from now on, each held just before it reports tile ``tile`` until ``go`` is set
    (``there`` says it is held); ``reports``: the progress messages the work gave the job, in order."""
    taken, reports, there, go = [], [], threading.Event(), threading.Event()
    submit = srv.jobs.submit

    def record(name, work, booking, keep):
        def held(progress):
            def report(fraction, message=""):
                reports.append(message)
                if re.match(rf"tile {tile} of \d+", message):
                    there.set()
                    assert go.wait(120), "the test never let the job go on"
                progress(fraction, message)

            return work(report)

        taken.append(submit(name, held, booking, keep))
        return taken[-1]

    srv.jobs.submit = record
    return taken, reports, there, go


def test_a_real_upscale_whose_client_hangs_up_stops_between_tiles(make_worker, mirror):
    """The same with a real model: an upscale in 64-pixel tiles, held at its third tile until the worker has seen
    the hang-up, reports no tile after it."""
    srv, worker = make_worker()
    taken, reports, there, go = _held_at_tile(srv, 3)
    side = 384
    pixels = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8).tobytes()
    running = _hang_up_after_sending(
        srv,
        "upscale",
        {"model": "rfdn-x4", "tile": 64},
        {"width": side, "height": side, "channels": 3, "dtype": "u8"},
        pixels,
    )
    next(running)
    assert there.wait(120), "the upscale never reached its third tile"
    running.close()
    _until(lambda: taken[0].cancel_event.is_set(), "the worker's cancel on the hang-up")
    go.set()
    assert taken[0].done_event.wait(120), "the upscale ran on after its client hung up"
    assert taken[0].state == "cancelled", taken[0].status()
    last = re.match(r"tile (\d+) of (\d+)", reports[-1])  # no tile reported after the held one: it raised there
    assert last and int(last[1]) == 3 < int(last[2]) and taken[0].progress < 0.98, (reports[-3:], taken[0].status())
    assert worker.health()["ok"] and not srv.jobs.busy()


def _leave_part_way(srv, request: str, body: bytes = b"", read: int = 1 << 20) -> bytes:
    """Send ``request`` (its head without Host and token lines) and ``body`` on a raw socket, read the first ``read``
    bytes of the answer, then leave (closing with unread data resets the connection)."""
    head = f"{request}\r\nHost: {srv.host}:{srv.port}\r\nAuthorization: Bearer {srv.token}\r\n\r\n"
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)  # fixed: the kernel may not grow it to 32 MB
        sock.connect((srv.host, srv.port))
        sock.sendall(head.encode() + body)
        got = b""
        while len(got) < read and (chunk := sock.recv(read - len(got))):
            got += chunk
    return got


def test_a_result_whose_client_leaves_part_way_is_not_taken_as_delivered(make_worker):
    """Issue 91: an answer the client left part-way is no delivered result. A job's result fetched so stays in the
    table and is fetched whole again; a synchronous answer cut so is logged as lost; the worker serves on. The result
    (16 MB) is more than the sockets' buffers hold (the client's fixed at 128 KB, the worker's at most 4 MB), so the
    worker is still sending when the client leaves."""
    lines = []
    srv, worker = make_worker(operations_table={"echo": _echo_operation()}, log=lines.append)
    rng, side = np.random.default_rng(0), 1024
    image, alpha = rng.random((side, side, 3), dtype=np.float32), rng.random((side, side), dtype=np.float32)
    inputs = [
        client.Pixels(image.tobytes(), side, side, 3, "f32"),
        client.Pixels(alpha.tobytes(), side, side, 1, "f32"),
    ]
    job = worker.submit("echo", inputs)
    _until(lambda: worker.job(job)["state"] == "done", "the job's end")
    assert _leave_part_way(srv, f"GET /{protocol.API}/jobs/{job}/result HTTP/1.1").startswith(b"HTTP/1.0 200")
    kept = f"the echo result of job {job} was not delivered: its client left before the answer's end; the job is kept"
    _until(lambda: any(kept in line for line in lines), "the log line of the answer left part-way", 10)
    whole = worker.result(job)[0]
    assert whole.data == np.concatenate([image, alpha[..., None]], axis=2).tobytes()
    meta = json.dumps({"inputs": [p.meta() for p in inputs], "options": {}})
    body = protocol.join_body(p.data for p in inputs)
    sync = f"POST /{protocol.API}/run/echo HTTP/1.1\r\n{protocol.META_HEADER}: {meta}\r\nContent-Length: {len(body)}"
    assert _leave_part_way(srv, sync, body).startswith(b"HTTP/1.0 200")
    lost = "was not delivered: its client left before the answer's end (a synchronous answer: the result is lost)"
    _until(lambda: any(lost in line for line in lines), "the log line of the synchronous answer", 10)
    assert worker.health()["ok"] and not srv.jobs.busy()
