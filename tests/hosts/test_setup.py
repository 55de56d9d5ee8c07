"""install/setup.py: the torch build per platform and driver, the venv's layout per OS, what it asks pip for and
when (the stamp), its dry run with nvidia-smi emulated, and one sentence for a bad option."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath, PureWindowsPath

import pytest

from checkout import install_module

ROOT = Path(__file__).resolve().parents[2]
SETUP = ROOT / "install" / "setup.py"
setup = install_module("setup")
CU = "https://download.pytorch.org/whl/"


@pytest.mark.parametrize(
    "platform, gpu, args, why, download",
    [
        # Linux x86_64 without an NVIDIA GPU: PyPI's torch there is the CUDA build, so the CPU index
        ("linux", None, ["torch==2.13.0", "--index-url", CU + "cpu"], "no NVIDIA GPU found", "0.2 GB"),
        (
            "linux",
            ("NVIDIA H100 80GB HBM3", "580.65.06"),
            ["torch==2.13.0", "--index-url", CU + "cu130"],
            "NVIDIA GPU NVIDIA H100 80GB HBM3, driver 580.65.06: installing torch==2.13.0 for CUDA (cu130 build)",
            "3.5 GB",
        ),
        (
            "win32",
            ("NVIDIA GeForce RTX 4090", "576.02"),
            ["torch==2.13.0", "--index-url", CU + "cu128"],
            "cu128 build",
            "3.0 GB",
        ),
        ("linux", ("Tesla T4", "535.104.05"), ["torch==2.13.0", "--index-url", CU + "cu126"], "cu126 build", "3.5 GB"),
        ("win32", ("Tesla K80", "472.12"), ["torch==2.13.0", "--index-url", CU + "cpu"], "older than 525", "0.2 GB"),
        ("win32", None, ["torch==2.13.0", "--index-url", CU + "cpu"], "the CPU build", "0.2 GB"),
        ("darwin", None, ["torch==2.13.0"], "macOS: installing torch==2.13.0", "0.1 GB"),
        (
            "darwin",
            ("NVIDIA GeForce GTX 1080", "418.163"),
            ["torch==2.13.0"],
            "MPS",
            "0.1 GB",
        ),  # no CUDA build for macOS
    ],
)
def test_the_torch_build_follows_the_platform_and_the_driver(platform, gpu, args, why, download):
    chosen, build, said = setup.torch_choice(platform, gpu)
    assert chosen == args and why in said
    assert setup.download_estimate(platform, build) == (
        f"about {download} to download (an estimate for this build from recent torch releases)"
    )


def test_torch_index_and_spec_override_the_choice():
    chosen, build, said = setup.torch_choice("linux", ("Tesla T4", "535.104.05"), "torch==2.13.0", "file:///wheels")
    assert chosen == ["torch==2.13.0", "--index-url", "file:///wheels"] and "TORCH_INDEX" in said
    assert build is None and setup.download_estimate("linux", build) == "download size unknown (the index's build)"
    assert setup.cuda_index("580.65.06") == "cu130" and setup.cuda_index("570.0") == "cu128"
    assert setup.cuda_index("524.9") is None and setup.cuda_index("unknown") is None


def _wheel(folder: Path, version: str) -> Path:
    """A minimal real wheel of torch ``version`` (pure Python, so any interpreter's pip accepts it) in ``folder``."""
    folder.mkdir(exist_ok=True)
    path = folder / f"torch-{version}-py3-none-any.whl"
    info = f"torch-{version.split('+')[0]}.dist-info"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: torch\nVersion: {version}\n")
        wheel.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        wheel.writestr(f"{info}/RECORD", "")
    return path


@pytest.mark.slow  # five pip runs; the quick subset has the found CPU wheel: test_the_dry_run_takes_a_local_wheel_of_its_build
def test_a_local_wheel_of_the_chosen_build_is_found_offline(tmp_path, monkeypatch):
    """pip's own --dry-run --no-index answers (no network): a +cpu wheel in its find-links serves the CPU build
    only; a wheel without a label (PyPI's Linux build is CUDA's) serves neither."""
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "wheels"))
    cpu = _wheel(tmp_path / "wheels", "2.13.0+cpu")
    assert setup.local_wheel(sys.executable, "torch==2.13.0", "cpu") == (cpu, cpu.stat().st_size)
    assert setup.local_wheel(sys.executable, "torch==2.13.0", "cu130") is None
    assert setup.local_wheel(sys.executable, "torch==2.13.0", None) is None
    cpu.unlink()
    _wheel(tmp_path / "wheels", "2.13.0")
    assert setup.local_wheel(sys.executable, "torch==2.13.0", "cpu") is None
    assert setup.local_wheel(sys.executable, "torch==2.13.0", "")[0].name == "torch-2.13.0-py3-none-any.whl"


def test_the_venvs_programs_per_os():
    assert setup.venv_program(PureWindowsPath("C:/m/.venv"), "python", "win32") == PureWindowsPath(
        "C:/m/.venv/Scripts/python.exe"
    )
    assert (
        str(setup.venv_program(PureWindowsPath("C:/m/.venv"), "mattekit", "win32"))
        == "C:\\m\\.venv\\Scripts\\mattekit.exe"
    )
    for platform in ("linux", "darwin"):
        assert setup.venv_program(PurePosixPath("/m/.venv"), "python", platform) == PurePosixPath("/m/.venv/bin/python")
    assert "Activate.ps1" in setup.activate_hint(PureWindowsPath("C:/m/.venv"), "win32")
    assert setup.activate_hint(PurePosixPath("/m/.venv"), "darwin") == "source /m/.venv/bin/activate"


def _run(root: Path, *args: str, path: str, **env: str) -> subprocess.CompletedProcess:
    """setup.py in a bare environment; pip's configuration files are left out unless ``env`` names one."""
    return subprocess.run(
        [sys.executable, str(root / "install" / "setup.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": path, "HOME": str(root), "PIP_CONFIG_FILE": os.devnull, **env},
    )


@pytest.mark.parametrize(
    "gpu, expected",
    [
        (None, "setup: dry run: pip install torch==2.13.0 --index-url " + CU + "cpu\n"),
        ("NVIDIA H100 80GB HBM3, 580.65.06", "setup: dry run: pip install torch==2.13.0 --index-url " + CU + "cu130\n"),
    ],
)
def test_the_dry_run_reads_nvidia_smi(tmp_path, gpu, expected):
    if gpu:
        (tmp_path / "nvidia-smi").write_text(f"#!/bin/sh\necho '{gpu}'\n")
        (tmp_path / "nvidia-smi").chmod(0o755)
    done = _run(ROOT, path=str(tmp_path), SETUP_DRY_RUN="1")
    assert done.returncode == 0 and done.stdout.endswith(expected), done.stderr
    assert ("NVIDIA H100" in done.stdout) == bool(gpu)
    assert ("about 3.5 GB" if gpu else "about 0.2 GB") + " to download (an estimate" in done.stdout


def test_the_dry_run_takes_a_local_wheel_of_its_build(tmp_path):
    """A machine whose pip finds torch's CPU wheel in its find-links (as this project's build machines do) installs
    that file, and says its real size."""
    wheel = _wheel(tmp_path / "wheels", "2.13.0+cpu")
    done = _run(ROOT, path=str(tmp_path), SETUP_DRY_RUN="1", PIP_FIND_LINKS=str(tmp_path / "wheels"))
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        f"setup: no NVIDIA GPU found (no nvidia-smi, or it lists none): installing torch==2.13.0, the CPU build, from "
        f"the local wheel {wheel} (pip's find-links): 0 MB, on this disk, no download\n"
        f"setup: dry run: pip install {wheel}\n"
    )


def test_a_bad_option_is_one_sentence(tmp_path):
    done = _run(ROOT, "--devv", path=str(tmp_path))
    assert done.returncode != 0 and done.stderr == "setup: unknown option --devv (use --dev or --help).\n"


def _tools(folder: Path, *names: str) -> str:
    """A PATH of one folder holding links to the host's ``names`` and nothing else: what the host's own PATH holds
    besides (an ``nvidia-smi``, even a stub one) cannot change the build setup.py chooses."""
    folder.mkdir()
    for name in names:
        (folder / name).symlink_to(shutil.which(name))
    return str(folder)


def test_torch_first_then_the_project_once_until_pyproject_changes(tmp_path):
    """A copy of the files setup.py reads and a stand-in venv whose python records what it is asked (pip's real
    run, minutes long, was issue 48's acceptance run, 2026-11-25): torch is installed only
    where it does not import, the project again only when pyproject.toml changed or --dev is asked. The PATH is the
    test's own (the stand-in's grep and touch), so a host with an NVIDIA GPU expects the same CPU build."""
    for name in ("install/setup.py", "pyproject.toml", "core/mattekit/machine.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    asked = tmp_path / "asked.txt"
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(
        f'#!/bin/sh\necho "$*" >> {asked}\n[ "$1" = -c ] && [ ! -e {tmp_path}/has-torch ] && exit 1\n'
        f'[ "$1" = -m ] && echo "$*" | grep -q torch== && touch {tmp_path}/has-torch\nexit 0\n'
    )
    python.chmod(0o755)
    path = _tools(tmp_path / "tools", "grep", "touch")

    def pip_calls(*args: str) -> list[str]:
        asked.write_text("")
        done = _run(tmp_path, *args, path=path)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[-1].startswith(
            f"mattekit is ready: {tmp_path}/.venv/bin/mattekit (run: source "
        )
        calls = [line for line in asked.read_text().splitlines() if line.startswith("-m pip")]
        queries = [line for line in calls if "--dry-run" in line]  # a local wheel? asked offline
        assert all("--no-index" in line for line in queries) and len(queries) == pip_calls.queries
        return [line for line in calls if line not in queries]

    pip_calls.queries = 1
    assert pip_calls() == [
        f"-m pip install --quiet torch==2.13.0 --index-url {CU}cpu",
        f"-m pip install --quiet -e {tmp_path}",
    ]
    pip_calls.queries = 0
    assert pip_calls() == []
    assert pip_calls("--dev") == [f"-m pip install --quiet -e {tmp_path}[dev]"]
    with (tmp_path / "pyproject.toml").open("a") as pyproject:
        pyproject.write("\n# changed\n")
    assert pip_calls("--dev") == [f"-m pip install --quiet -e {tmp_path}[dev]"]
