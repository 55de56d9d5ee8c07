"""A busy worker is not a dead one: its health check is answered by a thread no job can take, it says how many jobs
are queued, and a client waits for a busy worker instead of starting a second one (which would fail its lock)."""

from __future__ import annotations

import socket
import threading

import pytest

from mattekit.wire import client
from mattekit.wire.client import Pixels, WorkerError
from mattekit.worker import connections, state
from workers import _slow_operation, _until

RUNS = 12  # synchronous runs at once: more than the handler threads
IMAGE = Pixels(bytes(range(48)), 4, 4, 3, "u8")


def _hold_runs(srv, worker) -> tuple[list, list]:
    """Start RUNS synchronous runs of "slow" on threads; return (results, errors) once all of them are in the
    worker: one job at its gate, the others queued, every handler thread waiting on one, the rest waiting for one."""
    results, errors = [], []

    def run():
        try:
            results.append(worker.run("slow", [IMAGE], {"steps": 4})[0].data)
        except Exception as exc:  # pragma: no cover - reported by the test
            errors.append(exc)

    for _ in range(RUNS):
        threading.Thread(target=run, daemon=True).start()
    _until(
        lambda: (
            srv.jobs.counts() == (1, connections.POOL_SIZE - 1)
            and srv.httpd.ready.qsize() == RUNS - connections.POOL_SIZE
        ),
        "every run reaching the worker",
    )
    return results, errors


def test_health_answers_while_every_handler_thread_waits_on_a_run(make_worker):
    """12 synchronous runs held in flight (8 handler threads waiting on them, 4 requests waiting for a handler):
    every health poll is answered with its body, counting 1 running and 11 queued; a client that asks for a run
    meanwhile is told the worker is busy before its job is in; all 13 runs then finish with their pixels."""
    log, gate = [], threading.Event()
    srv, worker = make_worker(operations_table={"slow": _slow_operation(log, gate)})
    results, errors = _hold_runs(srv, worker)
    try:
        for _ in range(20):
            health = worker.health(timeout=10)  # (no handler thread is free: only the health thread can answer)
            assert health["ok"] and health["jobs"] == {"running": 1, "queued": RUNS - 1}, health
        said = []
        late = threading.Thread(
            target=lambda: results.append(
                worker.run("slow", [IMAGE], {"steps": 4}, progress=lambda f, m: said.append(m))[0].data
            ),
            daemon=True,
        )
        late.start()
        _until(lambda: said, "the late client's first word")
        assert said[0] == f"The mattekit worker is busy, {RUNS} jobs queued before this one; it waits its turn."
    finally:
        gate.set()
    late.join(60)
    _until(lambda: len(results) + len(errors) == RUNS + 1, "every run finishing")
    assert not errors and results == [IMAGE.data] * (RUNS + 1), errors
    assert worker.health()["jobs"] == {"running": 0, "queued": 0}


def test_a_queued_jobs_status_says_how_many_jobs_are_before_it(make_worker):
    """An asynchronous job behind others: its status has "ahead" and says so in words; running, it has neither."""
    log, gate = [], threading.Event()
    srv, worker = make_worker(operations_table={"slow": _slow_operation(log, gate)})
    first, second, third = (worker.submit("slow", [IMAGE], {"steps": 4}) for _ in range(3))
    try:
        _until(lambda: 2 in log, "the first job reaching its gate")
        assert worker.job(first)["state"] == "running" and "ahead" not in worker.job(first)
        status = worker.job(third)
        assert (status["state"], status["ahead"]) == ("queued", 2), status
        assert status["message"] == "Waiting: the worker is busy, 2 jobs before this one", status
        assert worker.job(second)["message"] == "Waiting: the worker is busy, 1 job before this one"
    finally:
        gate.set()
    for job in (first, second, third):
        _until(lambda: worker.job(job)["state"] == "done", "the job finishing")
        assert worker.result(job)[0].data == IMAGE.data


def test_a_client_uses_a_busy_worker_and_starts_no_second_one(make_worker, tmp_path):
    """connect() with every handler thread of the worker taken: it gets that worker (the interpreter it was given
    does not exist, so starting one would fail) and learns it is busy."""
    log, gate = [], threading.Event()
    srv, worker = make_worker(operations_table={"slow": _slow_operation(log, gate)})
    results, errors = _hold_runs(srv, worker)
    try:
        found = client.connect(python=str(tmp_path / "no-python"), path=srv.state_file)
        assert found.url == srv.url and found.busy() == (
            f"The mattekit worker is busy, {RUNS} jobs queued before this one; it waits its turn."
        )
    finally:
        gate.set()
    _until(lambda: len(results) + len(errors) == RUNS, "every run finishing")
    assert not errors and found.busy() == ""


@pytest.mark.slow  # over 3 s on a 2-core machine: the full suite runs it
def test_a_live_worker_that_does_not_answer_is_waited_for_never_doubled(tmp_path):
    """A worker alive (it holds its lock) that does not answer (an older worker, or one stuck): connect() waits,
    then says so in one sentence instead of starting a second worker; once its lock is free, a new one is started
    (here: refused for want of an interpreter, which shows that it was tried)."""
    path = str(tmp_path / "state" / "worker.json")
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections into its backlog, answers nothing
    lock = state.OwnerLock(path).acquire()
    state.write(
        path, {"url": "http://127.0.0.1:%d" % silent.getsockname()[1], "token": "t", "pid": 4242, "version": "0"}
    )
    try:
        assert client.worker_alive(path)
        with pytest.raises(WorkerError) as err:
            client.connect(python=str(tmp_path / "no-python"), path=path, wait=3)
        assert str(err.value) == (
            f"The mattekit worker (process 4242) is running but has not answered for 3 s; it may be "
            f"stuck: see its log {tmp_path / 'state' / 'worker.log'}, or end that process."
        )
    finally:
        lock.release()
        silent.close()
    assert not client.worker_alive(path)
    with pytest.raises(WorkerError, match="No Python interpreter for the mattekit worker"):
        client.connect(python=str(tmp_path / "no-python"), path=path, wait=3)
