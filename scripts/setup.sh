#!/usr/bin/env bash
# Create or refresh the project's virtual environment in .venv.
# Re-installs only when pyproject.toml changed since the last set-up.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
stamp="$venv/.installed-$(sha256sum "$root/pyproject.toml" | cut -c1-16)"
python="${PYTHON:-python3}"

if [[ -f "$stamp" ]]; then
    exit 0
fi

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "error: defectlab needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
    exit 1
fi

echo "setting up $venv (first run only; takes a few minutes)" >&2
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
# The pinned CPU build of torch first (machines of this kind keep its wheel on disk);
# an unpinned 'torch' would pull a CUDA build of several GB.
"$venv/bin/python" -m pip install --quiet "torch==2.13.0"
"$venv/bin/python" -m pip install --quiet -e "$root[test]"
rm -f "$venv"/.installed-*
touch "$stamp"
