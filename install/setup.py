#!/usr/bin/env python3
"""Set up mattekit in ./.venv, on Linux, macOS or Windows: torch first (the build this machine can use), then the
project itself, editable. Idempotent: a second run only re-installs the project when pyproject.toml changed.

    python3 install/setup.py          the command-line tool and the worker (Windows: py install\\setup.py)
    python3 install/setup.py --dev    plus what the tests need

The torch build follows the machine: on Linux and Windows with an NVIDIA GPU (nvidia-smi lists one), the CUDA build
its driver runs (PyTorch's cu130 / cu128 / cu126 index), else the CPU build from PyTorch's CPU index (PyPI's Linux
wheel is the CUDA build, gigabytes of NVIDIA libraries); on macOS PyPI's wheel, which runs on Apple's GPU (MPS). A
wheel of that build in pip's configured find-links (a machine's own wheels) is taken from there. It says which, why,
and the download: the wheel's size where it is local, else an estimate for the build (sizes are not asked of an index).
Environment: PYTHON (the interpreter that makes the venv, default: the one running this), TORCH_SPEC (default
torch==2.13.0), TORCH_INDEX (a pip index URL for torch, instead of the one chosen), SETUP_DRY_RUN=1 (print the torch
choice, install nothing). Standard library only, Python 3.10 or newer.
"""

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TORCH_SPEC = "torch==2.13.0"
TORCH_WHEELS = "https://download.pytorch.org/whl/"
# The newest of PyTorch's CUDA indexes whose minimum driver a driver meets (CUDA 13.0: 580; 12.8: 570; 12.x on
# older drivers through CUDA's minor-version compatibility: 525), by the driver's major version.
CUDA_INDEXES = ((580, "cu130"), (570, "cu128"), (525, "cu126"))


def cuda_index(driver):
    """The CUDA build a driver (a version such as "575.51.03") runs: "cu130", "cu128", "cu126", or None (too old)."""
    major = driver.split(".")[0]
    if not major.isdigit():
        return None
    return next((tag for least, tag in CUDA_INDEXES if int(major) >= least), None)


CPU_INDEX = TORCH_WHEELS + "cpu"
# What installing torch fetches, torch and its dependencies, in GB, by OS and build: an ESTIMATE from recent torch
# releases (CPU: a ~0.2 GB wheel, ~0.1 GB on macOS arm64; CUDA on Linux: a ~1 GB wheel plus ~2.5 GB of nvidia-*
# wheels; on Windows one ~3 GB wheel), not asked of the index; this machine's local CPU wheel is 0.19 GB.
DOWNLOAD_GB = {
    ("darwin", ""): 0.1,
    ("linux", "cpu"): 0.2,
    ("win32", "cpu"): 0.2,
    ("linux", "cuda"): 3.5,
    ("win32", "cuda"): 3.0,
}


def torch_choice(platform, gpu, spec=TORCH_SPEC, index=None):
    """(pip's arguments for torch, the build, why in one sentence) on ``platform`` (sys.platform's value) with
    ``gpu``, the first (name, driver version) nvidia-smi lists or None; ``index``: a pip index URL that overrides the
    choice. The build: "cpu", "cu130" / "cu128" / "cu126", "" (macOS's PyPI wheel) or None (TORCH_INDEX's, unknown)."""
    if index:
        return [spec, "--index-url", index], None, "torch from TORCH_INDEX (%s): %s" % (index, spec)
    if platform == "darwin":
        return [spec], "", "macOS: installing %s (it runs on Apple's GPU through MPS where there is one)" % spec
    cpu = [spec, "--index-url", CPU_INDEX]
    if gpu is None:
        return cpu, "cpu", "no NVIDIA GPU found (no nvidia-smi, or it lists none): installing %s, the CPU build" % spec
    name, driver = gpu
    tag = cuda_index(driver)
    if tag is None:
        return (
            cpu,
            "cpu",
            (
                "NVIDIA GPU %s, but its driver %s is older than 525, the oldest any CUDA 12 build of torch "
                "runs on: installing %s, the CPU build (update the driver, remove .venv and run this again "
                "for the GPU)" % (name, driver, spec)
            ),
        )
    return (
        [spec, "--index-url", TORCH_WHEELS + tag],
        tag,
        "NVIDIA GPU %s, driver %s: installing %s for CUDA (%s build)" % (name, driver, spec, tag),
    )


def download_estimate(platform, build):
    """What installing ``build`` of torch on ``platform`` downloads, as a sentence's end: an estimate, said as one."""
    kind = "cuda" if build and build.startswith("cu") else build
    gigabytes = DOWNLOAD_GB.get(("linux" if platform.startswith("linux") else platform, kind))
    if gigabytes is None:
        return "download size unknown (the index's build)"
    return "about %.1f GB to download (an estimate for this build from recent torch releases)" % gigabytes


def local_wheel(python, spec, build):
    """(path, bytes) of a torch wheel for ``spec`` of ``build`` (its version's local label: "cpu", "cu128", "" for
    none) that pip finds without any index (its configured find-links, a machine's own wheels), or None. Asks pip's
    ``install --dry-run --no-index --report``: offline, installs nothing."""
    if build is None:
        return None
    asked = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--quiet",
            "--no-index",
            "--no-deps",
            "--ignore-installed",
            "--report",
            "-",
            spec,
        ],
        capture_output=True,
        text=True,
    )
    try:
        found = json.loads(asked.stdout)["install"][0]
        version, url = found["metadata"]["version"], found["download_info"]["url"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    parsed = urllib.parse.urlparse(url)
    if version.partition("+")[2] != build or parsed.scheme != "file":
        return None
    path = Path(urllib.request.url2pathname(parsed.path))
    return (path, path.stat().st_size) if path.is_file() else None


def venv_program(venv, name, platform):
    """The path of program ``name`` ("python", "mattekit") in ``venv`` (a Path) as ``platform`` lays a venv out."""
    if platform == "win32":
        return venv / "Scripts" / (name + ".exe")
    return venv / "bin" / name


def activate_hint(venv, platform):
    """How to put the venv's programs on PATH, on ``platform``."""
    if platform == "win32":
        return "%s (cmd) or %s (PowerShell)" % (venv / "Scripts" / "activate.bat", venv / "Scripts" / "Activate.ps1")
    return "source %s" % (venv / "bin" / "activate")


def nvidia_gpu():
    """The first (name, driver version) nvidia-smi lists, or None: mattekit.machine's reading of it, loaded from
    its file (it is standard library only; the package itself is not installed yet)."""
    spec = importlib.util.spec_from_file_location("mattekit_machine", ROOT / "core" / "mattekit" / "machine.py")
    machine = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(machine)
    return next(iter(machine.nvidia_gpus()), None)


def pip(python, *args):
    """Run ``python -m pip install --quiet ARGS``; SystemExit with one sentence when it fails."""
    done = subprocess.run([str(python), "-m", "pip", "install", "--quiet", *args])
    if done.returncode != 0:
        raise SystemExit(
            "setup: pip could not install %s (exit status %d; its messages are above)."
            % (" ".join(args), done.returncode)
        )


def stamp_text(root, extras):
    """What the stamp holds once the project is installed: pyproject.toml's hash, the extras and the clone's path
    (an editable install points at this clone)."""
    digest = hashlib.sha256((root / "pyproject.toml").read_bytes()).hexdigest()[:16]
    return "%s%s %s" % (digest, extras, root)


def torch_plan(platform, gpu, env, python):
    """(pip's arguments for torch, what to say: the choice and its download) on ``platform`` with ``gpu``; ``python``
    is the interpreter whose pip is asked for a local wheel of the chosen build."""
    spec = env.get("TORCH_SPEC") or TORCH_SPEC
    args, build, why = torch_choice(platform, gpu, spec, env.get("TORCH_INDEX"))
    local = local_wheel(python, spec, build)
    if local is None:
        source = args[args.index("--index-url") + 1] if "--index-url" in args else "PyPI"
        return args, "setup: %s, from %s: %s" % (why, source, download_estimate(platform, build))
    path, size = local
    return [str(path)], "setup: %s, from the local wheel %s (pip's find-links): %.0f MB, on this disk, no download" % (
        why,
        path,
        size / 1e6,
    )


def set_up(extras, platform, env):
    """Make the venv, install torch as chosen, then the project (when the stamp says it changed); returns 0."""
    gpu = None if platform == "darwin" else nvidia_gpu()
    venv = ROOT / ".venv"
    python = venv_program(venv, "python", platform)
    if env.get("SETUP_DRY_RUN") == "1":
        asked = python if python.exists() else env.get("PYTHON") or sys.executable
        torch_args, said = torch_plan(platform, gpu, env, asked)
        print(said)
        print("setup: dry run: pip install %s" % " ".join(torch_args))
        return 0
    if not python.exists():
        made = subprocess.run([env.get("PYTHON") or sys.executable, "-m", "venv", str(venv)])
        if made.returncode != 0:
            raise SystemExit(
                "setup: could not make the virtual environment %s (exit status %d)." % (venv, made.returncode)
            )
    has_torch = subprocess.run(
        [str(python), "-c", "import torch; print(torch.version.cuda or '')"], capture_output=True, text=True
    )
    if has_torch.returncode != 0:
        torch_args, said = torch_plan(platform, gpu, env, python)
        print(said, flush=True)
        pip(python, *torch_args)
    elif gpu is not None and not has_torch.stdout.strip():
        print(
            "setup: the venv's torch is a CPU build although this machine has an NVIDIA GPU; remove %s and run "
            "again to get the CUDA build" % venv,
            file=sys.stderr,
        )
    stamp, wanted = venv / ".mattekit-installed", stamp_text(ROOT, extras)
    if not stamp.exists() or stamp.read_text().strip() != wanted:
        pip(python, "-e", str(ROOT) + extras)
        stamp.write_text(wanted + "\n")
    print(
        "mattekit is ready: %s (run: %s, then mattekit and python are the project's)"
        % (venv_program(venv, "mattekit", platform), activate_hint(venv, platform))
    )
    return 0


def main(argv=None):
    args = sys.argv[1:] if argv is None else argv
    if sys.version_info < (3, 10):
        raise SystemExit("setup: mattekit needs Python 3.10 or newer; this is %d.%d." % sys.version_info[:2])
    unknown = [a for a in args if a not in ("--dev", "-h", "--help")]
    if unknown:
        raise SystemExit("setup: unknown option %s (use --dev or --help)." % unknown[0])
    if "-h" in args or "--help" in args:
        print(__doc__.strip())
        return 0
    return set_up("[dev]" if "--dev" in args else "", sys.platform, os.environ)


if __name__ == "__main__":
    sys.exit(main())
