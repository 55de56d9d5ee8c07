"""The GIMP tests' fixtures: the plug-in loaded afresh against the stand-ins of GIMP's API (``gimp``) and a real
worker in this process that it finds (``worker``); tests/helpers/gimp_plugin_runs.py holds what they call it with."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest

from mattekit.wire import client
from mattekit.worker import service

from gimp_plugin_runs import PLUGIN, STUBS, _gi_and_plugin_modules, registry_schema


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
