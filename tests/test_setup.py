"""install/setup.py: the torch build per platform and driver, the venv's layout per OS, what it asks pip for and
when (the stamp), its dry run with nvidia-smi emulated, and one sentence for a bad option."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath, PureWindowsPath

import pytest

from test_install_gimp import install_module

ROOT = Path(__file__).resolve().parents[1]
SETUP = ROOT / "install" / "setup.py"
setup = install_module("setup")
CU = "https://download.pytorch.org/whl/"


@pytest.mark.parametrize("platform, gpu, args, why", [
    ("linux", None, ["torch==2.13.0"], "no NVIDIA GPU found"),
    ("linux", ("NVIDIA H100 80GB HBM3", "580.65.06"), ["torch==2.13.0", "--index-url", CU + "cu130"],
     "NVIDIA GPU NVIDIA H100 80GB HBM3, driver 580.65.06: installing torch==2.13.0 for CUDA (cu130 build)"),
    ("win32", ("NVIDIA GeForce RTX 4090", "576.02"), ["torch==2.13.0", "--index-url", CU + "cu128"], "cu128 build"),
    ("linux", ("Tesla T4", "535.104.05"), ["torch==2.13.0", "--index-url", CU + "cu126"], "cu126 build"),
    ("win32", ("Tesla K80", "472.12"), ["torch==2.13.0"], "older than 525"),
    ("win32", None, ["torch==2.13.0"], "(CPU)"),
    ("darwin", None, ["torch==2.13.0"], "macOS: installing torch==2.13.0 as it comes"),
    ("darwin", ("NVIDIA GeForce GTX 1080", "418.163"), ["torch==2.13.0"], "MPS"),  # no CUDA build for macOS
])
def test_the_torch_build_follows_the_platform_and_the_driver(platform, gpu, args, why):
    chosen, said = setup.torch_choice(platform, gpu)
    assert chosen == args and why in said


def test_torch_index_and_spec_override_the_choice():
    chosen, said = setup.torch_choice("linux", ("Tesla T4", "535.104.05"), "torch==2.13.0", "file:///wheels")
    assert chosen == ["torch==2.13.0", "--index-url", "file:///wheels"] and "TORCH_INDEX" in said
    assert setup.cuda_index("580.65.06") == "cu130" and setup.cuda_index("570.0") == "cu128"
    assert setup.cuda_index("524.9") is None and setup.cuda_index("unknown") is None


def test_the_venvs_programs_per_os():
    assert setup.venv_program(PureWindowsPath("C:/m/.venv"), "python", "win32") == PureWindowsPath("C:/m/.venv/Scripts/python.exe")
    assert str(setup.venv_program(PureWindowsPath("C:/m/.venv"), "mattekit", "win32")) == "C:\\m\\.venv\\Scripts\\mattekit.exe"
    for platform in ("linux", "darwin"):
        assert setup.venv_program(PurePosixPath("/m/.venv"), "python", platform) == PurePosixPath("/m/.venv/bin/python")
    assert "Activate.ps1" in setup.activate_hint(PureWindowsPath("C:/m/.venv"), "win32")
    assert setup.activate_hint(PurePosixPath("/m/.venv"), "darwin") == "source /m/.venv/bin/activate"


def _run(root: Path, *args: str, path: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(root / "install" / "setup.py"), *args], capture_output=True, text=True,
                          timeout=120, env={"PATH": path, "HOME": str(root), **env})


@pytest.mark.parametrize("gpu, expected", [
    (None, "setup: dry run: pip install torch==2.13.0\n"),
    ("NVIDIA H100 80GB HBM3, 580.65.06", "setup: dry run: pip install torch==2.13.0 --index-url " + CU + "cu130\n"),
])
def test_the_dry_run_reads_nvidia_smi(tmp_path, gpu, expected):
    if gpu:
        (tmp_path / "nvidia-smi").write_text(f"#!/bin/sh\necho '{gpu}'\n")
        (tmp_path / "nvidia-smi").chmod(0o755)
    done = _run(ROOT, path=str(tmp_path), SETUP_DRY_RUN="1")
    assert done.returncode == 0 and done.stdout.endswith(expected), done.stderr
    assert ("NVIDIA H100" in done.stdout) == bool(gpu)


def test_a_bad_option_is_one_sentence(tmp_path):
    done = _run(ROOT, "--devv", path=str(tmp_path))
    assert done.returncode != 0 and done.stderr == "setup: unknown option --devv (use --dev or --help).\n"


def test_torch_first_then_the_project_once_until_pyproject_changes(tmp_path):
    """A copy of the files setup.py reads and a stand-in venv whose python records what it is asked (pip's real
    run, minutes long, is the acceptance run of docs/benchmarks.md): torch is installed only where it does not
    import, the project again only when pyproject.toml changed or --dev is asked."""
    for name in ("install/setup.py", "pyproject.toml", "core/mattekit/machine.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    asked = tmp_path / "asked.txt"
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\necho "$*" >> {asked}\n[ "$1" = -c ] && [ ! -e {tmp_path}/has-torch ] && exit 1\n'
                      f'[ "$1" = -m ] && echo "$*" | grep -q torch== && touch {tmp_path}/has-torch\nexit 0\n')
    python.chmod(0o755)

    def pip_calls(*args: str) -> list[str]:
        asked.write_text("")
        done = _run(tmp_path, *args, path=os.environ["PATH"])
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[-1].startswith(f"mattekit is ready: {tmp_path}/.venv/bin/mattekit (run: source ")
        return [line for line in asked.read_text().splitlines() if line.startswith("-m pip")]

    assert pip_calls() == ["-m pip install --quiet torch==2.13.0", f"-m pip install --quiet -e {tmp_path}"]
    assert pip_calls() == []
    assert pip_calls("--dev") == [f"-m pip install --quiet -e {tmp_path}[dev]"]
    with (tmp_path / "pyproject.toml").open("a") as pyproject:
        pyproject.write("\n# changed\n")
    assert pip_calls("--dev") == [f"-m pip install --quiet -e {tmp_path}[dev]"]
