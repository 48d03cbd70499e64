import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

def _data_dir() -> Path:
    d = os.environ.get("UF_DATA_DIR") or str(REPO.parent / "shared" / "data")
    return Path(d)

@pytest.fixture(scope="session")
def data_dir() -> Path:
    d = _data_dir()
    if not (d / "tinystories" / "stories.jsonl").is_file():
        pytest.fail(f"UF_DATA_DIR={d} does not hold tinystories/stories.jsonl; point it at the shared data folder")
    os.environ["UF_DATA_DIR"] = str(d)
    return d


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, data_dir) -> Path:
    "The whole smoke pipeline, run once per test session through the command-line runner."
    import subprocess, sys
    if os.environ.get("UF_TEST_SMOKE_RUN"):   # reuse a finished smoke run directory while iterating on tests
        return Path(os.environ["UF_TEST_SMOKE_RUN"])
    run_dir = tmp_path_factory.mktemp("smoke")
    r = subprocess.run([sys.executable, "-m", "universal_features.reproduce", "--no-progress", "--profile", "smoke",
                        "--run-dir", str(run_dir)], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    return run_dir


# Under pytest-xdist (scripts/test.sh runs one worker per core), the tests split into two groups of about equal time,
# each on its own worker, so that each costly run directory is built once: the tests of the smoke run, and all the
# others (among them the paper-shape run and the released stand-ins). The mark is set as each test is collected,
# before xdist's collection hook reads it.
def pytest_itemcollected(item):
    item.add_marker(pytest.mark.xdist_group("smoke" if "smoke_run" in getattr(item, "fixturenames", ()) else "others"))
