#!/usr/bin/env bash
# Set up mattekit in ./.venv: torch==2.13.0 first (any other spec pulls gigabytes of CUDA wheels
# on CPU machines), then the project itself, editable. Idempotent: a second run only re-installs
# the project when pyproject.toml changed.
#   bash install/setup.sh          the command-line tool and the worker
#   bash install/setup.sh --dev    plus what the tests need
# Environment: PYTHON (interpreter for the venv, default python3), TORCH_SPEC (default torch==2.13.0).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
extras=""
for arg in "$@"; do
  case "$arg" in
    --dev) extras="[dev]" ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option $arg (use --dev or --help)" >&2; exit 2 ;;
  esac
done
venv="$root/.venv"
py="$venv/bin/python"
if [ ! -x "$py" ]; then
  "${PYTHON:-python3}" -m venv "$venv"
fi
if ! "$py" -c "import torch" 2>/dev/null; then
  "$py" -m pip install --quiet "${TORCH_SPEC:-torch==2.13.0}"
fi
stamp="$venv/.mattekit-installed"
want="$(cat "$root/pyproject.toml" | sha256sum | cut -c1-16)$extras"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$py" -m pip install --quiet -e "$root$extras"
  echo "$want" > "$stamp"
fi
echo "mattekit is ready: $venv/bin/mattekit (run: source $venv/bin/activate, then mattekit and python are the project's)"
