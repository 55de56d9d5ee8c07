"""The local worker (mattekit.worker): its token and state file, pixels in and out, malformed requests, the hosts
it answers (the worker fixture and the helpers the worker tests share are in tests/helpers/workers.py)."""

from __future__ import annotations

import http.client
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mattekit.wire import client
from mattekit.wire.client import Pixels, WorkerError
from mattekit.wire import protocol
from mattekit.worker import service
from workers import _echo_operation, meta_header, raw


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
    for method, path in (
        ("GET", "/v1/health"),
        ("GET", "/v1/models"),
        ("POST", "/v1/shutdown"),
        ("POST", "/v1/run/remove"),
        ("GET", "/nothing"),
    ):
        status, body, resp = raw(srv, method, path, body=b"x" * 10, token=token)
        assert status == 401, (method, path)
        assert body["error"]["code"] == "unauthorised"
        assert resp.getheader("WWW-Authenticate", "").startswith("Bearer")
    assert not srv.stopping.is_set()
    with pytest.raises(WorkerError) as err:
        client.WorkerClient(srv.url, "not-the-token").health()
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
    (out,) = worker.run("echo", [Pixels(rgb_q.tobytes(), 7, 5, 3, dtype), Pixels(alpha_q.tobytes(), 7, 5, 1, dtype)])
    assert (out.width, out.height, out.channels, out.dtype) == (7, 5, 4, dtype)
    got = np.frombuffer(out.data, np_dtype).reshape(5, 7, 4)
    assert np.array_equal(got[..., :3], rgb_q) and np.array_equal(got[..., 3], alpha_q)


def test_output_dtype_grey_inputs_and_named_inputs(make_worker):
    srv, worker = make_worker(operations_table={"echo": _echo_operation()})
    grey = np.array([[0, 128, 255]], np.uint8)
    alpha = np.array([[255, 255, 0]], np.uint8)
    head = {
        protocol.META_HEADER: json.dumps(
            {"inputs": [{"width": 3, "height": 1, "channels": 1, "dtype": "u8"}] * 2, "output_dtype": "f32"}
        )
    }
    status, data, resp = raw(srv, "POST", "/v1/run/echo", grey.tobytes() + alpha.tobytes(), head)
    assert status == 200
    meta = json.loads(resp.getheader(protocol.META_HEADER))["outputs"][0]
    assert meta == {"name": "result", "width": 3, "height": 1, "channels": 4, "dtype": "f32"}
    got = np.frombuffer(data, "<f4").reshape(1, 3, 4)
    assert np.allclose(got[0, :, :3], (grey[0] / 255.0)[:, None]) and np.allclose(got[0, :, 3], alpha[0] / 255.0)
    # inputs named by port, in any order
    (named,) = worker.run("echo", {"alpha": Pixels(alpha.tobytes(), 3, 1, 1), "image": Pixels(grey.tobytes(), 3, 1, 1)})
    assert np.frombuffer(named.data, np.uint8).reshape(1, 3, 4)[0, :, 3].tolist() == [255, 255, 0]


# ---------------------------------------------------------------- malformed requests


def test_malformed_requests_get_clear_4xx_json(make_worker):
    srv, _ = make_worker(max_request=4096)
    one = [
        {"width": 2, "height": 2, "channels": 3, "dtype": "u8"},
        {"width": 2, "height": 2, "channels": 1, "dtype": "u8"},
    ]
    body = bytes(12 + 4)
    cases = [
        ("POST", "/v1/run/matte", body, {}, 400, "bad_meta"),  # no meta header
        ("POST", "/v1/run/matte", body, {protocol.META_HEADER: "{not json"}, 400, "bad_meta"),
        ("POST", "/v1/run/matte", body, {protocol.META_HEADER: "[1, 2]"}, 400, "bad_meta"),
        ("POST", "/v1/run/matte", body[:-1], meta_header(one), 400, "bad_body"),
        ("POST", "/v1/run/matte", body + b"x", meta_header(one), 400, "bad_body"),
        ("POST", "/v1/run/matte", b"", meta_header([]), 400, "bad_meta"),
        (
            "POST",
            "/v1/run/matte",
            body,
            meta_header([dict(one[0], name="image"), dict(one[1], name="halo")]),
            400,
            "bad_meta",
        ),
        (
            "POST",
            "/v1/run/matte",
            body,
            meta_header([dict(one[0], name="image"), dict(one[1], name="image")]),
            400,
            "bad_meta",
        ),
        (
            "POST",
            "/v1/run/matte",
            body,
            meta_header([dict(one[1], name="mask"), dict(one[0], name="backdrop")]),
            400,
            "bad_meta",
        ),
        ("POST", "/v1/run/matte", body, meta_header([dict(one[0], dtype="u32"), one[1]]), 400, "bad_meta"),
        ("POST", "/v1/run/matte", body, meta_header([dict(one[0], dtype=["u8"]), one[1]]), 400, "bad_meta"),  # was 500
        (
            "POST",
            "/v1/run/matte",
            body,
            meta_header([dict(one[0], name=["image"]), one[1]]),
            400,
            "bad_meta",
        ),  # was 500
        ("POST", "/v1/run/matte", body, meta_header([dict(one[0], width=-2), one[1]]), 400, "bad_meta"),
        ("POST", "/v1/run/matte", bytes(24), meta_header([one[0], dict(one[1], channels=3)]), 400, "bad_meta"),
        ("POST", "/v1/run/matte", body, meta_header(one, output="alpha"), 400, "bad_option"),
        ("POST", "/v1/run/matte", body, meta_header(one, result="jpeg"), 400, "bad_option"),
        ("POST", "/v1/run/matte", body, meta_header(one, crop="wide"), 400, "bad_option"),
        (
            "POST",
            "/v1/run/matte",
            body,
            {protocol.META_HEADER: json.dumps({"inputs": one, "output_dtype": ["u8"]})},
            400,
            "bad_meta",
        ),
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


# ---------------------------------------------------------------- the hosts it answers, one worker per state file


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
    for host in (
        f"evil.example:{port}",
        "127.0.0.1",
        f"127.0.0.1:{port + 1}",
        f"localhost.evil.example:{port}",
        f"127.0.0.2:{port}",
        "",
        None,
    ):
        assert _with_host(srv, host) == (403, "bad_host"), host
    for header in ({"Origin": "http://evil.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}):
        assert _with_host(srv, f"127.0.0.1:{port}", header) == (403, "browser_refused"), header
    assert raw(srv, "GET", "/v1/health")[0] == 200


def test_a_second_worker_for_the_same_state_file_is_refused(make_worker):
    from mattekit.errors import MattekitError

    srv, worker = make_worker()
    with pytest.raises(MattekitError, match=r"^Another mattekit worker already serves the state file .*\.$"):
        service.WorkerServer(state_file=srv.state_file, log=lambda text: None)
    os.remove(srv.state_file)  # the command line finds no worker to reuse, and still may not start a second one
    out = subprocess.run(
        [sys.executable, "-m", "mattekit.commands.serve", "--state-file", srv.state_file],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2 and "Another mattekit worker already serves" in out.stderr
    assert "Traceback" not in out.stderr
    assert worker.health()["ok"], "the first worker keeps serving"
