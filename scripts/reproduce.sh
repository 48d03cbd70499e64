#!/usr/bin/env bash
# Set up, then regenerate figures/ and paper/ by executing the stage notebooks (default profile: cpu).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export UF_DATA_DIR="${UF_DATA_DIR:-$(cd .. && pwd)/shared/data}"
exec .venv/bin/uf-reproduce "$@"
