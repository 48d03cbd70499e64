#!/usr/bin/env bash
# Set up, check that notebooks and package are in sync, and run the tests.
#   bash scripts/test.sh [PYTEST ARGS]         the fast tier: every test but those marked slow (make test)
#   bash scripts/test.sh --all [PYTEST ARGS]   the whole suite, slow checks included (make test-all, CI)
set -euo pipefail
cd "$(dirname "$0")/.."
tier=(-m "not slow")
if [ "${1:-}" = "--all" ]; then tier=(); shift; fi
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
# The fast tier has little besides the smoke run to keep a second worker busy: the smoke run is built first, with every
# core, and the workers then share it (the whole suite builds it on one worker while the other runs the paper-shape check).
if [ ${#tier[@]} -gt 0 ] && [ -z "${UF_TEST_SMOKE_RUN:-}" ]; then
  smoke_tmp=$(mktemp -d); trap 'rm -rf "$smoke_tmp"' EXIT
  echo "building the smoke run (uf-reproduce --profile smoke) ..."
  start=$(date +%s)
  if .venv/bin/uf-reproduce --no-progress --profile smoke --run-dir "$smoke_tmp/smoke" \
       > "$smoke_tmp/smoke.log" 2>&1; then
    export UF_TEST_SMOKE_RUN="$smoke_tmp/smoke"; echo "smoke run built in $(( $(date +%s) - start )) s"
  else
    echo "the smoke run failed (the tests that need it build it again and report why):" >&2; tail -n 15 "$smoke_tmp/smoke.log" >&2
  fi
fi
# One pytest-xdist worker per core (UF_TEST_WORKERS changes it; 0 runs in this process), each with one math thread:
# two workers with two OpenMP threads each on two cores make PyTorch's small ops many times slower.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" MKL_NUM_THREADS="${MKL_NUM_THREADS:-1}"
.venv/bin/python -m pytest -n "${UF_TEST_WORKERS:-auto}" --dist loadgroup ${tier[@]+"${tier[@]}"} "$@"
