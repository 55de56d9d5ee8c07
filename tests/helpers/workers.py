"""What the tests talk to a real worker on loopback with (tests/conftest.py's ``make_worker`` starts one): hand-made
HTTP requests and raw socket reads, operations declared for tests of the worker itself (echo, slow), a count of model
loads, and waits that fail with a reason instead of hanging."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from dataclasses import dataclass

import numpy as np

from mattekit import runtime
from mattekit.options import option
from mattekit.tasks.registry import Port, Task
from mattekit.wire import protocol
from mattekit.worker import operations


def count_loads(monkeypatch) -> list[str]:
    """The names of the models loaded from now on (one entry per Predictor made)."""
    loads = []

    class Counting(runtime.Predictor):
        def __init__(self, *args, **kwargs):
            loads.append(args[0].name)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(runtime, "Predictor", Counting)
    return loads


def raw(srv, method, path, body=b"", headers=None, token=True):
    """One hand-made request: (status, parsed JSON or raw bytes, headers)."""
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=30)
    head = {"Authorization": f"Bearer {srv.token}"} if token is True else ({"Authorization": token} if token else {})
    head.update(headers or {})
    conn.request(method, path, body=body, headers=head)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    if resp.getheader("Content-Type") == "application/json":
        data = json.loads(data)
    return resp.status, data, resp


def _in_threads(target, count: int) -> float:
    """Run ``target(k)`` for k in range(count) on as many threads at once; the seconds it took."""
    threads = [threading.Thread(target=target, args=(k,)) for k in range(count)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start


def meta_header(inputs, **options):
    return {protocol.META_HEADER: json.dumps({"inputs": inputs, "options": options})}


IDENTITY = {"white_balance": False, "contrast": False, "denoise": False}  # enhance that changes nothing


@dataclass
class NoOptions:
    pass


def _test_operation(name: str, inputs: tuple, run, options: type = NoOptions) -> operations.Operation:
    """A worker operation declared like a task, for tests of the worker itself (codec, jobs, queue)."""
    task = Task(
        name, "test", options, inputs, (Port("result", "image", (1, 2, 3, 4)),), prepare=None, finish=None, main=None
    )
    return operations.Operation(
        name,
        task.inputs,
        task.outputs,
        lambda values: task.make_options(values, "worker"),
        lambda *args, warn=None: (run(*args), None),
        lambda: task.describe("worker"),
    )


def _echo_operation() -> operations.Operation:
    """image (grey or RGB) + alpha -> RGBA, exactly: what the codec must carry both ways."""
    return _test_operation(
        "echo",
        (Port("image", "image", (3,)), Port("alpha", "alpha")),
        lambda models, inputs, options, progress: {
            "result": np.concatenate([inputs["image"], inputs["alpha"][..., None]], axis=2)
        },
    )


@dataclass
class SlowOptions:
    steps: int = option(300, "how many 10 ms steps", minimum=1, maximum=10000)


def _slow_operation(log: list, gate: threading.Event | None = None) -> operations.Operation:
    """An operation that copies its image in ``steps`` steps, reporting progress (where cancels land); with
    ``gate``, it waits after step 2 until the gate is set (a test cancels it there)."""

    def run(models, inputs, options, progress):
        log.append("start")
        for i in range(options.steps):
            progress((i + 1) / options.steps, f"step {i}")
            log.append(i)
            if gate is not None and i == 2:
                assert gate.wait(60), "the test never let the job go on"
            time.sleep(0.01)
        return {"result": inputs["image"]}

    return _test_operation("slow", (Port("image", "image", (3,)),), run, SlowOptions)


def _until(condition, what: str, limit: float = 60) -> None:
    """Wait for ``condition()``; fail naming ``what`` if it does not come within ``limit`` seconds (a hang)."""
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen"
        time.sleep(0.01)


def _answer(sock: socket.socket) -> bytes:
    """Everything the worker sends on a raw connection until it hangs up."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data
