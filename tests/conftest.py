import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

def console_script(name: str) -> str:
    "A console script of the package (`[project.scripts]`: uf-reproduce, uf-train), where the install put it: beside this python."
    path = Path(sys.executable).with_name(name)
    if not path.is_file(): pytest.fail(f"no {path}: install the package with its console scripts (bash scripts/setup.sh, or pip install -e .)")
    return str(path)


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


def shared_run(tmp_path_factory, name: str, args: list[str], timeout: int = 1800) -> Path:
    """A run directory built once per test session through the command-line runner, and shared by every xdist worker.

    The first worker to ask builds it under a lock in the session's common temporary folder; the others wait for it
    and then read the same directory. A failed build is recorded, so the other workers fail at once with its output."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"): root = root.parent          # common to this session's workers
    run_dir, done, failed = root / name, root / f"{name}.done", root / f"{name}.failed"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if failed.exists(): pytest.fail(failed.read_text())
        if not done.exists():
            r = subprocess.run([console_script("uf-reproduce"), "--no-progress", *args,
                                "--run-dir", str(run_dir)], capture_output=True, text=True, timeout=timeout)
            if r.returncode:
                failed.write_text(f"building the shared {name} run failed:\n" + r.stdout[-4000:] + r.stderr[-4000:])
                pytest.fail(failed.read_text())
            done.touch()
    return run_dir


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, data_dir) -> Path:
    "The whole smoke pipeline, run once per test session through the command-line runner."
    if os.environ.get("UF_TEST_SMOKE_RUN"):   # reuse a finished smoke run directory while iterating on tests
        return Path(os.environ["UF_TEST_SMOKE_RUN"])
    return shared_run(tmp_path_factory, "smoke", ["--profile", "smoke"], timeout=900)


# Under pytest-xdist (scripts/test.sh runs one worker per core) the tests run in two lanes, one per worker, of about
# equal time: the tests that read the smoke run, and all the others (among them the paper-shape run and the released
# stand-ins). Each costly run directory is then built once. The mark is set as each test is collected, before xdist's
# collection hook reads it.
def pytest_itemcollected(item):
    item.add_marker(pytest.mark.xdist_group("smoke" if "smoke_run" in getattr(item, "fixturenames", ()) else "others"))
