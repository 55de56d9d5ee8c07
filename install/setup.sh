#!/usr/bin/env bash
# Set up mattekit in ./.venv: torch==2.13.0 first (any other spec pulls gigabytes of CUDA wheels
# on CPU machines), then the project itself, editable. Idempotent: a second run only re-installs
# the project when pyproject.toml changed.
#   bash install/setup.sh          the command-line tool and the worker
#   bash install/setup.sh --dev    plus what the tests need
# The torch build follows the machine: with an NVIDIA GPU (nvidia-smi lists one) the CUDA build its driver runs
# (PyTorch's cu130 / cu128 / cu126 index), else the CPU build; it says which, and why.
# Environment: PYTHON (interpreter for the venv, default python3), TORCH_SPEC (default torch==2.13.0),
# TORCH_INDEX (a pip index URL for torch, instead of the one chosen), SETUP_DRY_RUN=1 (print the torch choice, install nothing).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
extras=""
for arg in "$@"; do
  case "$arg" in
    --dev) extras="[dev]" ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option $arg (use --dev or --help)" >&2; exit 2 ;;
  esac
done
# The CUDA build a driver runs: the newest of PyTorch's CUDA indexes whose minimum Linux driver it meets
# (CUDA 13.0: 580; 12.8: 570; 12.x on older drivers through CUDA's minor-version compatibility: 525).
cuda_index() {  # $1: driver version such as 575.51.03 -> cu130 | cu128 | cu126 | "" (too old)
  local major=${1%%.*}
  if [ "$major" -ge 580 ] 2>/dev/null; then echo cu130
  elif [ "$major" -ge 570 ] 2>/dev/null; then echo cu128
  elif [ "$major" -ge 525 ] 2>/dev/null; then echo cu126
  fi
}
torch_spec="${TORCH_SPEC:-torch==2.13.0}"
torch_args=("$torch_spec")
gpu=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -n 1 || true)
if [ -n "${TORCH_INDEX:-}" ]; then
  torch_args+=(--index-url "$TORCH_INDEX")
  why="torch from TORCH_INDEX ($TORCH_INDEX): $torch_spec"
elif [ -n "$gpu" ]; then
  name=${gpu%,*}; driver=${gpu##*, }
  tag=$(cuda_index "$driver")
  if [ -n "$tag" ]; then
    torch_args+=(--index-url "https://download.pytorch.org/whl/$tag")
    why="NVIDIA GPU $name, driver $driver: installing $torch_spec for CUDA ($tag build)"
  else
    why="NVIDIA GPU $name, but its driver $driver is older than 525, the oldest any CUDA 12 build of torch runs on: installing $torch_spec as it comes (update the driver for the GPU)"
  fi
else
  why="no NVIDIA GPU found (no nvidia-smi, or it lists none): installing $torch_spec (CPU)"
fi
if [ "${SETUP_DRY_RUN:-}" = 1 ]; then
  echo "setup.sh: $why"
  echo "setup.sh: dry run: pip install ${torch_args[*]}"
  exit 0
fi
venv="$root/.venv"
py="$venv/bin/python"
if [ ! -x "$py" ]; then
  "${PYTHON:-python3}" -m venv "$venv"
fi
if ! "$py" -c "import torch" 2>/dev/null; then
  echo "setup.sh: $why"
  "$py" -m pip install --quiet "${torch_args[@]}"
elif [ -n "$gpu" ] && [ "$("$py" -c 'import torch; print(torch.version.cuda or "")')" = "" ]; then
  echo "setup.sh: the venv's torch is a CPU build although this machine has an NVIDIA GPU; remove $venv and run again to get the CUDA build" >&2
fi
stamp="$venv/.mattekit-installed"
want="$(cat "$root/pyproject.toml" | sha256sum | cut -c1-16)$extras $root"  # an editable install points at this clone
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$py" -m pip install --quiet -e "$root$extras"
  echo "$want" > "$stamp"
fi
echo "mattekit is ready: $venv/bin/mattekit (run: source $venv/bin/activate, then mattekit and python are the project's)"
