"""Every notebook's examples run: the stage notebooks' run in every pipeline run (papermill executes them whole); the
other notebooks' run here, with nbdev's test runner (issue 26.7: one had been failing unnoticed)."""
import subprocess
import sys
from pathlib import Path

import pytest

from universal_features.reproduce import discover_stages

ROOT = Path(__file__).resolve().parents[1]
STAGES = {s.notebook.name for s in discover_stages(ROOT / "nbs")}
OTHERS = sorted(p.name for p in (ROOT / "nbs").glob("[0-9]*.ipynb") if p.name not in STAGES)


def test_every_notebook_is_a_stage_or_tested_here():
    assert len(OTHERS) >= 15 and "05d_resampling.ipynb" in OTHERS and "06_matching.ipynb" not in OTHERS


@pytest.mark.slow
@pytest.mark.parametrize("name", OTHERS)
def test_notebook_examples_run(name):
    nbdev_test = Path(sys.executable).with_name("nbdev-test")
    r = subprocess.run([str(nbdev_test), f"nbs/{name}"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "Success" in r.stdout + r.stderr, (r.stdout + r.stderr)[-3000:]
