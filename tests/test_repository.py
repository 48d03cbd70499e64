"The repository's own consistency: generated files agree with their sources, and the modules stand on floors."
import ast
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


# The floors of the package: a module's floor is one above the highest package module it imports (anywhere in its
# code, lazy imports too), so an import of a module on the same floor or above would be a cycle. The foundation floor
# (the config, its profiles, files and the lineage) imports nothing else of the package; `run` (the run directory)
# stands on it alone; readers of the model, SAE and token formats (`loaders`) stand above those formats; the runner
# (`reproduce`) is imported by no module.
FOUNDATION = {"config", "config_rules", "profiles", "files", "lineage"}
RUN_MAY_IMPORT = {"config", "profiles", "files", "lineage"}


def package_imports() -> dict[str, set[str]]:
    "Every module of the package → the modules of the package it imports."
    root = REPO / "universal_features"
    mods = {p.stem for p in root.glob("*.py") if p.stem not in ("__init__", "_modidx")}
    out = {}
    for m in sorted(mods):
        deps = set()
        for node in ast.walk(ast.parse((root / f"{m}.py").read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.level == 1: names = [node.module] if node.module else [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module == "universal_features": names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("universal_features."): names = [node.module.split(".", 1)[1]]
            elif isinstance(node, ast.Import): names = [a.name.split(".", 1)[1] for a in node.names if a.name.startswith("universal_features.")]
            deps |= {n.split(".")[0] for n in names} & mods
        out[m] = deps - {m}
    return out


def floors(imports: dict[str, set[str]]) -> dict[str, int]:
    "Each module's floor (0: imports no package module); an AssertionError naming the modules of a cycle."
    floor, path = {}, []
    def visit(m: str) -> int:
        if m in path: raise AssertionError("import cycle: " + " → ".join(path[path.index(m):] + [m]))
        if m not in floor:
            path.append(m)
            floor[m] = 1 + max((visit(d) for d in sorted(imports[m])), default=-1)
            path.pop()
        return floor[m]
    for m in imports: visit(m)
    return floor


def test_floors_name_a_cycle_and_read_every_import():
    "The checks below can fail: a cycle is named; imports inside functions count, other packages' do not."
    import pytest
    with pytest.raises(AssertionError, match="import cycle: a → b → a"):
        floors({"a": {"b"}, "b": {"a"}})
    assert floors({"files": set(), "config": {"files"}, "run": {"config", "files"}}) == {"files": 0, "config": 1, "run": 2}
    imports = package_imports()
    assert "loaders" in imports["sae"]
    assert "torch" not in imports["run"]
    assert "PIL" not in imports["reproduce"]                                    # imported inside small_png: not ours


def test_the_package_stands_on_floors_without_cycles():
    imports = package_imports()
    floor = floors(imports)                                           # raises on a cycle
    up = [f"{m} (floor {floor[m]}) imports {d} (floor {floor[d]})" for m, ds in imports.items() for d in ds if floor[d] >= floor[m]]
    assert not up, up
    assert not [m for m, ds in imports.items() if "reproduce" in ds], "the runner is the top floor: no module imports it"


def test_run_and_the_foundation_import_only_the_foundation():
    "run.py stands on the foundation alone: loading models, SAEs and blocks lives above their formats (loaders)."
    imports = package_imports()
    assert imports["run"] <= RUN_MAY_IMPORT, f"run imports {sorted(imports['run'] - RUN_MAY_IMPORT)}"
    for m in FOUNDATION:
        assert imports[m] <= FOUNDATION, f"{m} (foundation) imports {sorted(imports[m] - FOUNDATION)}"
    floor = floors(imports)
    assert floor["run"] == 1 + max(floor[m] for m in RUN_MAY_IMPORT)
    assert floor["loaders"] > max(floor[m] for m in ("model", "autoencoder", "tokenizer", "run"))


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


def other_pythons() -> list[str]:
    "Interpreters of Python >= 3.10 on this machine other than the one running the tests (PATH and pyenv)."
    import glob, shutil, subprocess, sys
    found = {shutil.which(f"python3.{m}") for m in range(10, 16)} | set(glob.glob(os.path.expanduser("~/.pyenv/versions/3.*/bin/python3")))
    out, seen = [], {"%d.%d" % sys.version_info[:2]}
    for exe in sorted(p for p in found if p):
        r = subprocess.run([exe, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True, text=True)
        v = r.stdout.strip()
        if r.returncode == 0 and v not in seen and tuple(map(int, v.split("."))) >= (3, 10): seen.add(v); out.append(exe)
    return out


def test_cache_keys_read_code_the_same_on_every_python():
    """A run directory made on one machine is finished on another with another Python (the GPU bundle): the code part of
    every cache key (files.code_text over each module) must not depend on the version. ast.dump does (3.12, 3.13)."""
    import hashlib, subprocess
    import pytest
    others = other_pythons()
    if not others: pytest.skip("no other Python >= 3.10 on this machine")
    prog = ("import hashlib, importlib.util, sys, glob\n"
            "spec = importlib.util.spec_from_file_location('uf_files', 'universal_features/files.py')\n"
            "m = importlib.util.module_from_spec(spec); sys.modules['uf_files'] = m; spec.loader.exec_module(m)\n"
            "print(hashlib.sha256(''.join(m.code_text(open(p).read()) for p in sorted(glob.glob('universal_features/*.py'))).encode()).hexdigest())")
    from universal_features.files import code_text
    here = hashlib.sha256("".join(code_text(p.read_text()) for p in sorted((REPO / "universal_features").glob("*.py"))).encode()).hexdigest()
    for exe in others:
        r = subprocess.run([exe, "-c", prog], capture_output=True, text=True, cwd=REPO)
        assert r.returncode == 0, r.stderr[-2000:]
        assert r.stdout.strip() == here, f"{exe} reads the package's code differently"
