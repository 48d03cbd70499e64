#!/usr/bin/env bash
# Create .venv if missing and install the project with its test dependencies (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
# Install exactly requirements.lock (made by scripts/lock.sh from pyproject.toml), then the project itself without
# dependencies. uv (a PyPI wheel, installed into the venv) is fast; without it, plain pip installs the same pins.
# UF_EXTRAS=none installs requirements-dev.lock: without the interop extra (sae-lens: wandb, transformer-lens, plotly),
# whose one test then skips.
if [ ! -f .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ] || [ requirements.lock -nt .venv/.installed ]; then
  LOCK=requirements.lock; [ "${UF_EXTRAS:-interop}" = none ] && LOCK=requirements-dev.lock
  FIND_LINKS=$(.venv/bin/python -m pip config get global.find-links 2>/dev/null || true)
  index=()   # the CPU torch: from a local wheel when pip's find-links has one, else from PyTorch's CPU index
  if [ -n "$FIND_LINKS" ] && ls "$FIND_LINKS"/torch-2.13.0+cpu-* >/dev/null 2>&1; then index=(--find-links "$FIND_LINKS")
  else index=(--extra-index-url "${UF_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}"); fi
  if .venv/bin/python -m uv --version >/dev/null 2>&1 || .venv/bin/python -m pip install --quiet --disable-pip-version-check uv; then
    .venv/bin/python -m uv pip sync --quiet --python .venv/bin/python --index-strategy unsafe-best-match "${index[@]}" "$LOCK"
    .venv/bin/python -m uv pip install --quiet --python .venv/bin/python --no-deps -e .
  else
    echo "note: uv is not available; installing the lock with pip (slower)"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --compile "${index[@]}" -r "$LOCK"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
  fi
  # uv leaves bytecode uncompiled, and where PYTHONDONTWRITEBYTECODE is set (this project's CI machines set it) Python never
  # caches it either: every process and notebook kernel would compile torch & co. from source again (import torch 8.4 s
  # against 3.6 s; a smoke run 398 s against 216 s). One import of every module the stages and tests load caches it
  # (30 s), far cheaper than compiling all 23,000 files of the venv (uv --compile-bytecode: setup 102 s against 41 s).
  env -u PYTHONDONTWRITEBYTECODE .venv/bin/python -c "
import importlib, pkgutil, universal_features
for m in pkgutil.iter_modules(universal_features.__path__): importlib.import_module('universal_features.' + m.name)
import ipykernel.kernelapp, matplotlib_inline.backend_inline, seaborn, transformers, IPython.core.display, pytest, xdist
import torch._dynamo  # the first torch.optim optimizer imports it
from universal_features.reproduce import import_papermill; import_papermill(); import nbclient, jupyter_client"
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
