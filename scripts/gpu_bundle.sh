#!/usr/bin/env bash
# One archive that runs the GPU check on a node with no internet, no package registry and no HF Hub (HPC, this
# project's own GPU machine). Run it here, where the internet is:
#
#   bash scripts/gpu_bundle.sh [--run-dir runs/gpu] [--node-freeze FILE] [--python-version 3.12]
#                              [--platform manylinux_2_28_x86_64] [--out dist/gpu_bundle.tar.gz] [--no-stage-check]
#
# The archive (one top folder, gpu_bundle/) holds:
#   - the repository at HEAD (`git archive HEAD`: committed files only), plus this checkout's scripts/gpu_node_run.sh;
#   - the run directory's finished data stage, as runs/<its name>/: data/, config.json, .stages/data.json and the data
#     stage's entry of results.json; nothing else of the run directory;
#   - wheelhouse/: one wheel per package the pipeline needs at run time (papermill, ipykernel, datasets, ... and what
#     they need in turn, for that Python version and platform) that the node does not already have. What the node has
#     comes from --node-freeze (the node's `python3 -m pip list --format=freeze`), else scripts/gpu_node_h200.txt (the
#     project's GPU machine). Those packages are kept at the node's versions, never carried again;
#   - BUNDLE.json: the commit, the Python version and platform, the run directory, the wheels.
# On the node (no internet needed):  tar xzf gpu_bundle.tar.gz && bash gpu_bundle/scripts/gpu_node_run.sh [--out DIR]
#
# Before packing, the data stage's cache key is recomputed with the bundled code (HEAD) the way the node will: a key
# that differs means the node would run the data stage again, which needs the internet, so the bundle is refused
# (--no-stage-check skips this; the tests use it with a made-up run directory).
set -euo pipefail
CALLER=$PWD
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/.."
REPO=$PWD

die() { printf 'gpu_bundle: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '4,5p' "$0" | sed 's/^# *//'; }
abspath() { case $1 in /*) printf '%s\n' "$1";; *) printf '%s\n' "$CALLER/$1";; esac; }

RUN_DIR=$REPO/runs/gpu; FREEZE=""; PYVER=3.12; PLATFORM=manylinux_2_28_x86_64; OUT=$REPO/dist/gpu_bundle.tar.gz
STAGE_CHECK=1
while [ $# -gt 0 ]; do
  case $1 in
    --run-dir|--node-freeze|--python-version|--platform|--out)
      if [ $# -lt 2 ] || [ -z "$2" ]; then die "$1 needs a value (see: bash scripts/gpu_bundle.sh --help)"; fi
      case $1 in
        --run-dir) RUN_DIR=$(abspath "$2");;
        --node-freeze) FREEZE=$(abspath "$2");;
        --python-version) PYVER=$2;;
        --platform) PLATFORM=$2;;
        --out) OUT=$(abspath "$2");;
      esac
      shift 2;;
    --no-stage-check) STAGE_CHECK=0; shift;;
    -h|--help) usage; exit 0;;
    *) usage >&2; die "unknown option $1";;
  esac
done

PY=${PYTHON:-$( [ -x "$REPO/.venv/bin/python" ] && echo "$REPO/.venv/bin/python" || echo python3 )}
case $PY in /*|"") ;; */*) PY=$(abspath "$PY");; esac   # PYTHON=.venv/bin/python means the caller's folder, not the repository's
command -v "$PY" >/dev/null 2>&1 || die "no Python at '$PY': run bash scripts/setup.sh (it makes .venv) or set PYTHON"
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null || die "$PY is older than Python 3.10: set PYTHON to the project's venv (.venv/bin/python)"
"$PY" -m pip --version >/dev/null 2>&1 || die "$PY has no pip: $PY -m ensurepip, or set PYTHON to another Python"

[[ $PYVER =~ ^3\.([0-9]+)$ ]] || die "--python-version must look like 3.12, not '$PYVER'"
[ "${BASH_REMATCH[1]}" -ge 10 ] || die "--python-version $PYVER: the project needs Python >= 3.10"
[[ $PLATFORM =~ ^[A-Za-z0-9_.]+$ ]] || die "--platform must be a wheel platform tag such as manylinux_2_28_x86_64, not '$PLATFORM'"
if [ -z "$FREEZE" ]; then FREEZE=$HERE/gpu_node_h200.txt; FREEZE_LABEL="scripts/gpu_node_h200.txt (built in)"
else FREEZE_LABEL=$FREEZE; fi
[ -f "$FREEZE" ] || die "no node freeze at $FREEZE: make it on the node with \`python3 -m pip list --format=freeze > node.txt\`"
[ -f "$HERE/gpu_node_run.sh" ] || die "scripts/gpu_node_run.sh is missing from this checkout; the bundle needs it"

git -C "$REPO" rev-parse --verify -q HEAD >/dev/null || die "$REPO is not a git checkout with a commit: the bundle holds HEAD"
COMMIT=$(git -C "$REPO" rev-parse HEAD)
[ -d "$RUN_DIR" ] || die "no run directory $RUN_DIR: make it here with \`uf-reproduce --profile gpu --only data --run-dir runs/gpu\` (needs the internet and UF_DATA_DIR), or pass --run-dir"
RUN_DIR=$(cd "$RUN_DIR" && pwd)
for f in .stages/data.json config.json data; do
  [ -e "$RUN_DIR/$f" ] || die "$RUN_DIR has no finished data stage (no $f): run \`uf-reproduce --profile gpu --only data --run-dir $RUN_DIR\` here first (it needs the internet and UF_DATA_DIR)"
done
RUN_NAME=$(basename "$RUN_DIR")
[[ $RUN_NAME =~ ^[A-Za-z0-9_.-]+$ ]] || die "the run directory's name '$RUN_NAME' has characters the node script does not take; rename it"
PROFILE=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["profile"])' "$RUN_DIR/config.json" 2>/dev/null) \
  || die "$RUN_DIR/config.json names no profile; is it a run directory of this project?"

mkdir -p "$(dirname "$OUT")" || die "cannot make the folder of --out $OUT"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_bundle.XXXXXX")
PARTIAL="$OUT.partial.$$"
cleanup() { rm -rf "$WORK"; [ -z "$PARTIAL" ] || rm -f "$PARTIAL"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
B=$WORK/gpu_bundle
mkdir -p "$B"

echo "gpu_bundle: the repository at HEAD ${COMMIT:0:10}"
git -C "$REPO" archive --format=tar HEAD | tar -x -C "$B"
DIRTY=$(git -C "$REPO" status --porcelain --untracked-files=no | wc -l | tr -d ' ')
[ "$DIRTY" = 0 ] || echo "gpu_bundle: note: $DIRTY tracked files have uncommitted changes here; the bundle holds HEAD without them"
mkdir -p "$B/scripts" && cp "$HERE/gpu_node_run.sh" "$B/scripts/gpu_node_run.sh"

echo "gpu_bundle: the data stage of $RUN_DIR (profile $PROFILE)"
R=$B/runs/$RUN_NAME
mkdir -p "$R/.stages"
cp -RLp "$RUN_DIR/data" "$R/data"
cp -Lp "$RUN_DIR/config.json" "$R/config.json"
cp -Lp "$RUN_DIR/.stages/data.json" "$R/.stages/data.json"
# every other file the data stage recorded (its tables), with the bytes it recorded: the node's runner checks them
if ! (cd "$B" && PYTHONPATH="$B" PYTHONDONTWRITEBYTECODE=1 "$PY" - "$RUN_DIR" "$R" "$PROFILE" <<'PY'
import json, shutil, sys
from pathlib import Path
from universal_features.reproduce import damaged_outputs   # the runner's own check, as the node will run it
src, dst, profile = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
outputs = json.loads((src / ".stages" / "data.json").read_text()).get("outputs") or {}
bad = damaged_outputs(src, outputs)
if bad:
    sys.exit(f"gpu_bundle: {src} no longer holds what its data stage wrote ({'; '.join(bad[:3])}"
             f"{' and more' if len(bad) > 3 else ''}: a later stage rewrote it, or it was edited), so the node would run the "
             f"data stage again, which needs the internet. Make a run directory of the data stage alone here: "
             f"`uf-reproduce --profile {profile} --only data --run-dir runs/{profile}-data`, and bundle that")
for rel in outputs:
    if not (dst / rel).exists():
        (dst / rel).parent.mkdir(parents=True, exist_ok=True); shutil.copy2(src / rel, dst / rel)
PY
); then exit 1; fi
if [ -f "$RUN_DIR/results.json" ]; then   # the data stage's own headline numbers, not the later stages'
  "$PY" - "$RUN_DIR/results.json" "$R/results.json" <<'PY'
import json, sys
res = json.load(open(sys.argv[1]))
if "data" in res:
    open(sys.argv[2], "w").write(json.dumps({"data": res["data"]}, indent=2, sort_keys=True) + "\n")
PY
fi

if [ $STAGE_CHECK = 1 ]; then
  echo "gpu_bundle: checking that the node will skip the data stage (its key under HEAD's code)"
  # as on the node: the bundled code, no data directory (the key then takes the inputs the finished stage recorded)
  if ! (cd "$B" && env -u UF_DATA_DIR PYTHONPATH="$B" PYTHONDONTWRITEBYTECODE=1 "$PY" - "$R" "$PROFILE" "$RUN_DIR" <<'PY'
import json, sys
from pathlib import Path
root, profile, orig = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
try:
    import universal_features
    from universal_features.profiles import get_config
    from universal_features.reproduce import discover_stages, stage_inputs, stage_keys
    stages = [s for s in discover_stages() if s.stage.name == "data"]
except Exception as e:
    sys.exit(f"gpu_bundle: cannot import the project with {sys.executable} ({type(e).__name__}: {e}) to check the data "
             "stage's key: use the project's venv (PYTHON=.venv/bin/python) or pass --no-stage-check")
if Path.cwd().resolve() not in Path(universal_features.__file__).resolve().parents:
    sys.exit(f"gpu_bundle: imported universal_features from {universal_features.__file__}, not from the bundle")
cfg = get_config(profile)
key = stage_keys(stages, cfg, stage_inputs(stages, cfg, root))["data"]
have = json.loads((root / ".stages" / "data.json").read_text()).get("key")
if key != have:
    sys.exit(f"gpu_bundle: {orig}'s data stage does not match HEAD: it was made by other code or settings (uncommitted "
             f"changes to the data notebook, --set overrides, another commit): its key is {str(have)[:12]}, the node "
             f"would compute {key[:12]} and run the data stage again, which needs the internet. Commit (or stash) your "
             f"changes, re-run `uf-reproduce --profile {profile} --only data --run-dir {orig}` "
             "here, then bundle again (--no-stage-check skips this check)")
print(f"gpu_bundle: data stage key {key[:12]} matches: the node skips the data stage")
PY
  ); then exit 1; fi
fi

echo "gpu_bundle: resolving what the node lacks for CPython $PYVER on $PLATFORM (node packages: $FREEZE_LABEL)"
mkdir -p "$B/wheelhouse"
cp "$FREEZE" "$B/wheelhouse/node_freeze.txt"
BUNDLE="$B" WORK="$WORK" FREEZE="$FREEZE" FREEZE_LABEL="$FREEZE_LABEL" PYVER="$PYVER" PLATFORM="$PLATFORM" \
COMMIT="$COMMIT" RUN_REL="runs/$RUN_NAME" PROFILE="$PROFILE" DIRTY="$DIRTY" "$PY" - <<'PY'
import ast, datetime, json, os, re, subprocess, sys
from importlib import metadata
from pathlib import Path
try:
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name
except ImportError:   # pip's own copy
    from pip._vendor.packaging.requirements import InvalidRequirement, Requirement
    from pip._vendor.packaging.utils import canonicalize_name

E = os.environ
bundle, work, pyver, platform = Path(E["BUNDLE"]), Path(E["WORK"]), E["PYVER"], E["PLATFORM"]
wheelhouse = bundle / "wheelhouse"
# not carried: the node's own CUDA build of torch; JupyterLab (only scripts/lab.sh uses it)
EXCLUDE = {"torch": "the node's own (CUDA) build", "jupyterlab": "only scripts/lab.sh uses it"}
# what scripts/gpu_check.sh runs besides the pipeline: tests/test_cuda.py (pytest), benchmarks/lm_train.py (transformers)
CHECK_NEEDS = ["pytest", "transformers"]

def die(msg): sys.exit(f"gpu_bundle: {msg}")

def platforms(tag):
    "The tag and every older one a node of that tag also runs (pip 23 expands only the names manylinux2014/2010)."
    m = re.fullmatch(r"(manylinux|musllinux)_(\d+)_(\d+)_(\w+)", tag)
    if not m: return [tag]
    kind, major, minor, arch = m[1], int(m[2]), int(m[3]), m[4]
    low = 5 if kind == "manylinux" else 1
    out = [f"{kind}_{major}_{v}_{arch}" for v in range(minor, low - 1, -1)]
    if kind == "manylinux" and major == 2:   # the legacy names of manylinux_2_17, _2_12 and _2_5
        out += [f"{alias}_{arch}" for v, alias in ((17, "manylinux2014"), (12, "manylinux2010"), (5, "manylinux1"))
                if minor >= v]
    return out

PLATS = platforms(platform)
machine = re.sub(r"^(manylinux_\d+_\d+|musllinux_\d+_\d+|manylinux\d+|linux)_", "", platform)
# the node's marker environment: pip evaluates markers for the Python running it, not for --python-version
TARGET_ENV = {"python_version": pyver, "python_full_version": f"{pyver}.0", "implementation_name": "cpython",
              "implementation_version": f"{pyver}.0", "platform_python_implementation": "CPython",
              "sys_platform": "linux", "os_name": "posix", "platform_system": "Linux", "platform_machine": machine}

def applies(req, extras=("",)):
    return req.marker is None or any(req.marker.evaluate(dict(TARGET_ENV, extra=e)) for e in extras)

def read_freeze(path):
    "{name: constraint or None} from `pip freeze` / `pip list --format=freeze` output, or a hand-written list."
    have = {}
    for n, raw in enumerate(Path(path).read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"): continue
        line = re.split(r"\s+#", line, maxsplit=1)[0].strip()
        if line.startswith(("-e ", "--editable")):
            m = re.search(r"[#&]egg=([A-Za-z0-9_.\-]+)", line)
            if m: have[canonicalize_name(m[1])] = None
            continue
        if line.startswith("-"): continue
        try: req = Requirement(line)
        except InvalidRequirement: die(f"{path}:{n}: cannot read '{raw}' (expected name==version)")
        name = canonicalize_name(req.name)
        specs = [f"{s.operator}{s.version.split('+')[0] if s.operator in ('==', '===') else s.version}"
                 for s in req.specifier] if not req.url else []   # a local build (+cu130) satisfies its plain version
        have[name] = f"{name}{','.join(sorted(specs))}" if specs else None
    return have

have = read_freeze(E["FREEZE"])
if "torch" not in have:
    print("gpu_bundle: warning: the node freeze names no torch; the bundle never carries torch (the node needs its own CUDA build)")

text = (bundle / "pyproject.toml").read_text()
try:
    import tomllib
    deps = tomllib.loads(text)["project"]["dependencies"]
except ImportError:
    block = re.search(r"^dependencies\s*=\s*\[(.*?)^\]", text, re.S | re.M)
    deps = re.findall(r'"([^"]+)"', re.sub(r"#.*", "", block[1])) if block else die("no dependencies in pyproject.toml")
roots = [d for d in deps if canonicalize_name(Requirement(d).name) not in EXCLUDE] + CHECK_NEEDS

def imported_modules():
    "Top-level modules that the notebooks, the package and what gpu_check.sh runs import, stdlib left out."
    srcs = [("".join(c["source"]) if isinstance(c["source"], list) else c["source"])
            for nb in sorted((bundle / "nbs").glob("*.ipynb")) for c in json.loads(nb.read_text())["cells"]
            if c["cell_type"] == "code"]
    for pattern in ("universal_features/**/*.py", "benchmarks/*.py", "scripts/gpu_report.py", "tests/test_cuda.py",
                    "tests/conftest.py"):
        srcs += [p.read_text() for p in sorted(bundle.glob(pattern))]
    mods = set()
    for src in srcs:
        try: tree = ast.parse(src)
        except SyntaxError:   # a notebook cell with magics or shell lines
            try: tree = ast.parse("\n".join(l for l in src.splitlines() if not l.lstrip().startswith(("%", "!"))))
            except SyntaxError: continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import): mods |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module: mods.add(node.module.split(".")[0])
    return sorted(m for m in mods if m not in sys.stdlib_module_names and m not in ("__future__", "universal_features"))

# what the code imports beyond pyproject.toml's list (test cells of stage notebooks run under papermill too: fastcore)
modules, unknown = imported_modules(), []
provides = metadata.packages_distributions()
named = {canonicalize_name(Requirement(r).name) for r in roots}
for m in modules:
    if m not in provides: unknown.append(m); continue
    for dist in provides[m]:
        n = canonicalize_name(dist)
        if n not in named and n not in EXCLUDE and n != "universal-features":
            named.add(n); roots.append(n)
if unknown:
    print(f"gpu_bundle: warning: no package here provides {', '.join(unknown)}, which the code imports: the bundle may "
          f"lack them (build with the project's venv, PYTHON=.venv/bin/python)")

lock = {}
lock_file = bundle / "requirements.lock"
if lock_file.exists():
    for line in lock_file.read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" not in line: continue
        req = Requirement(line)
        lock[canonicalize_name(req.name)] = f"{canonicalize_name(req.name)}=={next(iter(req.specifier)).version.split('+')[0]}"

import pip
if (tuple(map(int, re.match(r"(\d+)\.(\d+)", pip.__version__).groups())) >= (24, 2)
        or pyver == "%d.%d" % sys.version_info[:2]):
    PIP = [sys.executable, "-m", "pip"]
else:   # before 24.2, `pip install --python-version` checked Requires-Python against the Python running pip
    r = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
                        "--only-binary=:all:", "-d", str(work / "pip"), "pip>=24.2"], capture_output=True, text=True)
    found = sorted((work / "pip").glob("pip-*.whl"))
    if r.returncode or not found:
        die(f"pip {pip.__version__} here is older than 24.2 and a newer one could not be fetched: {r.stderr.strip()[-400:]}")
    PIP = [sys.executable, str(found[-1] / "pip")]    # pip runs from its wheel, nothing installed
    print(f"gpu_bundle: resolving with {found[-1].name} (pip {pip.__version__} here checks Requires-Python against this Python)")

def resolve(reqs, use_lock):
    "pip's resolution for the node (a dry run into an empty target): its report's install items."
    cons = [c for c in have.values() if c] + ([c for n, c in lock.items() if n not in have] if use_lock else [])
    (work / "constraints.txt").write_text("\n".join(cons) + "\n")
    report = work / "report.json"
    report.unlink(missing_ok=True)
    cmd = [*PIP, "install", "--dry-run", "--disable-pip-version-check",
           "--ignore-installed", "--target", str(work / "target"), "--report", str(report), "--only-binary=:all:",
           "--implementation", "cp", "--python-version", pyver, *[a for p in PLATS for a in ("--platform", p)],
           "-c", str(work / "constraints.txt"), *reqs]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:   # pip's explanation: its conflict report when there is one, its errors, not its warnings
        out, errs = r.stdout.splitlines(), [l for l in r.stderr.splitlines() if not l.startswith("WARNING:")]
        why = [i for i, l in enumerate(out) if "conflict is caused by" in l]
        return None, "\n".join((out[why[0]:] if why else []) + errs)
    return json.loads(report.read_text())["install"], ""

def closure(items, reqs):
    "Packages the requirements reach on the node without passing through one the node has, with their extras."
    meta = {canonicalize_name(i["metadata"]["name"]): i for i in items}
    extras, todo, missing = {}, [], {}
    def want(req):
        n = canonicalize_name(req.name)
        if n in have: return
        new = set(req.extras) | {""}
        if new <= extras.get(n, set()): return
        extras[n] = extras.get(n, set()) | new
        todo.append(n)
        if n not in meta: missing[n] = f"{req.name}{'[' + ','.join(sorted(req.extras)) + ']' if req.extras else ''}{req.specifier}"
    for r in reqs:
        req = Requirement(r)
        if applies(req): want(req)
    while todo:
        n = todo.pop()
        if n not in meta: continue
        for d in meta[n]["metadata"].get("requires_dist") or []:
            req = Requirement(d)
            if applies(req, sorted(extras[n])): want(req)
    return {n: meta[n] for n in extras if n in meta}, missing

use_lock, notes, reqs = bool(lock), [], list(roots)
for round_ in range(4):
    items, err = resolve(reqs, use_lock)
    if items is None and use_lock:
        notes.append("requirements.lock's versions did not fit this node; resolved from pyproject.toml's ranges instead")
        print(f"gpu_bundle: note: {notes[-1]}:\n  " + "\n  ".join(l[:300] for l in err.splitlines()[-8:]))
        use_lock = False
        items, err = resolve(reqs, use_lock)
    if items is None:
        die("pip could not resolve the bundle for this node:\n  " + "\n  ".join(l[:300] for l in err.splitlines()[-16:]) +
            f"\nThe node's versions leave no solution: what the pipeline needs conflicts with what the node has (the "
            f"bundle never replaces the node's packages), or a version in the freeze has no wheel for CPython {pyver} "
            f"on {platform}. Check {E['FREEZE_LABEL']} against the node, loosen a line there, or try another --platform")
    carry, missing = closure(items, roots)
    if not missing: break
    reqs += sorted(missing.values())     # needed under the node's markers, not the resolving Python's: resolve again
else:
    die(f"could not close the set of wheels for Python {pyver} (still missing {', '.join(missing)})")

bad = sorted(n for n in carry if n in EXCLUDE or n.startswith("nvidia-") or n == "triton")
if bad:
    die(f"the node freeze lacks {', '.join(bad)}, which the bundle does not carry: the node must have its own "
        "(CUDA) torch stack; check that --node-freeze is the node's `python3 -m pip list --format=freeze`")

lines, hashed = [], all((i["download_info"].get("archive_info") or {}).get("hashes", {}).get("sha256") for i in carry.values())
for n, i in sorted(carry.items()):
    line = f"{n}=={i['metadata']['version']}"
    if hashed: line += f" --hash=sha256:{i['download_info']['archive_info']['hashes']['sha256']}"
    lines.append(line)
(work / "wheels.txt").write_text("\n".join(lines) + "\n")
if carry:
    cmd = [*PIP, "download", "--quiet", "--disable-pip-version-check", "--no-deps",
           "--only-binary=:all:", "--implementation", "cp", "--python-version", pyver,
           *[a for p in PLATS for a in ("--platform", p)], "-d", str(wheelhouse), "-r", str(work / "wheels.txt")]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode: die("pip could not download the wheels:\n  " + "\n  ".join((r.stderr or r.stdout).strip().splitlines()[-12:]))

wheels = sorted(p.name for p in wheelhouse.glob("*.whl"))
by_name = {}
for w in wheels: by_name.setdefault(canonicalize_name(w.split("-")[0]), []).append(w)
extra = sorted(set(by_name) - set(carry)); twice = sorted(n for n, ws in by_name.items() if len(ws) > 1)
if extra or twice or set(carry) - set(by_name):
    die(f"the wheelhouse does not match the resolution (extra {extra}, twice {twice}, missing {sorted(set(carry) - set(by_name))})")

size = sum((wheelhouse / w).stat().st_size for w in wheels)
info = {"commit": E["COMMIT"], "uncommitted_changes_left_out": int(E["DIRTY"]),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python_version": pyver, "implementation": "cp", "platform": platform, "platforms": PLATS, "run_dir": E["RUN_REL"],
        "profile": E["PROFILE"], "node_freeze": E["FREEZE_LABEL"], "lock_versions": use_lock, "notes": notes,
        "requirements": roots, "modules": modules, "wheels": wheels,
        "packages": {n: carry[n]["metadata"]["version"] for n in sorted(carry)}}
(bundle / "BUNDLE.json").write_text(json.dumps(info, indent=2) + "\n")
print(f"gpu_bundle: {len(wheels)} wheels ({size / 1e6:.1f} MB) the node lacks: " +
      ", ".join(f"{n} {v}" for n, v in info["packages"].items()))
PY

echo "gpu_bundle: packing"
TAR_OPTS=()
if tar --version 2>/dev/null | grep -q 'GNU tar'; then TAR_OPTS=(--sort=name --owner=0 --group=0 --numeric-owner); fi
tar ${TAR_OPTS[@]+"${TAR_OPTS[@]}"} -czf "$PARTIAL" -C "$WORK" gpu_bundle
mv -f "$PARTIAL" "$OUT"; PARTIAL=""
BYTES=$(wc -c < "$OUT" | tr -d ' ')
MB=$(awk -v b="$BYTES" 'BEGIN { printf "%.1f", b / 1048576 }')
echo "gpu_bundle: wrote $OUT ($MB MiB; commit ${COMMIT:0:10}, run directory runs/$RUN_NAME, CPython $PYVER, $PLATFORM)"
[ "$BYTES" -lt $((64 * 1048576)) ] || echo "gpu_bundle: warning: the archive is over 64 MiB, more than some transfers to a GPU node take"
echo "On the node (no internet needed), where you copied $(basename "$OUT"):"
echo "  tar xzf $(basename "$OUT") && bash gpu_bundle/scripts/gpu_node_run.sh [--out DIR] [--budget-s SECONDS]"
