"""The weights tests' fixtures: a real HTTP server on loopback serving the shared real checkpoints (``Range`` honoured
or not), the shared files' sha256 sums, and an environment with no mirror and online."""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class _Handler(BaseHTTPRequestHandler):
    """GET /<route>/<name> serves server.routes[route]/name, honouring `Range: bytes=N-`."""

    def do_GET(self):
        srv = self.server
        srv.seen.append((self.path, self.headers.get("Range")))
        route, _, name = self.path.lstrip("/").partition("/")
        folder = srv.routes.get(route)
        if folder is None or "/" in name or not (folder / name).is_file():
            return self.send_error(404)
        data = (folder / name).read_bytes()
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        start = int(match[1]) if match and srv.honour_range else 0
        if start >= len(data) > 0:
            return self.send_error(416)
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        try:
            self.wfile.write(data[start:])
        except (BrokenPipeError, ConnectionResetError):  # the client stopped reading: a test of a cut download
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def server(shared, tmp_path):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    (tmp_path / "empty").mkdir()
    srv.routes = {"official": shared / "weights", "mirror": shared / "weights", "empty": tmp_path / "empty"}
    srv.seen, srv.honour_range = [], True
    srv.base = f"http://127.0.0.1:{srv.server_address[1]}"
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join()


@pytest.fixture(scope="module")
def sums(shared) -> dict[str, str]:
    lines = (shared / "weights" / "SHA256SUMS").read_text().split("\n")
    return {name: digest for digest, name in (line.split() for line in lines if line.strip())}


@pytest.fixture
def env(monkeypatch):
    monkeypatch.delenv("MATTEKIT_MIRROR", raising=False)
    monkeypatch.delenv("MATTEKIT_OFFLINE", raising=False)
    return monkeypatch
