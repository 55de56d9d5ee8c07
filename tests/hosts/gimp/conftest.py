"""The GIMP tests' fixtures: the plug-in loaded afresh against the stand-ins of GIMP's API (``gimp``) and a real
worker in this process that it finds (``worker``; tests/helpers/gimp_plugin_runs.py holds what they call it with), and
the Debian 13 root holding GIMP 3.0 for the end-to-end runs (``gimp_root``, built once by build_root.sh)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mattekit.wire import client
from mattekit.worker import service

from gimp_plugin_runs import PLUGIN, STUBS, _gi_and_plugin_modules, registry_schema

BUILDER = Path(__file__).resolve().parent / "build_root.sh"


@pytest.fixture
def gimp(tmp_path, monkeypatch):
    """(plug-in module, stub Gimp, stub GimpUi), with a record offering every worker operation."""
    for name in _gi_and_plugin_modules():
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(STUBS))
    spec = importlib.util.spec_from_file_location("mattekit_gimp_under_test", PLUGIN)
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    from gi.repository import Gimp, GimpUi

    Gimp.CALLS.clear()
    Gimp.IMAGES.clear()
    GimpUi.SHOWN.clear()
    GimpUi.DIALOGS.clear()
    GimpUi.PICK.clear()
    GimpUi.ANSWER = True
    record = {"python": sys.executable, "schema": registry_schema()}
    (tmp_path / "mattekit_worker.json").write_text(json.dumps(record))
    monkeypatch.setattr(sys.modules["gimp_schema"], "HERE", str(tmp_path))  # where the plug-in reads its record
    monkeypatch.setenv(client.STATE_ENV, str(tmp_path / "no-worker" / "worker.json"))  # not the user's worker
    yield plugin, Gimp, GimpUi
    for name in _gi_and_plugin_modules():
        sys.modules.pop(name, None)


@pytest.fixture
def worker(tmp_path, monkeypatch, shared):
    """A real worker in this process; the plug-in finds it through MATTEKIT_WORKER_STATE."""
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    monkeypatch.setenv("MATTEKIT_OFFLINE", "1")
    state = tmp_path / "state" / "worker.json"
    srv = service.WorkerServer(
        state_file=str(state), idle_timeout=None, threads=1, log=lambda t: None
    ).start_background()
    monkeypatch.setenv(client.STATE_ENV, str(state))
    yield client.WorkerClient(srv.url, srv.token)
    srv.stop(wait=True)


@pytest.fixture(scope="module")
def gimp_root():
    if not sys.platform.startswith("linux"):
        pytest.skip("the GIMP 3 root is a Debian chroot: Linux only")
    if os.geteuid() != 0:
        reason = "building and entering the GIMP 3 chroot needs root (debootstrap, chroot); not running as root"
        print(f"SKIPPED real-GIMP end-to-end test: {reason}")
        pytest.skip(reason)
    out = subprocess.run(["bash", str(BUILDER)], capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        pytest.fail(f"building the GIMP 3 root failed (exit {out.returncode}):\n{out.stderr[-4000:]}")
    root = Path(out.stdout.strip().splitlines()[-1])
    assert (root / "usr/bin/gimp-console-3.0").exists()
    return root
