#!/usr/bin/env bash
# Set up on first use, then run the whole inspection loop once (see 'defectlab demo --help').
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
exec "$root/.venv/bin/defectlab" demo "$@"
