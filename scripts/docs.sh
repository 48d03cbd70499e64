#!/usr/bin/env bash
# Set up, run (or reuse) the reproduction of profile $PROFILE (default cpu), then build the docs site into _docs/.
# Cached stages are skipped, so after `make reproduce` this only builds the site. Extra arguments go to the builder.
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE="${PROFILE:-cpu}"
bash scripts/setup.sh
export UF_DATA_DIR="${UF_DATA_DIR:-$(cd .. && pwd)/shared/data}"
.venv/bin/uf-reproduce --profile "$PROFILE"
exec .venv/bin/python scripts/build_docs.py --run-dir "runs/$PROFILE" --out _docs "$@"
