#!/usr/bin/env bash
# Create .venv if missing and install the project with its test dependencies (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
if [ ! -f .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ]; then
  # torch is pinned in pyproject.toml (2.13.0): an unpinned torch pulls a multi-GB CUDA build
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
  touch .venv/.installed
fi
# The Lua corpus comes from Debian packages (apt-get download): apt must know them.
if command -v apt-get >/dev/null 2>&1 && ! apt-cache show lua-penlight >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then apt-get update -qq; else echo "note: run 'sudo apt-get update' so apt-get download finds the Lua packages"; fi
fi
# The docs test (tests/test_docs.py) opens the built site in headless Chromium: Debian's chromium + chromium-driver.
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    if ! apt-cache show chromium-driver >/dev/null 2>&1; then apt-get update -qq; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver
  else
    echo "note: the docs test needs /usr/bin/chromium and /usr/bin/chromedriver: run 'sudo apt-get install chromium chromium-driver' (or 'bash scripts/setup.sh' as root)"
  fi
fi
