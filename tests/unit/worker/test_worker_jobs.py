"""The local worker's jobs: asynchronous jobs, cancel, idle exit, shutdown, the serve command, the queue's cap, and
memory under load."""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from mattekit.wire import client
from mattekit.wire.client import Pixels, WorkerError
from mattekit.tasks.registry import Port
from mattekit.errors import MattekitError
from mattekit.wire import protocol
from mattekit.worker import jobs, request
from workers import IDENTITY, _answer, _in_threads, _slow_operation, _test_operation, meta_header, raw


# ---------------------------------------------------------------- asynchronous jobs, cancel, shutdown


def test_a_cancelled_job_stops(make_worker):
    """A job cancelled while it runs stops at its next step: held after step 2 until the cancel is in, it runs no
    step 3; a queued job cancelled never starts."""
    log, gate = [], threading.Event()
    srv, worker = make_worker(operations_table={"slow": _slow_operation(log, gate)})
    img = Pixels(bytes(3 * 4 * 4), 4, 4, 3, "u8")
    first = worker.submit("slow", [img])
    second = worker.submit("slow", [img])
    deadline = time.time() + 10
    while 2 not in log:  # the first job waits at its gate after step 2
        assert time.time() < deadline, "the first job never reached step 2"
        time.sleep(0.01)
    assert worker.job(first)["state"] == "running"
    assert worker.job(second)["state"] == "queued"
    assert worker.cancel(second)["state"] == "cancelled"  # a queued job never starts
    assert worker.cancel(first)["state"] == "running"  # it stops at its next step, then leaves the table
    gate.set()
    while first in [job["id"] for job in worker.get_json("jobs")["jobs"]]:
        assert time.time() < deadline, "the cancelled job never left the table"
        time.sleep(0.01)
    assert log == ["start", 0, 1, 2], "the job went on after it was cancelled"  # the second never started
    steps_run = len(log) - 1
    for job in (first, second):  # a cancelled (DELETEd) job is forgotten
        with pytest.raises(WorkerError) as err:
            worker.result(job)
        assert (err.value.status, err.value.code) == (404, "unknown_job")
    # the client's own cancel path
    with pytest.raises(WorkerError) as err:
        worker.run("slow", [img], progress=lambda f, m: None, cancelled=lambda: len(log) > steps_run + 20)
    assert (str(err.value), err.value.code) == ("The job was cancelled.", "cancelled")
    # a finished job's result is fetched once, then forgotten
    done = worker.submit("slow", [img], {"steps": 2})
    while worker.job(done)["state"] != "done":
        time.sleep(0.01)
    assert worker.result(done)[0].data == img.data
    deadline = time.time() + 10  # the job is dropped once its result has been sent
    with pytest.raises(WorkerError) as err:
        while time.time() < deadline:
            worker.job(done)
            time.sleep(0.01)
    assert err.value.status == 404


def test_failed_and_cancelled_jobs_are_forgotten_once_fetched_or_deleted(make_worker):
    """Failed and cancelled jobs leave the 64-job table once fetched or DELETEd, so new jobs are taken again, not
    answered 429."""

    def fail(models, inputs, options, progress):
        raise MattekitError("This test input cannot be used.")

    log = []
    srv, worker = make_worker(
        operations_table={
            "slow": _slow_operation(log),
            "fail": _test_operation("fail", (Port("image", "image", (3,)),), fail),
        }
    )
    img = Pixels(bytes(3 * 4 * 4), 4, 4, 3, "u8")
    failing = [worker.submit("fail", [img]) for _ in range(jobs.MAX_JOBS // 2)]
    deadline = time.time() + 30
    while any(worker.job(job)["state"] != "failed" for job in failing):
        assert time.time() < deadline
        time.sleep(0.05)
    slow = [worker.submit("slow", [img], {"steps": 10000}) for _ in range(jobs.MAX_JOBS - len(failing))]
    with pytest.raises(WorkerError) as err:
        worker.submit("slow", [img])
    assert (err.value.status, err.value.code) == (429, "too_many_jobs")  # the table is full
    for job in failing:  # the client fetches each job's error...
        with pytest.raises(WorkerError) as err:
            worker.result(job)
        assert (err.value.status, err.value.code) == (422, "task_failed")
    for job in slow:  # ... and cancels the others
        worker.cancel(job)
    new = worker.submit("slow", [img], {"steps": 1})  # accepted at once
    while [job["id"] for job in worker.get_json("jobs")["jobs"]] not in ([new], []):
        assert time.time() < deadline, "a fetched or cancelled job stayed in the table"
        time.sleep(0.01)


def test_idle_timeout_stops_the_worker(make_worker):
    srv, worker = make_worker(idle_timeout=0.6)
    worker.health()
    assert srv.stopped.wait(10), "the idle worker did not exit"
    assert not Path(srv.state_file).exists()
    with pytest.raises(WorkerError):
        worker.health(timeout=2)


def test_shutdown_finishes_the_running_job(make_worker):
    log = []
    srv, worker = make_worker(operations_table={"slow": _slow_operation(log)})
    img = Pixels(bytes(3 * 4 * 4), 4, 4, 3, "u8")
    results = []
    t = threading.Thread(target=lambda: results.append(worker.run("slow", [img], {"steps": 30})))
    t.start()
    while not log:
        time.sleep(0.01)
    worker.shutdown()
    t.join(10)
    assert results and results[0][0].data == img.data, "a running synchronous job is finished before exit"
    assert srv.stopped.wait(10) and not Path(srv.state_file).exists()


@pytest.mark.slow
def test_serve_command_reuses_a_running_worker_and_stops_on_sigterm(make_worker, tmp_path):
    import signal
    import subprocess

    srv, _ = make_worker()
    out = subprocess.run(
        [sys.executable, "-m", "mattekit", "serve", "--state-file", srv.state_file],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0 and "already answers" in out.stderr
    state = str(tmp_path / "own" / "worker.json")
    worker = client.start_worker(sys.executable, state, idle_timeout=60)
    pid = worker.health()["pid"]
    os.kill(pid, signal.SIGTERM)
    deadline = time.time() + 30
    log = Path(state).parent / "worker.log"
    while "worker stopped" not in log.read_text():
        assert time.time() < deadline, log.read_text()
        time.sleep(0.1)
    assert "stopping (signal SIGTERM)" in log.read_text() and not os.path.exists(state)


# ---------------------------------------------------------------- load: 8 clients x 200 requests


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="RSS is read from /proc (Linux)")
def test_load_8_clients_x_200_requests_with_flat_memory(tmp_path):
    state = str(tmp_path / "load" / "worker.json")
    worker = client.start_worker(sys.executable, state, idle_timeout=120, wait=120)
    pid = worker.health()["pid"]
    rgb = np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    alpha = np.random.default_rng(3).integers(0, 256, (64, 64, 1), dtype=np.uint8)
    inputs = [Pixels(np.concatenate([rgb, alpha], axis=2).tobytes(), 64, 64, 4, "u8")]
    expected = inputs[0].data
    try:
        for _ in range(50):  # warm up: imports, allocator pools, thread stacks
            worker.run("enhance", inputs, IDENTITY)
        before = _rss_kb(pid)
        failures, counts = [], [0] * 8

        def one_client(k):
            own = client.WorkerClient(worker.url, worker.token, timeout=60)
            for _ in range(200):
                try:
                    (out,) = own.run("enhance", inputs, IDENTITY)
                    if out.data != expected:
                        failures.append("wrong pixels")
                    counts[k] += 1
                except Exception as exc:
                    failures.append(repr(exc))

        elapsed = _in_threads(one_client, 8)
        after = _rss_kb(pid)
        print(
            f"worker load: 8 clients x 200 requests (64x64 RGBA u8, enhance with every step off) in {elapsed:.1f} s = "
            f"{1600 / elapsed:.0f} requests/s; worker RSS before {before / 1024:.1f} MiB, after {after / 1024:.1f} MiB "
            f"({(after - before) / 1024:+.1f} MiB)"
        )
        assert not failures, failures[:3]
        assert sum(counts) == 1600
        assert after - before < 32 * 1024, "worker memory grew under load"
    finally:
        worker.shutdown()


# ---------------------------------------------------------------- the queue's cap


def test_a_full_queue_answers_503_with_retry_after(make_worker):
    log = []
    srv, worker = make_worker(operations_table={"slow": _slow_operation(log)}, max_queued=1 << 20)
    big = Pixels(bytes(3 * 256 * 256), 256, 256, 3, "u8")  # 768 KiB of u8, 3 MiB as float32 in the queue
    first = worker.submit("slow", [big], {"steps": 1000})
    with pytest.raises(WorkerError) as err:
        worker.submit("slow", [big], {"steps": 1})
    assert (err.value.status, err.value.code) == (503, "queue_full")
    status, answer, resp = raw(srv, "POST", "/v1/run/slow", big.data, meta_header([big.meta()]))
    assert status == 503 and resp.getheader("Retry-After") == "5"
    worker.cancel(first)
    deadline = time.time() + 10
    while srv.jobs.busy():
        assert time.time() < deadline
        time.sleep(0.01)
    assert worker.run("slow", [big], {"steps": 1})[0].data == big.data, "the queue takes work again once drained"


def test_the_queue_cap_counts_requests_whose_bodies_are_still_coming(make_worker, monkeypatch):
    """Admission counts requests whose bodies are still coming, so concurrent requests cannot all read and decode
    past the queue cap."""
    monkeypatch.setattr(request, "BODY_SECONDS", 60.0, raising=False)
    copy = _test_operation(
        "copy", (Port("image", "image", (3, 4)),), lambda models, inputs, options, progress: {"result": inputs["image"]}
    )
    srv, _ = make_worker(operations_table={"copy": copy}, max_queued=1 << 20)
    side = 160
    reserved = side * side * 4 * 4  # float32 bytes of one request's 160 x 160 RGBA: two fit in 1 MiB, not three
    meta = {"inputs": [{"width": side, "height": side, "channels": 4, "dtype": "u8"}]}
    head = (
        f"POST /v1/run/copy HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\nAuthorization: Bearer {srv.token}\r\n"
        f"{protocol.META_HEADER}: {json.dumps(meta)}\r\nContent-Length: {side * side * 4}\r\n\r\n"
    ).encode()
    socks = [socket.create_connection((srv.host, srv.port), timeout=30) for _ in range(6)]
    for sock in socks:
        sock.sendall(head)  # every body held back: the reservations are taken on the headers alone
    deadline = time.time() + 20
    while srv.jobs.queued_bytes != 2 * reserved:
        assert srv.jobs.queued_bytes <= 1 << 20 and time.time() < deadline, srv.jobs.queued_bytes
        time.sleep(0.01)
    time.sleep(0.2)
    assert srv.jobs.queued_bytes == 2 * reserved, "over-admitted"
    body = bytes(range(256)) * (side * side * 4 // 256)
    for sock in socks:
        sock.sendall(body)
    answers = [_answer(sock) for sock in socks]
    for sock in socks:
        sock.close()
    assert sorted(answer[9:12] for answer in answers) == [b"200"] * 2 + [b"503"] * 4
    assert all(answer.endswith(body) for answer in answers if answer[9:12] == b"200")
    error = json.loads(next(a for a in answers if a[9:12] == b"503").partition(b"\r\n\r\n")[2])["error"]
    assert error["code"] == "queue_full" and error["message"].count(". ") == 0 and error["message"].endswith(".")
    assert srv.jobs.queued_bytes == 0, "every reservation ends with its request"
