"""Issue 28, finding 8: a synchronous job (POST /v1/run/OP) whose client hangs up is cancelled, and the handler
thread that waited for it is free again, instead of the job running on and holding the thread."""
from __future__ import annotations

import json
import socket
import time

from mattekit.worker import protocol
from test_server import _slow_operation, make_worker  # noqa: F401 - make_worker is a fixture

IMAGE = {"width": 4, "height": 4, "channels": 3, "dtype": "u8"}
STEPS = 10000  # 10 ms each: about 100 s unless cancelled


def _hang_up_after_sending(srv, steps: int = STEPS) -> None:
    """Send a whole synchronous request for the slow operation on a raw socket, and close it without reading."""
    meta = json.dumps({"inputs": [IMAGE], "options": {"steps": steps}})
    body = bytes(4 * 4 * 3)
    with socket.create_connection((srv.host, srv.port)) as sock:
        sock.sendall((f"POST /{protocol.API}/run/slow HTTP/1.1\r\nHost: {srv.host}:{srv.port}\r\n"
                      f"Authorization: Bearer {srv.token}\r\n{protocol.META_HEADER}: {meta}\r\n"
                      f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
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
