#!/usr/bin/env python
"""Write environment.yml (conda) from pyproject.toml, so that the two cannot drift.

    python scripts/environment.py          # rewrite environment.yml
    python scripts/environment.py --check  # exit 1 if environment.yml differs from what pyproject.toml gives
"""
from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXTRAS = ("dev",)   # what `make test` installs; a conda user gets the same environment


def render(pyproject: Path = REPO / "pyproject.toml") -> str:
    "environment.yml text: python and pip, then every dependency of pyproject.toml and its extras, in its order."
    proj = tomllib.loads(pyproject.read_text())["project"]
    deps = list(proj["dependencies"]) + [d for e in EXTRAS for d in proj.get("optional-dependencies", {}).get(e, [])]
    python = proj["requires-python"].lstrip(">=~")
    lines = ["# Generated from pyproject.toml by scripts/environment.py: do not edit; run `python scripts/environment.py`.",
             "# conda env create -f environment.yml && conda activate universal_features && pip install -e . --no-deps",
             "name: universal_features", "channels:", "  - conda-forge", "dependencies:",
             f"  - python>={python}", "  - pip", "  - pip:"] + [f"      - {d}" for d in deps]
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
