"The repository's own consistency: generated files agree with their sources."
import os
import importlib.util
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _script(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod


def _pins() -> dict[str, str]:
    from packaging.utils import canonicalize_name
    lines = (REPO / "requirements.lock").read_text().splitlines()
    return {canonicalize_name(l.split("==")[0]): l.split("==")[1].strip() for l in lines if "==" in l and not l.startswith("#")}


def test_lock_pins_every_dependency_within_its_specifier():
    "requirements.lock is current: every dependency of pyproject.toml (and its extras) is pinned to a version it allows."
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
    proj = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = _pins()
    for spec in proj["dependencies"] + [d for e in proj["optional-dependencies"].values() for d in e]:
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not in requirements.lock: run `bash scripts/lock.sh`"
        assert req.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} breaks {spec}: run `bash scripts/lock.sh`"
    assert pins["torch"] == "2.13.0+cpu" and not any(n.startswith("nvidia") for n in pins)   # the CPU build, no CUDA wheels


def test_environment_yml_is_generated_from_the_lock():
    env = _script("environment")
    assert (REPO / "environment.yml").read_text() == env.render(), "run `python scripts/environment.py`"
    assert all(f"      - {n}=={v}\n" in env.render() for n, v in _pins().items() if n != "torch") and "torch==2.13.0+cpu" in env.render()


def test_nbdev_settings_point_at_files_that_exist():
    nbdev = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["nbdev"]
    assert (REPO / nbdev["nbs_path"]).is_dir() and (REPO / nbdev["lib_path"]).is_dir()
    if "readme_nb" in nbdev: assert (REPO / nbdev["nbs_path"] / nbdev["readme_nb"]).is_file()
    assert "tags" in nbdev["allowed_cell_metadata_keys"]


def test_the_dev_lock_is_the_full_lock_without_the_interop_extra():
    dev = dict(l.strip().split("==") for l in (REPO / "requirements-dev.lock").read_text().splitlines() if "==" in l and not l.startswith("#"))
    full = _pins()
    assert "sae-lens" not in dev and "wandb" not in dev and "sae-lens" in full
    assert {k: full.get(k) for k in dev} == dev, "run `bash scripts/lock.sh`: the two locks disagree"


def test_xdist_groups_take_effect(request):
    "Under scripts/test.sh's workers, every test carries its group: else each worker builds the smoke run itself."
    if os.environ.get("PYTEST_XDIST_WORKER") and request.config.getvalue("loadgroup"):
        assert request.node.nodeid.endswith("@others"), request.node.nodeid


def test_every_module_fits_in_450_lines():
    "A module that grows past 450 lines is split along its seams (as matching/correlation and config/config_rules were)."
    root = Path(__file__).resolve().parents[1] / "universal_features"
    long = {p.name: n for p in root.glob("*.py") if p.name != "_modidx.py" and (n := len(p.read_text().splitlines())) > 450}
    assert not long, f"modules over 450 lines: {long}"


def test_outputs_kept_in_the_notebooks_stay_small():
    "The outputs written back into nbs/ weigh under 600 KB together (figures at full size are in figures/)."
    import json as _json
    nbs = Path(__file__).resolve().parents[1] / "nbs"
    size = sum(len(_json.dumps(o)) for p in nbs.glob("*.ipynb") for c in _json.loads(p.read_text())["cells"] for o in c.get("outputs", []))
    assert size < 600 * 1024, f"{size / 1024:.0f} KB of outputs in nbs/"



def test_entry_points_are_console_scripts_and_no_module_has_a_main_guard():
    "uf-reproduce and uf-train are [project.scripts]; nothing runs a module as `python -m` (no module has a __main__ guard)."
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"uf-reproduce": "universal_features.reproduce:main", "uf-train": "universal_features.train:main"}
    for target in scripts.values():
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func))
    guarded = [p.name for p in (REPO / "universal_features").glob("*.py") if "__name__ ==" in p.read_text()]
    assert not guarded, f"{guarded}: entry points are console scripts, not `python -m` modules"
    texts = [*REPO.glob("scripts/*"), *REPO.glob("tests/*.py"), *REPO.glob("benchmarks/*.py"), REPO / "Makefile", REPO / "README.md"]
    calls = ("-m universal_features.", '"-m", "universal_features.')
    callers = [p.name for p in texts if p.is_file() and p != Path(__file__) and any(c in p.read_text() for c in calls)]
    assert not callers, f"{callers} run a package module with python -m: use uf-reproduce / uf-train"
