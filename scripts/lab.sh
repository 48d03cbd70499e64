#!/usr/bin/env bash
# Set up, register the project's Jupyter kernel, then start JupyterLab on the notebooks (nbs/) at http://localhost:$PORT.
#   bash scripts/lab.sh [extra `jupyter lab` options]     PORT (default 8888), UF_DATA_DIR (default ../shared/data),
#                                                         UF_LAB_DIR (the folder served, default nbs)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export UF_DATA_DIR="${UF_DATA_DIR:-$(cd .. && pwd)/shared/data}"
# the notebooks run on the `universal-features` kernel (this .venv's python), the one papermill uses
.venv/bin/python -c "from universal_features.kernels import ensure_kernel; print('kernel:', ensure_kernel())"
root=(); [ "$(id -u)" != 0 ] || root=(--allow-root)   # containers and CI machines often run as root
exec .venv/bin/jupyter lab "${root[@]}" --ServerApp.root_dir="${UF_LAB_DIR:-nbs}" --ServerApp.ip=127.0.0.1 --ServerApp.port="${PORT:-8888}" \
  --LabApp.news_url=None --LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate "$@"
