"""Shared fixtures: the read-only test data folder (MATTEKIT_TEST_DATA), a clean process state per test,
a real worker on loopback, and the conformance goldens; tests/helpers/ on sys.path, and its weights' fixtures.

Markers (registered in pyproject.toml): ``slow``, ``gimp``, ``blender`` are set in the test modules;
plain ``pytest`` deselects the tests that carry any of them (the quick subset), ``pytest --full`` runs
everything, and an explicit ``-m`` expression decides on its own. ``needs_data`` is set here on every test that uses the ``shared`` fixture (directly or through another
fixture), and such tests are skipped, with the reason, when MATTEKIT_TEST_DATA does not lead to the data. Under ``--full``
no test may skip but those marked ``cuda``: a skip there is reported as a failure with its reason.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mattekit import api, catalog, runtime
from mattekit.engines import threads

# Test modules import the helpers by module name (``import mask_scores``), whichever folder they sit in: helpers/ is on
# sys.path. No test module imports another (tests/docs/test_test_tree.py): shared set-ups live in helpers/.
_HELPERS = str(Path(__file__).resolve().parent / "helpers")
if _HELPERS not in sys.path:
    sys.path.insert(0, _HELPERS)

pytest_plugins = ["weights_fixtures"]  # tests/helpers/weights_fixtures.py: the weights' fixtures, for every folder


def _shared_dir() -> tuple[Path | None, str]:
    """(the shared data root, "") when MATTEKIT_TEST_DATA leads to it, else (None, why not)."""
    value = os.environ.get("MATTEKIT_TEST_DATA")
    if not value:
        return None, "MATTEKIT_TEST_DATA is not set: point it at the shared test data folder (../shared)"
    path = Path(value).resolve()
    if not path.is_dir():
        return None, f"MATTEKIT_TEST_DATA={value} does not exist"
    if not (path / "conformance").is_dir():
        return None, f"MATTEKIT_TEST_DATA={value} has no conformance/ folder"
    return path, ""


QUICK_LEAVES_OUT = ("slow", "gimp", "blender")


def pytest_xdist_auto_num_workers(config) -> int:
    """``-n auto`` (pyproject's addopts): a worker per core this process may use, at most 4 (each imports torch and
    holds its own models: about 1 GB)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cores, 4))


def pytest_addoption(parser):
    parser.addoption(
        "--full",
        action="store_true",
        default=False,
        help="run the full suite; without it (and without -m) tests marked "
        + ", ".join(QUICK_LEAVES_OUT)
        + " are deselected",
    )


def pytest_collection_modifyitems(config, items):
    """Mark tests that use the shared data ``needs_data``; skip them when it is missing. Without ``--full`` and
    without ``-m``, deselect the tests marked slow, gimp or blender (the quick subset)."""
    _, missing = _shared_dir()
    for item in items:
        if "shared" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.needs_data)
        if missing and item.get_closest_marker("needs_data"):
            item.add_marker(pytest.mark.skip(reason=missing))
    if config.getoption("-m"):
        return
    if config.getoption("--full"):
        return
    kept, left_out = [], []
    for item in items:
        (left_out if any(item.get_closest_marker(m) for m in QUICK_LEAVES_OUT) else kept).append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under ``--full`` a skip is a failure, except for the tests marked ``cuda`` (CI has no GPU): a host that cannot
    be tested (no GIMP root, no Python for bpy, no shared data, a dev dependency missing) must not leave CI green."""
    outcome = yield
    report = outcome.get_result()
    if (
        report.skipped
        and item.config.getoption("--full")
        and not item.get_closest_marker("cuda")
        and not hasattr(report, "wasxfail")
    ):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"--full runs every test but the CUDA ones, and this one was skipped: {reason}"


@pytest.fixture(scope="session")
def shared() -> Path:
    """The shared data root: conformance/, weights/, data/."""
    path, missing = _shared_dir()
    if path is None:
        pytest.skip(missing)
    return path


@pytest.fixture
def four_images(shared, tmp_path, monkeypatch):
    """A data folder with the first four grabcut50 images (sorted), their masks and GrabCut rectangles
    (im/, gt/, rect/); the shared mirror, offline. (data folder, [image paths])."""
    monkeypatch.setenv("MATTEKIT_MIRROR", str(shared / "weights"))
    monkeypatch.setenv("MATTEKIT_OFFLINE", "1")
    source = shared / "data" / "grabcut50"
    images = sorted((source / "im").iterdir())[:4]
    for sub in ("im", "gt", "rect"):
        (tmp_path / sub).mkdir()
    for image in images:
        (tmp_path / "im" / image.name).symlink_to(image)
        for sub in ("gt", "rect"):
            (tmp_path / sub / f"{image.stem}.png").symlink_to(source / sub / f"{image.stem}.png")
    return tmp_path, images


@pytest.fixture(scope="session")
def _onnx_exports(tmp_path_factory) -> Path:
    """One folder of ONNX exports for the whole session: an export is named by its weights and recipe, so tests can
    share it, and the CPU engine of the measured models (ONNX Runtime here) is exported once, not once per test."""
    return tmp_path_factory.mktemp("onnx_exports")


@pytest.fixture(autouse=True)
def _clean_process_state(tmp_path_factory, monkeypatch, _onnx_exports):
    """Every test starts alike, whatever ran before it: its own weights cache (MATTEKIT_HOME; the session's ONNX
    exports linked in), no rembg folder, two torch threads, no model loaded by the Python API, licence notices not
    yet shown, and the catalog read afresh (it follows MATTEKIT_CATALOG)."""
    home = tmp_path_factory.mktemp("mattekit_home")
    (home / "weights").mkdir()
    (home / "weights" / "onnx").symlink_to(_onnx_exports, target_is_directory=True)
    monkeypatch.setenv("MATTEKIT_HOME", str(home))
    monkeypatch.setenv("U2NET_HOME", str(home / "no-rembg-folder"))  # a developer's own ~/.u2net stays out of tests
    threads.set_count(2)  # this thread's count for network calls, and torch's
    runtime.forget_notices()
    api.clear_models()
    catalog.load.cache_clear()
    yield
    runtime.forget_notices()
    api.clear_models()
    catalog.load.cache_clear()


@pytest.fixture
def make_worker(tmp_path):
    """make_worker(**kwargs) -> (WorkerServer, client.WorkerClient), a real worker on loopback served in this process,
    stopped afterwards (tests/helpers/workers.py holds what the tests talk to it with)."""
    from mattekit.wire import client
    from mattekit.worker import service

    made = []

    def make(**kwargs):
        kwargs.setdefault("state_file", str(tmp_path / f"state{len(made)}" / "worker.json"))
        kwargs.setdefault("idle_timeout", None)
        kwargs.setdefault("log", lambda text: None)
        kwargs.setdefault("threads", 1)  # one torch thread: steady timings on a busy 2-core CI machine
        srv = service.WorkerServer(**kwargs).start_background()
        made.append(srv)
        return srv, client.WorkerClient(srv.url, srv.token, timeout=120)

    yield make
    for srv in made:
        srv.stop(wait=True)


class Golden:
    """One conformance folder: its manifest, its arrays, and stand-in weights."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.manifest = json.loads((folder / "manifest.json").read_text())
        with np.load(folder / "golden.npz") as npz:
            self.arrays = {k: npz[k] for k in npz.files}

    def tensor(self, name: str) -> torch.Tensor:
        return torch.from_numpy(self.arrays[name])

    def pseudo_state_dict(self, model: torch.nn.Module) -> dict:
        spec = importlib.util.spec_from_file_location("pseudo_weights", self.folder.parent / "pseudo_weights.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.pseudo_state_dict(self.manifest["state_dict"], model.state_dict())


@pytest.fixture(scope="session")
def golden(shared):
    """golden('u2net') -> Golden for shared/conformance/u2net."""
    cache: dict[str, Golden] = {}

    def load(arch: str) -> Golden:
        if arch not in cache:
            cache[arch] = Golden(shared / "conformance" / arch)
        return cache[arch]

    return load
