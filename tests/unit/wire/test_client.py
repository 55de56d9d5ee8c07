"""The stdlib-only client (mattekit.wire.client): Python 3.8 syntax, starts a worker on demand, reuses it."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mattekit import wire
from mattekit.wire import client
from mattekit.wire.client import Pixels, WorkerError

SOURCE = Path(client.__file__)
WIRE = Path(wire.__file__).parent


@pytest.mark.parametrize("source", sorted(WIRE.glob("*.py")), ids=lambda path: path.stem)
def test_the_wire_package_is_stdlib_only_and_python38_syntax(source):
    """Every module of mattekit.wire: the package is copied whole beside the adapters, so its modules import
    the standard library and each other (relatively), nothing else."""
    tree = ast.parse(source.read_text(), feature_version=(3, 8))
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative imports only inside mattekit.wire
                named = [node.module] if node.module else [a.name for a in node.names]
                assert node.level == 1 and set(named) <= {p.stem for p in WIRE.glob("*.py")}, named
            else:
                modules.add(node.module.split(".")[0])
        elif isinstance(node, ast.FunctionDef):  # 3.8 cannot evaluate `X | Y` or list[int] annotations
            args = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
            assert node.returns is None and not any(a.annotation for a in args), f"annotation at line {node.lineno}"
        assert not isinstance(node, (ast.AnnAssign, ast.Match)), f"3.8-incompatible syntax at line {node.lineno}"
    assert modules <= set(sys.stdlib_module_names), modules - set(sys.stdlib_module_names)
    assert "from __future__" not in source.read_text()


def test_the_client_uses_the_protocol_module_installed_beside_it(tmp_path):
    """As installers lay the wire package out (GIMP: beside the plug-in; Blender: inside the add-on's package),
    with no mattekit."""
    flat, package = tmp_path / "flat", tmp_path / "addon" / "mattekit_addon"
    for folder in (flat, package):
        (folder / "mattekit_wire").mkdir(parents=True)
        for source in WIRE.glob("*.py"):
            (folder / "mattekit_wire" / source.name).write_bytes(source.read_bytes())
    (package / "__init__.py").write_text("from .mattekit_wire import client\n")
    script = (
        f"import sys; sys.path[:0] = [{str(flat)!r}, {str(package.parent)!r}]\n"
        "sys.modules['mattekit'] = None\n"  # any import of the real package fails
        "from mattekit_wire import client as a\nimport mattekit_addon.mattekit_wire.client as b\n"
        "print(a.protocol.__name__, b.protocol.__name__, a.Pixels(bytes(6), 1, 1, 3, 'u16'))"
    )
    out = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True)
    assert out.stdout.split() == [
        "mattekit_wire.protocol",
        "mattekit_addon.mattekit_wire.protocol",
        "Pixels(1x1x3",
        "u16)",
    ], out.stderr


def test_pixels_checks_its_size():
    Pixels(bytes(2 * 3 * 4 * 2), 3, 2, 4, "u16")
    with pytest.raises(ValueError, match="bytes given"):
        Pixels(bytes(10), 3, 2, 4, "u8")
    with pytest.raises(ValueError, match="dtype"):
        Pixels(bytes(24), 3, 2, 4, "u32")


def test_state_path_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MATTEKIT_WORKER_STATE", str(tmp_path / "x.json"))
    assert client.state_path() == str(tmp_path / "x.json")
    monkeypatch.delenv("MATTEKIT_WORKER_STATE")
    monkeypatch.setenv("MATTEKIT_HOME", str(tmp_path / "home"))
    assert client.state_path() == str(tmp_path / "home" / "worker.json")
    monkeypatch.delenv("MATTEKIT_HOME")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    if sys.platform.startswith("linux"):
        assert client.state_path() == str(tmp_path / "state" / "mattekit" / "worker.json")


def test_no_worker_gives_one_clear_sentence(tmp_path):
    path = str(tmp_path / "worker.json")
    with pytest.raises(WorkerError, match="No mattekit worker is running"):
        client.connect(path=path, start=False)
    with pytest.raises(WorkerError, match="No Python interpreter"):
        client.connect(python=str(tmp_path / "no-python"), path=path)
    # a state file left behind by a dead worker is not trusted
    Path(path).write_text(json.dumps({"url": "http://127.0.0.1:9", "token": "x"}))
    Path(path).chmod(0o600)  # as a worker writes it
    assert client.find_worker(path) is None


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX owners and modes")
def test_a_state_file_that_others_could_plant_or_read_is_refused(tmp_path, monkeypatch):
    """The client refuses a worker.json another local user could have planted or could read (it would send them the
    pixels)."""
    folder = tmp_path / "state"
    folder.mkdir(mode=0o700)
    path = folder / "worker.json"
    path.write_text(json.dumps({"url": "http://127.0.0.1:9", "token": "x"}))
    path.chmod(0o600)
    assert client.read_state(str(path))["token"] == "x"
    refusals = []
    for mode in (0o640, 0o604, 0o620, 0o602):
        path.chmod(mode)
        with pytest.raises(WorkerError, match=f"other users.*'chmod 600 {path}'") as err:
            client.connect(path=str(path), start=False)
        refusals.append(str(err.value))
    path.chmod(0o600)
    folder.chmod(0o777)
    with pytest.raises(WorkerError, match=f"folder {folder} .*'chmod 700 {folder}'") as err:
        client.connect(path=str(path), start=False)
    refusals.append(str(err.value))
    folder.chmod(0o700)
    uid = os.getuid()
    with monkeypatch.context() as patch:
        patch.setattr(os, "getuid", lambda: uid + 1)  # as if the file were another user's
        with pytest.raises(WorkerError, match=f"{path} belongs to another user.*rm {path}") as err:
            client.connect(path=str(path), start=False)
        refusals.append(str(err.value))
    assert all(message.count(". ") == 0 and message.endswith(".") for message in refusals), refusals
    assert client.read_state(str(path))["token"] == "x"


def test_an_adapter_connects_as_its_installer_recorded(monkeypatch, tmp_path):
    """The state file: $MATTEKIT_WORKER_STATE, else the record's; the record's settings reach the worker's
    environment unless set; the interpreter: the one named, else $MATTEKIT_PYTHON, else the record's."""
    for name in ("MATTEKIT_WORKER_STATE", "MATTEKIT_PYTHON", "MATTEKIT_OFFLINE"):
        monkeypatch.setenv(name, "")  # so that monkeypatch restores them, also what connect_recorded sets
        monkeypatch.delenv(name)
    monkeypatch.setenv("MATTEKIT_MIRROR", "/set/already")
    fake = tmp_path / "python"  # a worker that dies at start, printing the settings it was given
    fake.write_text('#!/bin/sh\necho "offline=$MATTEKIT_OFFLINE mirror=$MATTEKIT_MIRROR" >&2\nexit 3\n')
    fake.chmod(0o755)
    record = {
        "python": str(fake),
        "state_file": str(tmp_path / "recorded" / "worker.json"),
        "environment": {"MATTEKIT_OFFLINE": "1", "MATTEKIT_MIRROR": "/recorded"},
    }
    assert client.recorded_state_file(record) == record["state_file"]
    with pytest.raises(WorkerError, match="exit code 3.*offline=1 mirror=/set/already"):
        client.connect_recorded(record)
    assert (tmp_path / "recorded" / "worker.log").is_file()
    with pytest.raises(WorkerError, match="No Python interpreter"):
        client.connect_recorded(record, python=str(tmp_path / "no-python"))
    monkeypatch.setenv("MATTEKIT_WORKER_STATE", str(tmp_path / "x.json"))
    assert client.recorded_state_file(record) == str(tmp_path / "x.json")


def test_a_worker_that_fails_at_start_is_reported(tmp_path):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'mattekit: error: something specific went wrong' >&2\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(WorkerError, match="exit code 3.*something specific went wrong"):
        client.start_worker(str(fake), str(tmp_path / "w" / "worker.json"), wait=20)


def test_connect_starts_one_worker_and_reuses_it(tmp_path, monkeypatch):
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")  # a proxy setting must not capture loopback calls
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    path = str(tmp_path / "state" / "worker.json")
    workers, errors = [], []

    def one():
        try:
            workers.append(client.connect(python=sys.executable, path=path, idle_timeout=60))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    pids = {w.health()["pid"] for w in workers}
    assert len(pids) == 1, "concurrent clients must share one worker"
    (pid,) = pids
    assert pid != os.getpid()
    state = client.read_state(path)
    assert state["pid"] == pid and oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert client.connect(python=sys.executable, path=path).health()["pid"] == pid  # reused
    (out,) = workers[0].run(
        "enhance",
        [Pixels(bytes([10, 20, 30, 200]), 1, 1, 4)],
        {"white_balance": False, "contrast": False, "denoise": False},
    )
    assert out.data == bytes([10, 20, 30, 200])
    workers[0].shutdown()
    deadline = time.time() + 20
    while os.path.exists(path):
        assert time.time() < deadline, "the worker did not remove its state file on shutdown"
        time.sleep(0.1)
    with pytest.raises(WorkerError):
        workers[0].health(timeout=2)
    log = Path(path).parent / "worker.log"
    while "worker stopped" not in log.read_text():
        assert time.time() < deadline, "the worker did not finish its shutdown"
        time.sleep(0.1)


def test_the_started_worker_exits_when_idle(tmp_path):
    path = str(tmp_path / "worker.json")
    worker = client.start_worker(sys.executable, path, idle_timeout=1)
    deadline = time.time() + 30
    while client.find_worker(path) is not None:
        assert time.time() < deadline, "the worker did not exit after its idle timeout"
        time.sleep(0.2)
    # It stops answering first, then removes its state file on the way out.
    while os.path.exists(path):
        assert time.time() < deadline, "the worker left its state file behind"
        time.sleep(0.1)
    with pytest.raises(WorkerError):
        worker.health(timeout=2)
