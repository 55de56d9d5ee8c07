"""The local worker (mattekit.worker): token, pixels in and out, errors, jobs, cancel, idle exit, load."""
from __future__ import annotations

import http.client
import json
import os
import select
import socket
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mattekit import catalog, runtime
from mattekit.wire import client
from mattekit.wire.client import Pixels, WorkerError
from mattekit.options import option
from mattekit.tasks.registry import Port, Task
from mattekit.errors import MattekitError
from mattekit.wire import protocol
from mattekit.worker import connections, jobs, operations, request, service
from mattekit.worker.log import WorkerLog


@pytest.fixture
def make_worker(tmp_path):
    """make_worker(**kwargs) -> (WorkerServer, client.Worker), served in this process, stopped afterwards."""
    made = []

    def make(**kwargs):
        kwargs.setdefault("state_file", str(tmp_path / f"state{len(made)}" / "worker.json"))
        kwargs.setdefault("idle_timeout", None)
        kwargs.setdefault("log", lambda text: None)
        kwargs.setdefault("threads", 1)  # one torch thread: steady timings on a busy 2-core CI machine
        srv = service.WorkerServer(**kwargs).start_background()
        made.append(srv)
        return srv, client.Worker(srv.url, srv.token, timeout=120)

    yield make
    for srv in made:
        srv.stop(wait=True)


def count_loads(monkeypatch) -> list[str]:
    """The names of the models loaded from now on (one entry per Predictor made)."""
    loads = []

    class Counting(runtime.Predictor):
        def __init__(self, *args, **kwargs):
            loads.append(args[0].name)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(runtime, "Predictor", Counting)
    return loads


@pytest.fixture
def mirror(shared, monkeypatch):
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    monkeypatch.setenv("MATTEKIT_OFFLINE", "1")


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
    task = Task(name, "test", options, inputs, (Port("result", "image", (1, 2, 3, 4)),), prepare=None, finish=None,
                main=None)
    return operations.Operation(name, task.inputs, task.outputs, lambda values: task.make_options(values, "worker"),
                                lambda *args, warn=None: (run(*args), None), lambda: task.describe("worker"))


def _echo_operation() -> operations.Operation:
    """image (grey or RGB) + alpha -> RGBA, exactly: what the codec must carry both ways."""
    return _test_operation("echo", (Port("image", "image", (3,)), Port("alpha", "alpha")),
                           lambda models, inputs, options, progress: {
                               "result": np.concatenate([inputs["image"], inputs["alpha"][..., None]], axis=2)})


# ---------------------------------------------------------------- security and the state file

def test_state_file_is_private_and_describes_the_worker(make_worker):
    srv, worker = make_worker()
    path = Path(srv.state_file)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    state = json.loads(path.read_text())
    assert state["url"] == srv.url and state["token"] == srv.token and state["pid"] == os.getpid()
    assert srv.host == "127.0.0.1" and srv.url.startswith("http://127.0.0.1:")
    health = worker.health()
    assert health["ok"] and health["version"] and health["api"] == protocol.API_VERSION
    assert {"remove", "matte", "upscale", "bokeh", "enhance", "roto"} <= set(health["operations"])
    srv.stop(wait=True)
    assert not path.exists(), "a stopped worker must remove its state file"


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX modes")
def test_the_worker_makes_an_existing_mattekit_home_private(make_worker, monkeypatch, tmp_path):
    """The worker makes an existing MATTEKIT_HOME (0755 here) 0700 and its stale worker.json 0600."""
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o755)
    monkeypatch.setenv("MATTEKIT_HOME", str(home))
    (home / "worker.json").write_text("{}")  # a stale record, readable by all
    (home / "worker.json").chmod(0o644)
    srv, worker = make_worker(state_file=client.state_path())
    assert srv.state_file == str(home / "worker.json")
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "worker.json").stat().st_mode) == 0o600
    assert client.connect(path=srv.state_file, start=False).health()["ok"]


@pytest.mark.parametrize("token", [None, "Bearer wrong-token", "Basic abc", "Bearer "])
def test_requests_without_the_right_token_are_refused(make_worker, token):
    srv, _ = make_worker()
    for method, path in (("GET", "/v1/health"), ("GET", "/v1/models"), ("POST", "/v1/shutdown"),
                         ("POST", "/v1/run/remove"), ("GET", "/nothing")):
        status, body, resp = raw(srv, method, path, body=b"x" * 10, token=token)
        assert status == 401, (method, path)
        assert body["error"]["code"] == "unauthorised"
        assert resp.getheader("WWW-Authenticate", "").startswith("Bearer")
    assert not srv.stopping.is_set()
    with pytest.raises(WorkerError) as err:
        client.Worker(srv.url, "not-the-token").health()
    assert err.value.status == 401


# ---------------------------------------------------------------- pixels in and out

def _rgb_alpha(h=5, w=7):
    rng = np.random.default_rng(1)
    return rng.random((h, w, 3), dtype=np.float32), rng.random((h, w), dtype=np.float32)


@pytest.mark.parametrize("dtype", ["u8", "u16", "f32"])
def test_pixels_round_trip_in_every_dtype(make_worker, dtype):
    srv, worker = make_worker(operations_table={"echo": _echo_operation()})
    rgb, alpha = _rgb_alpha()
    np_dtype, scale = {"u8": (np.uint8, 255), "u16": (np.uint16, 65535), "f32": (np.float32, 1)}[dtype]
    to = (lambda a: np.rint(a * scale).astype(np_dtype)) if scale != 1 else (lambda a: a.astype(np.float32))
    rgb_q, alpha_q = to(rgb), to(alpha)
    out, = worker.run("echo", [Pixels(rgb_q.tobytes(), 7, 5, 3, dtype), Pixels(alpha_q.tobytes(), 7, 5, 1, dtype)])
    assert (out.width, out.height, out.channels, out.dtype) == (7, 5, 4, dtype)
    got = np.frombuffer(out.data, np_dtype).reshape(5, 7, 4)
    assert np.array_equal(got[..., :3], rgb_q) and np.array_equal(got[..., 3], alpha_q)


def test_output_dtype_grey_inputs_and_named_inputs(make_worker):
    srv, worker = make_worker(operations_table={"echo": _echo_operation()})
    grey = np.array([[0, 128, 255]], np.uint8)
    alpha = np.array([[255, 255, 0]], np.uint8)
    head = {protocol.META_HEADER: json.dumps({"inputs": [{"width": 3, "height": 1, "channels": 1, "dtype": "u8"}] * 2,
                                               "output_dtype": "f32"})}
    status, data, resp = raw(srv, "POST", "/v1/run/echo", grey.tobytes() + alpha.tobytes(), head)
    assert status == 200
    meta = json.loads(resp.getheader(protocol.META_HEADER))["outputs"][0]
    assert meta == {"name": "result", "width": 3, "height": 1, "channels": 4, "dtype": "f32"}
    got = np.frombuffer(data, "<f4").reshape(1, 3, 4)
    assert np.allclose(got[0, :, :3], (grey[0] / 255.0)[:, None]) and np.allclose(got[0, :, 3], alpha[0] / 255.0)
    # inputs named by port, in any order
    named, = worker.run("echo", {"alpha": Pixels(alpha.tobytes(), 3, 1, 1), "image": Pixels(grey.tobytes(), 3, 1, 1)})
    assert np.frombuffer(named.data, np.uint8).reshape(1, 3, 4)[0, :, 3].tolist() == [255, 255, 0]


# ---------------------------------------------------------------- malformed requests

def test_malformed_requests_get_clear_4xx_json(make_worker):
    srv, _ = make_worker(max_request=4096)
    one = [{"width": 2, "height": 2, "channels": 3, "dtype": "u8"}, {"width": 2, "height": 2, "channels": 1, "dtype": "u8"}]
    body = bytes(12 + 4)
    cases = [
        ("POST", "/v1/run/matte", body, {}, 400, "bad_meta"),  # no meta header
        ("POST", "/v1/run/matte", body, {protocol.META_HEADER: "{not json"}, 400, "bad_meta"),
        ("POST", "/v1/run/matte", body, {protocol.META_HEADER: "[1, 2]"}, 400, "bad_meta"),
        ("POST", "/v1/run/matte", body[:-1], meta_header(one), 400, "bad_body"),
        ("POST", "/v1/run/matte", body + b"x", meta_header(one), 400, "bad_body"),
        ("POST", "/v1/run/matte", b"", meta_header([]), 400, "bad_meta"),
        ("POST", "/v1/run/matte", body, meta_header([dict(one[0], name="image"), dict(one[1], name="halo")]), 400, "bad_meta"),
        ("POST", "/v1/run/matte", body, meta_header([dict(one[0], name="image"), dict(one[1], name="image")]), 400, "bad_meta"),
        ("POST", "/v1/run/matte", body, meta_header([dict(one[1], name="mask"), dict(one[0], name="backdrop")]), 400, "bad_meta"),
        ("POST", "/v1/run/matte", body, meta_header([dict(one[0], dtype="u32"), one[1]]), 400, "bad_meta"),
        ("POST", "/v1/run/matte", body, meta_header([dict(one[0], dtype=["u8"]), one[1]]), 400, "bad_meta"),  # was 500
        ("POST", "/v1/run/matte", body, meta_header([dict(one[0], name=["image"]), one[1]]), 400, "bad_meta"),  # was 500
        ("POST", "/v1/run/matte", body, meta_header([dict(one[0], width=-2), one[1]]), 400, "bad_meta"),
        ("POST", "/v1/run/matte", bytes(24), meta_header([one[0], dict(one[1], channels=3)]), 400, "bad_meta"),
        ("POST", "/v1/run/matte", body, meta_header(one, output="alpha"), 400, "bad_option"),
        ("POST", "/v1/run/matte", body, meta_header(one, result="jpeg"), 400, "bad_option"),
        ("POST", "/v1/run/matte", body, meta_header(one, crop="wide"), 400, "bad_option"),
        ("POST", "/v1/run/matte", body, {protocol.META_HEADER: json.dumps({"inputs": one, "output_dtype": ["u8"]})},
         400, "bad_meta"),
        ("POST", "/v1/run/matte", body, {protocol.META_HEADER: json.dumps({"inputs": {"a": 1}})}, 400, "bad_meta"),
        ("POST", "/v1/run/nothing", body, meta_header(one), 404, "unknown_operation"),
        ("POST", "/v1/run/matte", bytes(5000), meta_header(one), 413, "too_large"),
        ("GET", "/v1/jobs/0123", b"", {}, 404, "unknown_job"),
        ("GET", "/v2/health", b"", {}, 404, "not_found"),
        ("DELETE", "/v1/health", b"", {}, 405, "method_not_allowed"),
        ("PUT", "/v1/run/matte", body, meta_header(one), 405, "method_not_allowed"),
    ]
    cases += [  # the standard library's own refusals, as JSON too (they were HTML pages)
        ("PATCH", "/v1/health", b"", {}, 501, "unsupported_method"),
        ("GET", "/v1/health", b"", {f"X-Filler-{i}": "x" * 60 for i in range(120)}, 431, "headers_too_large"),
    ]
    for method, path, data, headers, status, code in cases:
        got, answer, _ = raw(srv, method, path, data, headers)
        assert isinstance(answer, dict), (method, path, answer[:200])
        assert (got, answer["error"]["code"]) == (status, code), (path, headers, answer)
        assert answer["error"]["message"].endswith(".")
    # a body far beyond the limit is refused from its Content-Length alone, before it is read
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
    conn.putrequest("POST", "/v1/run/matte")
    conn.putheader("Authorization", f"Bearer {srv.token}")
    conn.putheader("Content-Length", str(1 << 40))
    conn.endheaders()
    resp = conn.getresponse()
    assert resp.status == 413 and json.loads(resp.read())["error"]["code"] == "too_large"
    conn.close()
    # no Content-Length at all
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
    conn.putrequest("POST", "/v1/run/matte")
    conn.putheader("Authorization", f"Bearer {srv.token}")
    conn.putheader(protocol.META_HEADER, json.dumps({"inputs": one}))
    conn.endheaders()
    assert conn.getresponse().status == 411
    conn.close()
    # after all that the worker still serves
    assert raw(srv, "GET", "/v1/health")[0] == 200


def test_an_option_the_task_refuses_is_one_sentence_with_400(make_worker, mirror):
    """An unknown model and a colour that is none are refused at the option check, before any model loads;
    an error found while the task runs is a 422 (test_remove_takes_a_box_or_a_hint_mask...)."""
    _, worker = make_worker()
    img = Pixels(bytes(16 * 16 * 3), 16, 16, 3, "u8")
    with pytest.raises(WorkerError) as err:
        worker.run("remove", [img], {"model": "no-such-model"})
    assert err.value.status == 400 and "Unknown model 'no-such-model'" in str(err.value)
    edge = Pixels(bytes(128) + bytes([255]) * 128, 16, 16, 1, "u8")
    with pytest.raises(WorkerError) as err:
        worker.run("matte", {"image": img, "mask": edge}, {"result": "composite", "background": "mauve-ish"})
    assert err.value.status == 400 and "mauve-ish" in str(err.value) and str(err.value).count(". ") == 0


# ---------------------------------------------------------------- real models through the worker

def _iou(alpha: np.ndarray, gt: np.ndarray) -> float:
    valid = gt != 128
    pred, truth = alpha >= 0.5, gt > 128
    return float((pred & truth & valid).sum() / max(((pred | truth) & valid).sum(), 1))


def _person1(shared) -> tuple[np.ndarray, np.ndarray, Pixels]:
    """grabcut50's person1: (RGB uint8 H x W x 3, its 0/128/255 mask, the photo as worker pixels)."""
    photo = np.asarray(Image.open(shared / "data/grabcut50/im/person1.jpg").convert("RGB"))
    gt = np.asarray(Image.open(shared / "data/grabcut50/gt/person1.png").convert("L"))
    return photo, gt, Pixels(photo.tobytes(), photo.shape[1], photo.shape[0], 3, "u8")


def test_remove_cuts_out_a_real_portrait_sync_and_async_alike(make_worker, mirror, shared):
    _, worker = make_worker()
    photo, gt, pixels = _person1(shared)
    h, w = photo.shape[:2]
    options = {"model": "sinet-portrait", "result": "alpha"}
    sync, = worker.run("remove", [pixels], options)
    seen = []
    asyn, = worker.run("remove", [pixels], options, progress=lambda f, m: seen.append((f, m)))
    assert sync.data == asyn.data, "the same request must give the same bytes"
    assert seen and seen[-1][0] == 1.0
    for output in (sync, asyn):  # the worker says what made its outputs (the X-Mattekit-Meta answer header)
        record = output.provenance
        assert record["task"] == "remove" and record["options"] == options
        assert record["models"] == [{"option": "model", "name": "sinet-portrait", "weights": "SINet.pth",
                                     "sha256": catalog.load().get("sinet-portrait").weights.sha256, "derived": False}]
    alpha = np.frombuffer(sync.data, np.uint8).reshape(h, w) / 255.0
    iou = _iou(alpha, gt)
    print(f"worker remove person1 sinet-portrait IoU {iou:.4f}")
    assert iou > 0.9


def test_a_fully_transparent_result_carries_a_warning_in_the_answer(make_worker, mirror, shared):
    """The answer's X-Mattekit-Meta holds "warnings" (one sentence each, the options named as the
    worker names them) when the subject came out empty, as the CLI's warning line; none otherwise."""
    _, worker = make_worker()
    _, _, pixels = _person1(shared)
    empty, = worker.run("remove", [pixels], {"model": "sinet-portrait", "box": "0,0,40,40", "hint_model": "none",
                                              "result": "alpha"})
    assert not any(empty.data)
    assert empty.warnings == ["the result is fully transparent (no subject was found in the box); try option 'point' "
                              "on the subject inside the box, or option 'model' with another model, or option "
                              "'hint_model' at its default (SAM 2.1 answers a box)."]
    person, = worker.run("remove", [pixels], {"model": "sinet-portrait", "result": "alpha"})
    assert any(person.data) and person.warnings == []


def test_one_model_load_for_many_concurrent_clients(make_worker, mirror, monkeypatch):
    loads = count_loads(monkeypatch)
    _, worker = make_worker()
    img = Pixels(np.full((24, 24, 3), 128, np.uint8).tobytes(), 24, 24, 3, "u8")
    results, errors = [], []

    def one():
        try:
            results.append(worker.run("remove", [img], {"model": "extremec3-portrait"})[0].data)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    _in_threads(lambda k: one(), 8)
    assert not errors and len(results) == 8 and len(set(results)) == 1
    assert loads == ["extremec3-portrait"]
    assert next(m for m in worker.models() if m["name"] == "extremec3-portrait")["loaded"]


def test_upscale_operation(make_worker, mirror):
    _, worker = make_worker()
    rgba = np.random.default_rng(0).integers(0, 256, (20, 18, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    seen = []
    out, = worker.run("upscale", [Pixels(rgba.tobytes(), 18, 20, 4, "u8")], {"model": "rfdn-x4", "scale": 2.0},
                      progress=lambda f, m: seen.append(m))
    assert (out.width, out.height, out.channels, out.dtype) == (36, 40, 4, "u8")
    assert np.all(np.frombuffer(out.data, np.uint8).reshape(40, 36, 4)[..., 3] == 255)
    assert seen and seen[-1] == "Done"


def test_bokeh_operation_keeps_the_given_subject_sharp(make_worker):
    _, worker = make_worker()
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    subject = np.zeros((48, 64), np.uint8)
    subject[12:36, 16:48] = 255
    out, = worker.run("bokeh", [Pixels(img.tobytes(), 64, 48, 3, "u8"), Pixels(subject.tobytes(), 64, 48, 1, "u8")],
                      {"mask_only": True, "strength": 4.0})
    got = np.frombuffer(out.data, np.uint8).reshape(48, 64, 3).astype(int)
    inner, outer = (slice(16, 32), slice(20, 44)), (slice(0, 6), slice(0, 64))
    assert np.abs(got[inner] - img[inner]).mean() < 3  # the subject stays sharp
    assert got[outer].std() < img[outer].std() * 0.8  # the background is blurred


def _u8(array: np.ndarray, h: int, w: int, c: int) -> Pixels:
    return Pixels(np.ascontiguousarray(array, np.uint8).tobytes(), w, h, c, "u8")


def test_matte_refines_a_coarse_mask_towards_the_true_alpha(make_worker, shared):
    """Refine Edges on a real photo: a blocky mask (the true alpha thresholded, 1/16 size, upsampled)
    must come back much closer to the ground-truth alpha; output=rgba carries the same alpha."""
    _, worker = make_worker()
    root = shared / "data/alphamatting"
    photo = np.asarray(Image.open(root / "im/GT05.png").convert("RGB"))
    gt = np.asarray(Image.open(root / "gt/GT05.png").convert("L")) / 255.0
    h, w = gt.shape
    binary = Image.fromarray(((gt >= 0.5) * 255).astype(np.uint8))
    coarse = np.asarray(binary.resize((w // 16, h // 16), Image.BOX).resize((w, h), Image.BILINEAR))
    inputs = {"image": _u8(photo, h, w, 3), "mask": _u8(coarse, h, w, 1)}
    out, = worker.run("matte", inputs, {"result": "alpha"})
    assert (out.width, out.height, out.channels, out.dtype) == (w, h, 1, "u8")
    alpha = np.frombuffer(out.data, np.uint8).reshape(h, w) / 255.0
    before, after = np.abs(coarse / 255.0 - gt).mean(), np.abs(alpha - gt).mean()
    print(f"worker matte GT05 {w}x{h}: alpha MAE coarse mask {before:.4f} -> refined {after:.4f}")
    assert after < 0.5 * before
    seen = []
    rgba, = worker.run("matte", inputs, {"result": "rgba"}, progress=lambda f, m: seen.append(f))
    assert (rgba.width, rgba.height, rgba.channels) == (w, h, 4) and seen[-1] == 1.0
    rgba = np.frombuffer(rgba.data, np.uint8).reshape(h, w, 4)
    assert np.array_equal(rgba[..., 3], np.rint(alpha * 255)), "the cut-out carries the refined alpha"
    soft = (alpha > 0.05) & (alpha < 0.95)
    assert np.abs(rgba[..., :3][soft].astype(int) - photo[soft]).mean() > 1, "colours are decontaminated"


def test_matte_refuses_masks_it_cannot_refine_in_one_sentence(make_worker):
    srv, worker = make_worker()
    image = _u8(np.zeros((48, 64, 3)), 48, 64, 3)
    with pytest.raises(WorkerError) as err:
        worker.run("matte", {"image": image, "mask": _u8(np.zeros((30, 40)), 30, 40, 1)})
    assert (err.value.status, err.value.code) == (400, "bad_meta")
    assert str(err.value) == ("Input 'mask' is 40 x 30 pixels but 'image' is 64 x 48; "
                              "all inputs of one request must have the same size.")
    for value, missing in ((0, "white (subject)"), (255, "black (background)"), (128, "white (subject) or black")):
        with pytest.raises(WorkerError) as err:
            worker.run("matte", {"image": image, "mask": _u8(np.full((48, 64), value), 48, 64, 1)})
        assert err.value.status == 422 and str(err.value).startswith("The mask has no edge to refine")
        assert f"it has no {missing}" in str(err.value) and str(err.value).count(".") == 1
    edge = np.zeros((48, 64))
    edge[:, 32:] = 255
    for options in ({"band": -1}, {"iterations": 0}, {"result": "trimap"}):
        with pytest.raises(WorkerError) as err:
            worker.run("matte", {"image": image, "mask": _u8(edge, 48, 64, 1)}, options)
        assert (err.value.status, err.value.code) == (400, "bad_option"), options
    assert raw(srv, "GET", "/v1/health")[0] == 200


# ---------------------------------------------------------------- asynchronous jobs, cancel, shutdown

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
    srv, worker = make_worker(operations_table={"slow": _slow_operation(log),
                                                "fail": _test_operation("fail", (Port("image", "image", (3,)),), fail)})
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
    out = subprocess.run([sys.executable, "-m", "mattekit", "serve", "--state-file", srv.state_file],
                         capture_output=True, text=True, timeout=120)
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
            own = client.Worker(worker.url, worker.token, timeout=60)
            for _ in range(200):
                try:
                    out, = own.run("enhance", inputs, IDENTITY)
                    if out.data != expected:
                        failures.append("wrong pixels")
                    counts[k] += 1
                except Exception as exc:
                    failures.append(repr(exc))

        elapsed = _in_threads(one_client, 8)
        after = _rss_kb(pid)
        print(f"worker load: 8 clients x 200 requests (64x64 RGBA u8, enhance with every step off) in {elapsed:.1f} s = "
              f"{1600 / elapsed:.0f} requests/s; worker RSS before {before / 1024:.1f} MiB, after {after / 1024:.1f} MiB "
              f"({(after - before) / 1024:+.1f} MiB)")
        assert not failures, failures[:3]
        assert sum(counts) == 1600
        assert after - before < 32 * 1024, "worker memory grew under load"
    finally:
        worker.shutdown()


# ---------------------------------------------------------------- hardening: connections, callers, options, paths

def _with_host(srv, host, extra=None):
    """(status, error code) of GET /v1/health sent with this Host header (None: no Host header at all)."""
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=30)
    conn.putrequest("GET", "/v1/health", skip_host=True)
    if host is not None:
        conn.putheader("Host", host)
    for key, value in {"Authorization": f"Bearer {srv.token}", **(extra or {})}.items():
        conn.putheader(key, value)
    conn.endheaders()
    resp = conn.getresponse()
    body = json.loads(resp.read())
    conn.close()
    return resp.status, body.get("error", {}).get("code")


def test_only_loopback_host_headers_and_no_browsers(make_worker):
    srv, _ = make_worker()
    port = srv.port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}", f"[::1]:{port}"):
        assert _with_host(srv, host) == (200, None), host
    for host in (f"evil.example:{port}", "127.0.0.1", f"127.0.0.1:{port + 1}", f"localhost.evil.example:{port}",
                 f"127.0.0.2:{port}", "", None):
        assert _with_host(srv, host) == (403, "bad_host"), host
    for header in ({"Origin": "http://evil.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}):
        assert _with_host(srv, f"127.0.0.1:{port}", header) == (403, "browser_refused"), header
    assert raw(srv, "GET", "/v1/health")[0] == 200


def _image_request(op: dict, side: int = 8) -> tuple[list, bytes]:
    """Metas and zero bytes for every required input of an operation's schema (u8)."""
    metas = [{"width": side, "height": side, "channels": max(p["channels"]), "dtype": "u8"}
             for p in op["inputs"] if not p["optional"]]
    return metas, bytes(sum(m["width"] * m["height"] * m["channels"] for m in metas))


def _bad_values(spec: dict) -> list:
    """Values that the option's declaration must refuse."""
    wrong_type = {"bool": [1, "yes", None if not spec["nullable"] else []], "int": [1.5, "3", True, [1]],
                  "float": ["1.0", True, {"a": 1}], "str": [3, ["a"], "x" * 5000]}[spec["type"]]
    bad = [v for v in wrong_type if not (v is None and spec["nullable"])]
    if spec["type"] in ("int", "float"):
        bad += [float("nan"), float("inf"), float("-inf")] if spec["type"] == "float" else [10 ** 30 if "maximum" in spec else 0.5]
        if "minimum" in spec:
            bad.append(spec["minimum"] - 1)
        if "maximum" in spec:
            bad.append(spec["maximum"] + 1)
    if "choices" in spec:
        bad.append("no-such-choice" if spec["type"] == "str" else 12345)
    return bad


def test_every_bad_option_of_every_operation_is_a_400(make_worker, tmp_path):
    srv, worker = make_worker(allow_dirs=[str(tmp_path)])
    schema = worker.schema()
    assert {op["name"] for op in schema["operations"]} == set(srv.operations)
    assert "segment" in schema["models"] and all({"name", "description", "licence", "default", "cached"} <= set(m)
                                                  for models in schema["models"].values() for m in models)
    count = 0
    for op in schema["operations"]:
        metas, body = _image_request(op)
        for name, spec in op["options"].items():
            for value in _bad_values(spec):
                head = {protocol.META_HEADER: json.dumps({"inputs": metas, "options": {name: value}})}
                status, answer, _ = raw(srv, "POST", f"/v1/run/{op['name']}", body, head)
                assert (status, answer["error"]["code"]) == (400, "bad_option"), (op["name"], name, value, answer)
                assert answer["error"]["message"].endswith(".") and "\n" not in answer["error"]["message"]
                count += 1
    deep = {"inputs": [], "options": {"a": [[[[[[[[[[1]]]]]]]]]]}}
    status, answer, _ = raw(srv, "POST", "/v1/run/matte", b"", {protocol.META_HEADER: json.dumps(deep)})
    assert (status, answer["error"]["code"]) == (400, "bad_meta") and "nests deeper" in answer["error"]["message"]
    print(f"worker options: {count} bad values over {len(schema['operations'])} operations, all answered 400 bad_option")


def test_roto_paths_are_confined_to_the_allowed_folders(make_worker, tmp_path):
    allowed = tmp_path / "shots"
    (allowed / "plate").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (allowed / "escape").symlink_to(tmp_path / "elsewhere")
    srv, _ = make_worker(allow_dirs=[str(allowed)])
    good_plate, good_out = str(allowed / "plate" / "f.####.png"), str(allowed / "mattes" / "m.####.png")
    cases = {"plate": [str(allowed / ".." / "elsewhere" / "f.####.png"), "/etc/passwd", "plate/f.####.png",
                       str(allowed / "escape" / "f.####.png")],
             "output": [str(allowed / "mattes" / ".." / ".." / "m.####.png"), str(tmp_path / "elsewhere" / "m.####.png"),
                        str(tmp_path.parent / "m.####.png")],
             "rgba": [str(allowed / "..")], "fg": [str(allowed / "escape")]}
    for field_name, values in cases.items():
        for value in values:
            options = {"plate": good_plate, "output": good_out, field_name: value}
            status, answer, _ = raw(srv, "POST", "/v1/jobs/roto", b"", meta_header([], **options))
            assert (status, answer["error"]["code"]) == (400, "bad_option"), (field_name, value, answer)
            assert f"'{field_name}'" in answer["error"]["message"]
    # inside the allowed folder the request passes the path checks (and the job's own check refuses it: no frames)
    status, answer, _ = raw(srv, "POST", "/v1/run/roto", b"", meta_header([], plate=good_plate, output=good_out))
    assert status == 400 and answer["error"]["message"].startswith("No frames match"), answer


def test_the_default_roto_folder_is_home_without_hidden_folders(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("MATTEKIT_ALLOW_DIRS", raising=False)
    policy = operations.PathPolicy()
    policy.check("plate", str(tmp_path / "shots" / "f.####.exr"))
    for path in (str(tmp_path / ".ssh" / "f.####.png"), str(tmp_path / "shots" / ".hidden" / "m.png"), "/etc/x.png"):
        with pytest.raises(operations.OptionError):
            policy.check("output", path)


def test_a_second_worker_for_the_same_state_file_is_refused(make_worker):
    from mattekit.errors import MattekitError

    srv, worker = make_worker()
    with pytest.raises(MattekitError, match=r"^Another mattekit worker already serves the state file .*\.$"):
        service.WorkerServer(state_file=srv.state_file, log=lambda text: None)
    os.remove(srv.state_file)  # the command line finds no worker to reuse, and still may not start a second one
    out = subprocess.run([sys.executable, "-m", "mattekit.commands.serve", "--state-file", srv.state_file],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "Another mattekit worker already serves" in out.stderr
    assert "Traceback" not in out.stderr
    assert worker.health()["ok"], "the first worker keeps serving"


@pytest.mark.slow  # ~23 s: idle connections held open until the worker's timeouts
def test_idle_connections_take_no_threads_and_do_not_lock_clients_out(make_worker):
    srv, worker = make_worker()
    before = set(threading.enumerate())
    socks = [socket.create_connection((srv.host, srv.port), timeout=30) for _ in range(3000)]
    _until(lambda: not select.select([srv.httpd.socket], [], [], 0)[0]  # none left to accept
           and _open_connections(srv) == connections.MAX_CONNECTIONS, "the worker's taking in of the connections")
    new_threads = set(threading.enumerate()) - before
    health = worker.health()  # a real client is served while the idle connections wait
    open_now = _open_connections(srv)
    for s in socks:
        s.close()
    print(f"worker idle connections: 3000 opened; connections held {open_now} (cap {connections.MAX_CONNECTIONS}), "
          f"threads started for them {sorted(t.name for t in new_threads)} (pool {connections.POOL_SIZE})")
    assert health["ok"] and not new_threads and open_now <= connections.MAX_CONNECTIONS


def test_half_sent_requests_and_idle_connections_time_out(make_worker, monkeypatch):
    monkeypatch.setattr(connections, "CONNECTION_TIMEOUT", 1.0)
    monkeypatch.setattr(request.Handler, "timeout", 1.0)
    srv, worker = make_worker()
    threads, handled, finish = set(threading.enumerate()), [], srv.httpd.finish_request
    srv.httpd.finish_request = lambda request, address: (handled.append(address), finish(request, address))
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


def _until(condition, what: str, limit: float = 60) -> None:
    """Wait for ``condition()``; fail naming ``what`` if it does not come within ``limit`` seconds (a hang)."""
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen"
        time.sleep(0.01)


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


def _answer(sock: socket.socket) -> bytes:
    """Everything the worker sends on a raw connection until it hangs up."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def test_strangers_trickling_a_body_do_not_hold_the_handler_threads(make_worker, monkeypatch):
    """Refused requests trickling their bodies do not hold the handler threads: each is answered 401 and hung up on,
    and a health check is answered while they trickle."""
    monkeypatch.setattr(request, "BODY_SECONDS", 600.0)  # a body waited for would hold its thread past the timeout
    srv, _ = make_worker()
    head = (f"POST /v1/run/remove HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\nAuthorization: Bearer wrong\r\n"
            f"Content-Length: 1000\r\n\r\nx").encode()
    stalls = [socket.create_connection((srv.host, srv.port), timeout=20) for _ in range(connections.POOL_SIZE + 2)]
    for sock in stalls:
        sock.sendall(head)
    stop = threading.Event()
    trickling = _trickle(stalls, stop, 0.5)  # 1,000 bytes at 2 a second: 500 s per request
    try:  # were the strangers holding the handler threads, the health check would wait 500 s: the timeout fails it
        health = client.Worker(srv.url, srv.token, timeout=60).health()  # all stalling sockets still open
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
    metas = [{"width": 10, "height": 10, "channels": 3, "dtype": "u8"},
             {"width": 10, "height": 10, "channels": 1, "dtype": "u8"}]
    sock = socket.create_connection((srv.host, srv.port), timeout=30)  # a hang, were the deadline per byte (80 s)
    sock.sendall((f"POST /v1/run/echo HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\nAuthorization: Bearer {srv.token}\r\n"
                  f"{protocol.META_HEADER}: {json.dumps({'inputs': metas})}\r\nContent-Length: 400\r\n\r\nx").encode())
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
        own = client.Worker(srv.url, srv.token, timeout=120)
        for _ in range(10):
            try:
                out, = own.run("enhance", inputs, IDENTITY)
                done.append(out.data == inputs[0].data)
            except Exception as exc:
                failures.append(repr(exc))

    elapsed = _in_threads(lambda k: one_client(), 50)
    print(f"worker concurrency: 50 clients x 10 requests in {elapsed:.1f} s ({500 / elapsed:.0f} requests/s), "
          f"{len(failures)} failures")
    assert not failures, failures[:3]
    assert len(done) == 500 and all(done)


def test_unauthenticated_floods_are_answered_401_and_logged_rate_limited(make_worker, tmp_path):
    path = tmp_path / "log" / "worker.log"
    log = WorkerLog(str(path))
    srv, _ = make_worker(log=log)
    start = time.perf_counter()
    statuses = set()
    for i in range(1000):
        status, body, _ = raw(srv, "GET" if i % 2 else "POST", "/v1/health" if i % 2 else "/v1/run/remove",
                              token=None if i % 3 else "Bearer nope")
        statuses.add((status, body["error"]["code"]))
    elapsed = time.perf_counter() - start
    lines = path.read_text().splitlines()
    bound = log.burst + log.rate * elapsed + 1
    print(f"worker log: 1000 unauthenticated requests in {elapsed:.1f} s -> {len(lines)} log lines "
          f"(bound {bound:.0f}: burst {log.burst:g} + {log.rate:g}/s)")
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
    copy = _test_operation("copy", (Port("image", "image", (3, 4)),),
                           lambda models, inputs, options, progress: {"result": inputs["image"]})
    srv, _ = make_worker(operations_table={"copy": copy}, max_queued=1 << 20)
    side = 160
    reserved = side * side * 4 * 4  # float32 bytes of one request's 160 x 160 RGBA: two fit in 1 MiB, not three
    meta = {"inputs": [{"width": side, "height": side, "channels": 4, "dtype": "u8"}]}
    head = (f"POST /v1/run/copy HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\nAuthorization: Bearer {srv.token}\r\n"
            f"{protocol.META_HEADER}: {json.dumps(meta)}\r\nContent-Length: {side * side * 4}\r\n\r\n").encode()
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


def test_odd_but_well_typed_option_values_never_give_a_500(make_worker, mirror):
    """Values that pass the declared types but that a check may still refuse: 200, or 400 (the option check,
    before any model loads) or 422 (the task) with one sentence."""
    _, worker = make_worker()
    rgb = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    subject = np.zeros((16, 16), np.uint8)
    subject[4:12, 4:12] = 255
    image, mask = Pixels(rgb.tobytes(), 16, 16, 3), Pixels(subject.tobytes(), 16, 16, 1)
    cases = [("bokeh", [image, mask], {"mask_only": True, "focus": focus})
             for focus in ("abc", "1e400,5", "nan,nan", "inf,1", "-5,-5", ",", "1,2,3", "50%,40%")]
    cases += [("matte", {"image": image, "mask": mask}, {"result": "composite", "background": background})
              for background in ("#zzzzzz", "", "300,0,0", "blur")]
    cases += [("matte", {"image": image, "mask": mask}, {"band": 64, "iterations": 500, "crop": 10.0}),
              ("upscale", [image], {"model": "rfdn-x4", "scale": 0.01}), ("upscale", [image], {"model": "rfdn-x4", "tile": 64}),
              ("remove", [image], {"model": "rfdn-x4"}), ("remove", [image], {"device": "gpu"}),
              ("remove", [image], {"device": "cuda:99"}), ("enhance", [image], {"strength": 2.0})]
    answers = []
    for op, inputs, options in cases:
        try:
            worker.run(op, inputs, options)
            answers.append(200)
        except WorkerError as exc:
            assert exc.status in (400, 422) and str(exc).endswith(".") and "\n" not in str(exc), (op, options, exc)
            answers.append(exc.status)
    print(f"worker odd option values: {answers.count(200)} answered 200, {answers.count(400)} answered 400, "
          f"{answers.count(422)} answered 422, no 500")


def test_remove_takes_a_box_or_a_hint_mask_and_refuses_bad_hints(make_worker, mirror, shared):
    srv, worker = make_worker()
    photo, gt, pixels = _person1(shared)
    h, w = photo.shape[:2]
    ys, xs = np.nonzero(gt >= 128)
    box = f"{xs.min() - 5},{ys.min() - 5},{xs.max() + 6},{ys.max() + 6}"
    options = {"model": "u2netp", "hint_model": "none", "result": "alpha"}  # the segmentation model answers the hint
    boxed, = worker.run("remove", [pixels], dict(options, box=box, point=f"{int(xs.mean())},{int(ys.mean())}"))
    alpha = np.frombuffer(boxed.data, np.uint8).reshape(h, w) / 255.0
    assert _iou(alpha, gt) > 0.85 and alpha[:, : max(0, xs.min() - 5)].max() == 0
    selection = np.zeros((h, w), np.uint8)
    selection[:, : w // 3] = 255  # a selection that leaves the subject out: nothing of it is kept
    masked, = worker.run("remove", {"image": pixels, "hint_mask": Pixels(selection.tobytes(), w, h, 1, "u8")}, options)
    outside = np.frombuffer(masked.data, np.uint8).reshape(h, w)
    reach = w // 3 + int(0.05 * max(h, w)) + 1
    assert outside[:, reach:].max() == 0
    one = [{"width": w, "height": h, "channels": 3, "dtype": "u8"}]
    for bad in ({"box": "1,2,3"}, {"box": "5,5,5,9"}, {"point": "a,b"}, {"exclude": "1,2;3"}):
        status, answer, _ = raw(srv, "POST", "/v1/run/remove", photo.tobytes(), meta_header(one, **bad))
        assert (status, answer["error"]["code"]) == (400, "bad_option") and answer["error"]["message"].endswith("."), bad
    for bad, words in (({"box": f"{w + 10},0,{w + 50},40"}, "lies outside"), ({"point": f"3,{h}"}, "lies outside")):
        with pytest.raises(WorkerError) as err:
            worker.run("remove", [pixels], dict(options, **bad))
        assert err.value.status == 422 and words in str(err.value)
    with pytest.raises(WorkerError) as err:
        worker.run("remove", {"image": pixels, "hint_mask": Pixels(bytes(100), 10, 10, 1, "u8")}, options)
    assert err.value.status == 400 and "same size" in str(err.value)


# ---------------------------------------------------------------- roto never writes over its plate

ROTO_OVERWRITES = {  # {p}: the plate folder, {out}: a fresh folder
    "output-is-the-plate-pattern": {"output": "{p}/f.####.png"},
    "output-is-the-plate-folder": {"output": "{p}"},
    "rgba-is-the-plate-pattern": {"output": "{out}/m.####.png", "rgba": "{p}/f.####.png"},
    "fg-is-the-plate-folder": {"output": "{out}/m.####.png", "fg": "{p}"},
}


@pytest.mark.parametrize("case", list(ROTO_OVERWRITES), ids=list(ROTO_OVERWRITES))
def test_roto_through_the_worker_refuses_outputs_that_are_its_plate(make_worker, tmp_path, case):
    from mattekit.io import write_image

    plate = tmp_path / "shot" / "plate"
    plate.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for frame in (1, 2):
        write_image(plate / f"f.{frame:04d}.png", rng.random((12, 16, 3)).astype(np.float32))
    before = {p: p.read_bytes() for p in plate.iterdir()}
    srv, worker = make_worker(allow_dirs=[str(tmp_path / "shot")])
    names = {"p": plate, "out": tmp_path / "shot" / "out"}
    options = {"plate": str(plate / "f.####.png"), "model": "csnet-sod", "device": "cpu"}
    options |= {k: v.format(**names) for k, v in ROTO_OVERWRITES[case].items()}
    with pytest.raises(WorkerError) as err:  # synchronous: refused at the option check, before any model loads
        worker.run("roto", [], options)
    assert (err.value.status, err.value.code) == (400, "bad_option")
    message = str(err.value)
    assert "\n" not in message and "is the plate" in message and "choose another option '" in message, message
    with pytest.raises(WorkerError) as err:  # asynchronous: refused before a job is queued, with the same sentence
        worker.submit("roto", [], options)
    assert (err.value.status, err.value.code, str(err.value)) == (400, "bad_option", message)
    assert {p: p.read_bytes() for p in plate.iterdir()} == before  # not a byte written, no manifest
    assert not names["out"].exists()


def test_roto_through_the_worker_reuses_its_loaded_model(make_worker, mirror, monkeypatch, tmp_path):
    """The worker's roto jobs load their model into the worker's own cache: a model a remove call loaded
    is used as it is, and two roto jobs load nothing more (one Predictor made in all)."""
    from mattekit.io import write_image

    loads = count_loads(monkeypatch)
    plate = tmp_path / "shot" / "plate"
    plate.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for frame in (1, 2):
        write_image(plate / f"f.{frame:04d}.png", rng.random((24, 32, 3)).astype(np.float32))
    _, worker = make_worker(allow_dirs=[str(tmp_path / "shot")])
    img = Pixels(np.full((24, 24, 3), 128, np.uint8).tobytes(), 24, 24, 3, "u8")
    worker.run("remove", [img], {"model": "csnet-sod", "device": "cpu"})
    for run in ("a", "b"):
        worker.run("roto", [], {"plate": str(plate / "f.####.png"), "model": "csnet-sod", "device": "cpu",
                                "output": str(tmp_path / "shot" / run / "m.####.png")})
        assert sorted(p.name for p in (tmp_path / "shot" / run).glob("m.*.png")) == ["m.0001.png", "m.0002.png"]
    assert loads == ["csnet-sod"]
    assert next(m for m in worker.models() if m["name"] == "csnet-sod")["loaded"]


def test_refusals_speak_the_workers_words_not_the_clis_or_pythons(make_worker, tmp_path):
    """Refusals name the worker's options, not the CLI's flags (`use option 'device' cpu`, not `--device cpu`), and a
    path holding a null character is one sentence, not Python's "embedded null byte"."""
    srv, worker = make_worker(allow_dirs=[str(tmp_path)])
    img = Pixels(bytes(3 * 4 * 4), 4, 4, 3, "u8")
    with pytest.raises(WorkerError) as err:
        worker.run("mask-preview", [img], {"device": "mps"})
    assert (err.value.status, err.value.code) == (422, "task_failed")
    assert str(err.value).endswith("Apple MPS is not available here; use option 'device' cpu or auto."), str(err.value)
    status, answer, _ = raw(srv, "POST", "/v1/run/roto", b"", {protocol.META_HEADER: json.dumps(
        {"inputs": [], "options": {"plate": f"{tmp_path}/a\x00b.####.png", "output": f"{tmp_path}/m.####.png"}})})
    assert (status, answer["error"]["code"]) == (400, "bad_option")
    assert answer["error"]["message"] == "Option 'plate' holds a null character, which no file name or text may hold."
