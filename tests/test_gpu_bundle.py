"""scripts/gpu_bundle.sh packs what an air-gapped GPU node needs into one archive (the repository at HEAD, a run
directory's finished data stage, the wheels the node lacks) and scripts/gpu_node_run.sh installs it there offline.

Here the "node" is this interpreter: its freeze minus one small pure-Python package the project needs (tabulate),
so the bundle must carry exactly that one wheel. Building it asks PyPI (the resolution and the one download): the
tests skip when PyPI cannot be reached."""
import json
import os
import re
import subprocess
import sys
import tarfile
import urllib.request
from importlib import metadata
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
MISSING = "tabulate"                      # small, pure Python, a direct dependency; nothing else needs it
PYVER = "%d.%d" % sys.version_info[:2]


def canon(name: str) -> str: return re.sub(r"[-_.]+", "-", name).lower()


DATA_STAGE_FILES = {"data/manifest.json": "{}\n", "data/english/train.parquet": "not really parquet\n",
                    "tables/data_manifest.md": "| domain |\n"}   # what the data stage writes (and records)


def fake_run_dir(root: Path, name: str = "fakerun") -> Path:
    "A run directory whose data stage finished, with later stages' files beside it (which must stay behind)."
    import hashlib
    rd = root / name
    outputs = {rel: [len(text.encode()), 0, hashlib.sha256(text.encode()).hexdigest()] for rel, text in DATA_STAGE_FILES.items()}
    for rel, text in {".stages/data.json": json.dumps({"key": "made-up", "inputs": "made-up", "outputs": outputs}),
                      ".stages/tokenizer.json": '{"key": "later"}\n',
                      "config.json": '{"profile": "smoke"}\n',
                      "results.json": json.dumps({"data": {"english": {"train_documents": 3}}, "tokenizer": {"x": 1}}),
                      **DATA_STAGE_FILES,
                      "models/base/model.safetensors": "later\n", "logs/data.log": "log\n", "tables/t.md": "t\n",
                      "notebooks/01_data.ipynb": "{}\n"}.items():
        (rd / rel).parent.mkdir(parents=True, exist_ok=True)
        (rd / rel).write_text(text)
    return rd


def unpack(archive: Path, where: Path) -> None:
    with tarfile.open(archive) as tf:
        tf.extractall(where, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))


def bundle_cmd(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "UF_DATA_DIR"} | {"PYTHON": sys.executable}
    return subprocess.run(["bash", str(REPO / "scripts" / "gpu_bundle.sh"), *args], capture_output=True, text=True,
                          env=env, timeout=300)


def node_cmd(root: Path, *args: str, python: str = sys.executable) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("UF_DATA_DIR", "PYTHONPATH", "JUPYTER_PATH")}
    return subprocess.run(["bash", str(root / "gpu_bundle" / "scripts" / "gpu_node_run.sh"), *args],
                          capture_output=True, text=True, env=env | {"PYTHON": python}, timeout=300)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    "(archive, fake run dir, version of the missing package), built once for the module."
    try: urllib.request.urlopen(f"https://pypi.org/simple/{MISSING}/", timeout=10).close()
    except Exception as e: pytest.skip(f"PyPI is unreachable ({e}); the bundle resolves and downloads wheels there")
    tmp = tmp_path_factory.mktemp("gpu_bundle")
    rd = fake_run_dir(tmp)
    freeze, seen = [], set()
    for d in metadata.distributions():
        name = d.metadata["Name"]
        if not name or canon(name) in seen: continue
        seen.add(canon(name))
        if canon(name) != MISSING: freeze.append(f"{name}=={d.version}")
    assert MISSING in seen, f"{MISSING} is not installed here; the test needs the project's environment"
    (tmp / "freeze.txt").write_text("\n".join(freeze) + "\n")
    out = tmp / "out" / "bundle.tar.gz"
    r = bundle_cmd("--run-dir", str(rd), "--node-freeze", str(tmp / "freeze.txt"), "--python-version", PYVER,
                   "--out", str(out), "--no-stage-check")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "bash gpu_bundle/scripts/gpu_node_run.sh" in r.stdout and "MiB" in r.stdout
    assert sorted(p.name for p in out.parent.iterdir()) == ["bundle.tar.gz"]        # no partial file left behind
    return out, rd, metadata.version(MISSING)


def test_archive_holds_head_the_data_stage_and_only_the_missing_wheel(built):
    out, rd, version = built
    with tarfile.open(out) as tf:
        names = [m.name for m in tf.getmembers() if m.isfile()]
        info = json.load(tf.extractfile("gpu_bundle/BUNDLE.json"))
        results = json.load(tf.extractfile("gpu_bundle/runs/fakerun/results.json"))
    assert all(n.startswith("gpu_bundle/") for n in names)
    rel = {n[len("gpu_bundle/"):] for n in names}
    # the commit it records is HEAD's when it was built (HEAD or an ancestor of it now)
    assert subprocess.run(["git", "merge-base", "--is-ancestor", info["commit"], "HEAD"], cwd=REPO).returncode == 0
    head = set(subprocess.run(["git", "ls-tree", "-r", "--name-only", info["commit"]], cwd=REPO, capture_output=True,
                              text=True, check=True).stdout.splitlines())
    repo_files = {n for n in rel if not n.startswith(("runs/", "wheelhouse/"))}
    assert repo_files - head <= {"BUNDLE.json", "scripts/gpu_node_run.sh"}          # committed files only
    assert head - repo_files == set()
    assert not any("__pycache__" in n or n.startswith(".venv/") for n in rel)
    # the run directory: its data stage, nothing of the later stages
    assert {n for n in rel if n.startswith("runs/")} == {
        "runs/fakerun/.stages/data.json", "runs/fakerun/config.json", "runs/fakerun/results.json",
        "runs/fakerun/data/manifest.json", "runs/fakerun/data/english/train.parquet", "runs/fakerun/tables/data_manifest.md"}
    assert results == {"data": {"english": {"train_documents": 3}}}
    # the wheelhouse: one wheel, for the one package the freeze lacks; none for what the node has (papermill, torch)
    wheels = sorted(n.split("/", 1)[1] for n in rel if n.startswith("wheelhouse/") and n.endswith(".whl"))
    assert len(wheels) == 1 and wheels[0].startswith(f"{MISSING}-{version}-"), wheels
    assert "wheelhouse/node_freeze.txt" in rel
    assert info["python_version"] == PYVER and info["run_dir"] == "runs/fakerun" and info["profile"] == "smoke"
    assert info["packages"] == {MISSING: version} and info["wheels"] == wheels


def test_node_script_installs_offline_and_registers_the_kernel(built, tmp_path):
    out, _, _ = built
    unpack(out, tmp_path)
    root = tmp_path / "gpu_bundle"
    r = node_cmd(tmp_path, "--install-only")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "gpu_node_run: ok:" in r.stdout and "installing 1 wheels" in r.stdout
    site = root / "node_env" / "site"
    assert [p.name for p in site.glob("*.dist-info")] == [f"{MISSING}-{metadata.version(MISSING)}.dist-info"]
    spec = json.loads((root / "node_env" / "jupyter" / "kernels" / "universal-features" / "kernel.json").read_text())
    assert Path(spec["argv"][0]).resolve() == Path(sys.executable).resolve()
    # with the environment it prints, the package comes from the private folder and the project from the bundle
    env_line = next(l for l in r.stdout.splitlines() if l.strip().startswith("export PYTHONPATH="))
    pythonpath = re.search(r"PYTHONPATH=(\S+)", env_line)[1]
    probe = subprocess.run([sys.executable, "-c", f"import {MISSING}, universal_features as u; print({MISSING}.__file__); print(u.__file__)"],
                           capture_output=True, text=True, env=os.environ | {"PYTHONPATH": pythonpath}, cwd=tmp_path)
    mod_file, uf_file = probe.stdout.split()
    assert Path(mod_file).resolve().is_relative_to(site.resolve())
    assert Path(uf_file).resolve().is_relative_to(root.resolve())
    again = node_cmd(tmp_path, "--install-only")                     # a second run keeps the installed wheels
    assert again.returncode == 0 and "already installed" in again.stdout


def test_node_script_refuses_an_old_python_and_wheels_that_do_not_fit(built, tmp_path):
    out, _, _ = built
    unpack(out, tmp_path)
    old = tmp_path / "python3.9"
    old.write_text("#!/bin/sh\necho 3.9.18\nexit 1\n"); old.chmod(0o755)
    r = node_cmd(tmp_path, "--install-only", python=str(old))
    assert r.returncode == 1 and "3.9.18" in r.stderr and ">= 3.10" in r.stderr, r.stderr
    wh = tmp_path / "gpu_bundle" / "wheelhouse"
    foreign = wh / "alien-1.0-cp399-cp399-manylinux_9_99_x86_64.whl"
    foreign.write_bytes(next(wh.glob("*.whl")).read_bytes())
    r = node_cmd(tmp_path, "--install-only")
    assert r.returncode == 1 and "no wheel matches" in r.stderr and foreign.name in r.stderr, r.stderr
    foreign.unlink()
    b = tmp_path / "gpu_bundle" / "BUNDLE.json"
    b.write_text(json.dumps(json.loads(b.read_text()) | {"python_version": "3.99"}))
    r = node_cmd(tmp_path, "--install-only")
    assert r.returncode == 1 and "for Python 3.99" in r.stderr and f"--python-version {PYVER}" in r.stderr, r.stderr
    assert not (tmp_path / "gpu_bundle" / "node_env").exists()          # refused before anything was installed


def test_bundler_refuses_a_run_dir_the_node_could_not_skip(tmp_path):
    bare = tmp_path / "bare"; bare.mkdir()
    r = bundle_cmd("--run-dir", str(bare), "--out", str(tmp_path / "b.tar.gz"))
    assert r.returncode == 1 and "no finished data stage" in r.stderr and "--only data" in r.stderr, r.stderr
    # a data stage whose key HEAD's code does not give: the node would run it again, without the internet
    r = bundle_cmd("--run-dir", str(fake_run_dir(tmp_path)), "--out", str(tmp_path / "b.tar.gz"))
    assert r.returncode == 1 and "does not match HEAD" in r.stderr, r.stdout[-2000:] + r.stderr[-2000:]
    assert not list(tmp_path.glob("b.tar.gz*"))                        # nothing half-written
    # a file the data stage wrote, rewritten since by a later stage (the tokenizer stage rewrites data_manifest.md)
    later = fake_run_dir(tmp_path, "later")
    (later / "tables" / "data_manifest.md").write_text("| domain | tokens |\n")
    r = bundle_cmd("--run-dir", str(later), "--out", str(tmp_path / "b.tar.gz"), "--no-stage-check")
    assert r.returncode == 1 and "no longer holds what its data stage wrote (tables/data_manifest.md" in r.stderr, r.stderr[-2000:]
    assert "--only data" in r.stderr and not list(tmp_path.glob("b.tar.gz*"))
