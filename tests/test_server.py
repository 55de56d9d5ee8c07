"""The local worker (mattekit.server): token, pixels in and out, errors, jobs, cancel, idle exit, load."""
from __future__ import annotations

import http.client
import json
import os
import stat
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mattekit import client, runtime, server
from mattekit.client import Pixels, WorkerError


@pytest.fixture
def make_worker(tmp_path):
    """make_worker(**kwargs) -> (WorkerServer, client.Worker), served in this process, stopped afterwards."""
    made = []

    def make(**kwargs):
        kwargs.setdefault("state_file", str(tmp_path / f"state{len(made)}" / "worker.json"))
        kwargs.setdefault("idle_timeout", None)
        kwargs.setdefault("log", lambda text: None)
        kwargs.setdefault("threads", 1)  # one torch thread: steady timings on a busy 2-core CI machine
        srv = server.WorkerServer(**kwargs).start_background()
        made.append(srv)
        return srv, client.Worker(srv.url, srv.token, timeout=120)

    yield make
    for srv in made:
        srv.stop(wait=True)


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


def meta_header(inputs, **options):
    return {client.META_HEADER: json.dumps({"inputs": inputs, "options": options})}


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
    assert health["ok"] and health["version"] and health["api"] == server.API_VERSION
    assert {"remove", "cutout"} <= set(health["operations"])
    srv.stop(wait=True)
    assert not path.exists(), "a stopped worker must remove its state file"


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
    srv, worker = make_worker()
    rgb, alpha = _rgb_alpha()
    np_dtype, scale = {"u8": (np.uint8, 255), "u16": (np.uint16, 65535), "f32": (np.float32, 1)}[dtype]
    to = (lambda a: np.rint(a * scale).astype(np_dtype)) if scale != 1 else (lambda a: a.astype(np.float32))
    rgb_q, alpha_q = to(rgb), to(alpha)
    out, = worker.run("cutout", [Pixels(rgb_q.tobytes(), 7, 5, 3, dtype), Pixels(alpha_q.tobytes(), 7, 5, 1, dtype)])
    assert (out.width, out.height, out.channels, out.dtype) == (7, 5, 4, dtype)
    got = np.frombuffer(out.data, np_dtype).reshape(5, 7, 4)
    assert np.array_equal(got[..., :3], rgb_q) and np.array_equal(got[..., 3], alpha_q)


def test_output_dtype_and_grey_inputs(make_worker):
    srv, _ = make_worker()
    grey = np.array([[0, 128, 255]], np.uint8)
    alpha = np.array([[255, 255, 0]], np.uint8)
    head = {client.META_HEADER: json.dumps({"inputs": [{"width": 3, "height": 1, "channels": 1, "dtype": "u8"}] * 2,
                                            "options": {"output": "composite", "background": "#000000"},
                                            "output_dtype": "f32"})}
    status, data, resp = raw(srv, "POST", "/v1/run/cutout", grey.tobytes() + alpha.tobytes(), head)
    assert status == 200
    meta = json.loads(resp.getheader(client.META_HEADER))["outputs"][0]
    assert meta == {"width": 3, "height": 1, "channels": 3, "dtype": "f32"}
    got = np.frombuffer(data, "<f4").reshape(1, 3, 3)
    assert np.allclose(got[0, :, 0], [0.0, 128 / 255, 0.0])  # grey became RGB; the last pixel is transparent
    assert np.allclose(got[0, 1], 128 / 255)


# ---------------------------------------------------------------- malformed requests

def test_malformed_requests_get_clear_4xx_json(make_worker):
    srv, _ = make_worker(max_request=4096)
    one = [{"width": 2, "height": 2, "channels": 3, "dtype": "u8"}, {"width": 2, "height": 2, "channels": 1, "dtype": "u8"}]
    body = bytes(12 + 4)
    cases = [
        ("POST", "/v1/run/cutout", body, {}, 400, "bad_meta"),  # no meta header
        ("POST", "/v1/run/cutout", body, {client.META_HEADER: "{not json"}, 400, "bad_meta"),
        ("POST", "/v1/run/cutout", body, {client.META_HEADER: "[1, 2]"}, 400, "bad_meta"),
        ("POST", "/v1/run/cutout", body[:-1], meta_header(one), 400, "bad_body"),
        ("POST", "/v1/run/cutout", body + b"x", meta_header(one), 400, "bad_body"),
        ("POST", "/v1/run/cutout", body, meta_header(one[:1]), 400, "bad_meta"),
        ("POST", "/v1/run/cutout", body, meta_header([dict(one[0], dtype="u32"), one[1]]), 400, "bad_meta"),
        ("POST", "/v1/run/cutout", body, meta_header([dict(one[0], width=-2), one[1]]), 400, "bad_meta"),
        ("POST", "/v1/run/cutout", bytes(24), meta_header([one[0], dict(one[1], channels=3)]), 400, "bad_meta"),
        ("POST", "/v1/run/cutout", body, meta_header(one, colour="red"), 400, "bad_option"),
        ("POST", "/v1/run/cutout", body, meta_header(one, output="jpeg"), 400, "bad_option"),
        ("POST", "/v1/run/cutout", body, meta_header(one, crop_margin="wide"), 400, "bad_option"),
        ("POST", "/v1/run/nothing", body, meta_header(one), 404, "unknown_operation"),
        ("POST", "/v1/run/cutout", bytes(5000), meta_header(one), 413, "too_large"),
        ("GET", "/v1/jobs/0123", b"", {}, 404, "unknown_job"),
        ("GET", "/v2/health", b"", {}, 404, "not_found"),
        ("DELETE", "/v1/health", b"", {}, 405, "not_found"),
        ("PUT", "/v1/run/cutout", body, meta_header(one), 405, "not_found"),
    ]
    for method, path, data, headers, status, code in cases:
        got, answer, _ = raw(srv, method, path, data, headers)
        assert (got, answer["error"]["code"]) == (status, code), (path, headers, answer)
        assert answer["error"]["message"].endswith(".")
    # a body far beyond the limit is refused from its Content-Length alone, before it is read
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
    conn.putrequest("POST", "/v1/run/cutout")
    conn.putheader("Authorization", f"Bearer {srv.token}")
    conn.putheader("Content-Length", str(1 << 40))
    conn.endheaders()
    resp = conn.getresponse()
    assert resp.status == 413 and json.loads(resp.read())["error"]["code"] == "too_large"
    conn.close()
    # no Content-Length at all
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
    conn.putrequest("POST", "/v1/run/cutout")
    conn.putheader("Authorization", f"Bearer {srv.token}")
    conn.putheader(client.META_HEADER, json.dumps({"inputs": one}))
    conn.endheaders()
    assert conn.getresponse().status == 411
    conn.close()
    # after all that the worker still serves
    assert raw(srv, "GET", "/v1/health")[0] == 200


def test_a_task_error_is_one_sentence_with_422(make_worker, mirror):
    _, worker = make_worker()
    img = Pixels(bytes(16 * 16 * 3), 16, 16, 3, "u8")
    with pytest.raises(WorkerError) as err:
        worker.run("remove", [img], {"model": "no-such-model"})
    assert err.value.status == 422 and "Unknown model 'no-such-model'" in str(err.value)
    with pytest.raises(WorkerError) as err:
        worker.run("cutout", [img, Pixels(bytes(256), 16, 16, 1, "u8")], {"output": "composite", "background": "mauve-ish"})
    assert err.value.status == 422 and "background colour" in str(err.value)


# ---------------------------------------------------------------- real models through the worker

def _iou(alpha: np.ndarray, gt: np.ndarray) -> float:
    valid = gt != 128
    pred, truth = alpha >= 0.5, gt > 128
    return float((pred & truth & valid).sum() / max(((pred | truth) & valid).sum(), 1))


def test_remove_cuts_out_a_real_portrait_sync_and_async_alike(make_worker, mirror, shared):
    _, worker = make_worker()
    photo = np.asarray(Image.open(shared / "data/grabcut50/im/person1.jpg").convert("RGB"))
    gt = np.asarray(Image.open(shared / "data/grabcut50/gt/person1.png").convert("L"))
    h, w = photo.shape[:2]
    pixels = Pixels(photo.tobytes(), w, h, 3, "u8")
    sync, = worker.run("remove", [pixels], {"model": "sinet-portrait"})
    seen = []
    asyn, = worker.run("remove", [pixels], {"model": "sinet-portrait"}, progress=lambda f, m: seen.append((f, m)))
    assert sync.data == asyn.data, "the same request must give the same bytes"
    assert seen and seen[-1][0] == 1.0
    alpha = np.frombuffer(sync.data, np.uint8).reshape(h, w) / 255.0
    iou = _iou(alpha, gt)
    print(f"worker remove person1 sinet-portrait IoU {iou:.4f}")
    assert iou > 0.9


def test_one_model_load_for_many_concurrent_clients(make_worker, mirror, monkeypatch):
    loads = []

    class Counting(runtime.Predictor):
        def __init__(self, *args, **kwargs):
            loads.append(args[0].name)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(runtime, "Predictor", Counting)
    _, worker = make_worker()
    img = Pixels(np.full((24, 24, 3), 128, np.uint8).tobytes(), 24, 24, 3, "u8")
    results, errors = [], []

    def one():
        try:
            results.append(worker.run("remove", [img], {"model": "extremec3-portrait"})[0].data)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 8 and len(set(results)) == 1
    assert loads == ["extremec3-portrait"]
    assert next(m for m in worker.models() if m["name"] == "extremec3-portrait")["loaded"]


@pytest.mark.skipif(not server.task_available("upscale"), reason="mattekit.tasks.upscale is not in this build")
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


@pytest.mark.skipif(not server.task_available("bokeh"), reason="mattekit.tasks.bokeh is not in this build")
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


@pytest.mark.skipif(not server.task_available("matte"), reason="mattekit.tasks.matte is not in this build")
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
    inputs = [_u8(photo, h, w, 3), _u8(coarse, h, w, 1)]
    out, = worker.run("matte", inputs)
    assert (out.width, out.height, out.channels, out.dtype) == (w, h, 1, "u8")
    alpha = np.frombuffer(out.data, np.uint8).reshape(h, w) / 255.0
    before, after = np.abs(coarse / 255.0 - gt).mean(), np.abs(alpha - gt).mean()
    print(f"worker matte GT05 {w}x{h}: alpha MAE coarse mask {before:.4f} -> refined {after:.4f}")
    assert after < 0.5 * before
    seen = []
    rgba, = worker.run("matte", inputs, {"output": "rgba"}, progress=lambda f, m: seen.append(f))
    assert (rgba.width, rgba.height, rgba.channels) == (w, h, 4) and seen[-1] == 1.0
    rgba = np.frombuffer(rgba.data, np.uint8).reshape(h, w, 4)
    assert np.array_equal(rgba[..., 3], np.rint(alpha * 255)), "the cut-out carries the refined alpha"
    soft = (alpha > 0.05) & (alpha < 0.95)
    assert np.abs(rgba[..., :3][soft].astype(int) - photo[soft]).mean() > 1, "colours are decontaminated"


@pytest.mark.skipif(not server.task_available("matte"), reason="mattekit.tasks.matte is not in this build")
def test_matte_refuses_masks_it_cannot_refine_in_one_sentence(make_worker):
    srv, worker = make_worker()
    image = _u8(np.zeros((48, 64, 3)), 48, 64, 3)
    with pytest.raises(WorkerError) as err:
        worker.run("matte", [image, _u8(np.zeros((30, 40)), 30, 40, 1)])
    assert (err.value.status, err.value.code) == (400, "bad_meta")
    assert str(err.value) == ("Input 'mask' is 40 x 30 pixels but 'image' is 64 x 48; "
                              "all inputs of one request must have the same size.")
    for value, missing in ((0, "white (subject)"), (255, "black (background)"), (128, "white (subject) or black")):
        with pytest.raises(WorkerError) as err:
            worker.run("matte", [image, _u8(np.full((48, 64), value), 48, 64, 1)])
        assert err.value.status == 422 and str(err.value).startswith("The mask has no edge to refine")
        assert f"it has no {missing}" in str(err.value) and str(err.value).count(".") == 1
    edge = np.zeros((48, 64))
    edge[:, 32:] = 255
    for options in ({"band": -1}, {"iterations": 0}, {"output": "trimap"}):
        with pytest.raises(WorkerError) as err:
            worker.run("matte", [image, _u8(edge, 48, 64, 1)], options)
        assert (err.value.status, err.value.code) == (400, "bad_option"), options
    assert raw(srv, "GET", "/v1/health")[0] == 200


# ---------------------------------------------------------------- asynchronous jobs, cancel, shutdown

def _slow_operation(log: list) -> server.Operation:
    def run(inputs, options, progress):
        log.append("start")
        for i in range(options["steps"]):
            progress((i + 1) / options["steps"], f"step {i}")
            log.append(i)
            time.sleep(0.01)
        return [inputs[0]]

    return server.Operation("slow", "test", (server.Input("image", (3,)),),
                            {"steps": server.Option(int, 300)}, run)


def test_a_cancelled_job_stops(make_worker):
    log = []
    srv, worker = make_worker(operations={"slow": _slow_operation(log)})
    img = Pixels(bytes(3 * 4 * 4), 4, 4, 3, "u8")
    first = worker.submit("slow", [img])
    second = worker.submit("slow", [img])
    deadline = time.time() + 10
    while worker.job(first)["state"] != "running" or not log:
        assert time.time() < deadline
        time.sleep(0.01)
    assert worker.job(second)["state"] == "queued"
    assert worker.cancel(second)["state"] == "cancelled"  # a queued job never starts
    worker.cancel(first)
    while worker.job(first)["state"] == "running":
        assert time.time() < deadline
        time.sleep(0.01)
    status = worker.job(first)
    assert status["state"] == "cancelled" and 0 < status["progress"] < 1
    steps_run = len(log) - 1
    time.sleep(0.1)
    assert len(log) - 1 == steps_run < 300, "the job went on after it was cancelled"
    assert log.count("start") == 1
    with pytest.raises(WorkerError) as err:
        worker.result(first)
    assert err.value.status == 409
    # the client's own cancel path
    with pytest.raises(client.Cancelled):
        worker.run("slow", [img], progress=lambda f, m: None, cancelled=lambda: len(log) > steps_run + 20)
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


def test_idle_timeout_stops_the_worker(make_worker):
    srv, worker = make_worker(idle_timeout=0.6)
    worker.health()
    assert srv.stopped.wait(10), "the idle worker did not exit"
    assert not Path(srv.state_file).exists()
    with pytest.raises(WorkerError):
        worker.health(timeout=2)


def test_shutdown_finishes_the_running_job(make_worker):
    log = []
    srv, worker = make_worker(operations={"slow": _slow_operation(log)})
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


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="RSS is read from /proc (Linux)")
def test_load_8_clients_x_200_requests_with_flat_memory(tmp_path):
    state = str(tmp_path / "load" / "worker.json")
    worker = client.start_worker(sys.executable, state, idle_timeout=120, wait=120)
    pid = worker.health()["pid"]
    rgb = np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    alpha = np.random.default_rng(3).integers(0, 256, (64, 64, 1), dtype=np.uint8)
    inputs = [Pixels(rgb.tobytes(), 64, 64, 3, "u8"), Pixels(alpha.tobytes(), 64, 64, 1, "u8")]
    expected = np.concatenate([rgb, alpha], axis=2).tobytes()
    try:
        for _ in range(50):  # warm up: imports, allocator pools, thread stacks
            worker.run("cutout", inputs)
        before = _rss_kb(pid)
        failures, counts = [], [0] * 8

        def one_client(k):
            own = client.Worker(worker.url, worker.token, timeout=60)
            for _ in range(200):
                try:
                    out, = own.run("cutout", inputs)
                    if out.data != expected:
                        failures.append("wrong pixels")
                    counts[k] += 1
                except Exception as exc:
                    failures.append(repr(exc))

        threads = [threading.Thread(target=one_client, args=(k,)) for k in range(8)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
        after = _rss_kb(pid)
        print(f"worker load: 8 clients x 200 requests (64x64 RGB + alpha -> RGBA, u8) in {elapsed:.1f} s = "
              f"{1600 / elapsed:.0f} requests/s; worker RSS before {before / 1024:.1f} MiB, after {after / 1024:.1f} MiB "
              f"({(after - before) / 1024:+.1f} MiB)")
        assert not failures, failures[:3]
        assert sum(counts) == 1600
        assert after - before < 32 * 1024, "worker memory grew under load"
    finally:
        worker.shutdown()
