#!/usr/bin/env python
"""Write environment.yml (conda) from requirements.lock (itself made from pyproject.toml), so that they cannot drift.

    python scripts/environment.py          # rewrite environment.yml
    python scripts/environment.py --check  # exit 1 if environment.yml differs from what the lock gives
"""
from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def render(lock: Path = REPO / "requirements.lock", pyproject: Path = REPO / "pyproject.toml") -> str:
    "environment.yml text: the lock's Python, pip, and every pinned package of the lock (the CPU torch from its index)."
    tomllib.loads(pyproject.read_text())   # the lock is made from it: a broken pyproject.toml fails here first
    pins = [l.strip() for l in lock.read_text().splitlines() if l.strip() and not l.startswith(("#", "-"))]
    lines = ["# Generated from requirements.lock by scripts/environment.py: do not edit; run `bash scripts/lock.sh`.",
             "# conda env create -f environment.yml && conda activate universal_features && pip install -e . --no-deps",
             "name: universal_features", "channels:", "  - conda-forge", "dependencies:",
             "  - python=3.11", "  - pip", "  - pip:", "      - --extra-index-url https://download.pytorch.org/whl/cpu"] + [f"      - {d}" for d in pins]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only compare; exit 1 when environment.yml is stale")
    a = ap.parse_args(argv)
    path, text = REPO / "environment.yml", render()
    if a.check:
        if path.read_text() != text:
            print("environment.yml is stale: run `python scripts/environment.py`", file=sys.stderr); return 1
        return 0
    tmp = path.with_name(".environment.yml.tmp"); tmp.write_text(text); tmp.replace(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
