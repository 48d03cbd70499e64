#!/usr/bin/env bash
# Set up, check that notebooks and package are in sync, and run the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export UF_DATA_DIR="${UF_DATA_DIR:-$(cd .. && pwd)/shared/data}"
before=$(git status --porcelain)
.venv/bin/nbdev-clean
.venv/bin/nbdev-export
after=$(git status --porcelain)
if [ "$before" != "$after" ]; then
  echo "nbdev-clean / nbdev-export changed files: edit the notebooks in nbs/, then run both and commit." >&2
  git status --porcelain >&2
  exit 1
fi
.venv/bin/python -m pytest "$@"
