"The repository's own consistency: generated files agree with their sources."
import importlib.util
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _script(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod


def test_environment_yml_is_generated_from_pyproject():
    env = _script("environment")
    assert (REPO / "environment.yml").read_text() == env.render(), "run `python scripts/environment.py`"
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert all(f"      - {d}\n" in env.render() for d in deps)


def test_nbdev_settings_point_at_files_that_exist():
    nbdev = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["nbdev"]
    assert (REPO / nbdev["nbs_path"]).is_dir() and (REPO / nbdev["lib_path"]).is_dir()
    if "readme_nb" in nbdev: assert (REPO / nbdev["nbs_path"] / nbdev["readme_nb"]).is_file()
    assert "tags" in nbdev["allowed_cell_metadata_keys"]
