#!/usr/bin/env bash
# The node side of scripts/gpu_bundle.sh: on a GPU node with no internet, from the unpacked bundle,
#
#   bash gpu_bundle/scripts/gpu_node_run.sh [--install-only] [gpu_check.sh options: --out DIR --budget-s N ...]
#
# installs the bundle's wheels into a private folder (node_env/site: no root, no venv, no network), registers the
# project's Jupyter kernel there (node_env/jupyter, on JUPYTER_PATH) for this python3, checks that the pipeline's
# modules import, then runs `bash scripts/gpu_check.sh --profile P --run-dir runs/<name>` on the bundled run directory,
# with any other options passed through. --install-only stops after the import check and prints the environment.
# PYTHON=/path/to/python3 picks the interpreter (default: python3 on PATH, the one with the node's CUDA torch).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

die() { printf 'gpu_node_run: %s\n' "$*" >&2; exit 1; }
INSTALL_ONLY=0; PASS=()
for a in "$@"; do
  case $a in
    --install-only) INSTALL_ONLY=1;;
    -h|--help) sed -n '4p' "$0" | sed 's/^# *//'; exit 0;;
    *) PASS+=("$a");;
  esac
done
if [ ! -f BUNDLE.json ] || [ ! -d wheelhouse ]; then die "$ROOT is not an unpacked bundle (no BUNDLE.json or wheelhouse/): make one with \`bash scripts/gpu_bundle.sh\` where the internet is, copy it here, \`tar xzf gpu_bundle.tar.gz\` and run gpu_bundle/scripts/gpu_node_run.sh"; fi

PY=${PYTHON:-python3}
command -v "$PY" >/dev/null 2>&1 || die "no '$PY' on this node: set PYTHON=/path/to/python3 (the Python that has the node's torch)"
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' >/dev/null 2>&1; then
  V=$("$PY" -c 'import sys; print(".".join(map(str, sys.version_info[:3])))' 2>/dev/null || true)
  die "$PY is Python ${V:-of an unknown version}; the project needs Python >= 3.10: set PYTHON=/path/to/python3.10-or-newer (the bundle's wheels are for the version in BUNDLE.json)"
fi
"$PY" -m pip --version >/dev/null 2>&1 || die "$PY has no pip, which installs the wheels (offline): \`$PY -m ensurepip --user\` adds it without the network"
PYEXE=$("$PY" -c 'import sys; print(sys.executable)')

# the bundle: its Python version, run directory and profile; every wheel must suit this interpreter and platform
eval "$("$PY" - <<'PY'
import json, re, shlex, sys
from pathlib import Path
try:
    from packaging.tags import sys_tags
except ImportError:
    from pip._vendor.packaging.tags import sys_tags
b = json.loads(Path("BUNDLE.json").read_text())
def fail(msg):
    print(f"echo {shlex.quote('gpu_node_run: ' + msg)} >&2; exit 1"); sys.exit()
here = "%d.%d" % sys.version_info[:2]
if b["python_version"] != here:
    fail(f"this bundle's wheels are for Python {b['python_version']}, and {sys.executable} is Python {here}: rebuild "
         f"it with `bash scripts/gpu_bundle.sh --python-version {here}` (or set PYTHON to a Python {b['python_version']})")
ok = {str(t) for t in sys_tags()}
present = {p.name for p in Path("wheelhouse").glob("*.whl")}
lost = sorted(set(b["wheels"]) - present)
if lost: fail(f"the bundle is incomplete: wheelhouse/ lacks {', '.join(lost)}; unpack it again")
def tags(name):   # name-version[-build]-python-abi-platform.whl
    py, abi, plat = name[:-4].split("-")[-3:]
    return {f"{i}-{a}-{p}" for i in py.split(".") for a in abi.split(".") for p in plat.split(".")}
bad = [w for w in sorted(present) if not tags(w) & ok]
if bad:
    fail(f"no wheel matches this node for {', '.join(bad)} (made for {b['platform']}); this Python "
         f"takes e.g. {next(iter(sys_tags()))}: rebuild with `bash scripts/gpu_bundle.sh --python-version {here} "
         "--platform <a platform tag this node takes>` (glibc older than the bundle's?)")
for k in ("python_version", "run_dir", "profile", "commit"):
    print(f"BUNDLE_{k.upper()}={shlex.quote(str(b[k]))}")
print(f"BUNDLE_WHEELS={len(present)}")
PY
)"
[ -n "${BUNDLE_RUN_DIR:-}" ] || die "cannot read BUNDLE.json with $PY (above); unpack the bundle again"
[ -f "$BUNDLE_RUN_DIR/.stages/data.json" ] || die "the bundle's run directory $BUNDLE_RUN_DIR has no finished data stage; unpack the bundle again"

SITE=$ROOT/node_env/site
JUP=$ROOT/node_env/jupyter
WHEELS=()
for w in wheelhouse/*.whl; do [ -e "$w" ] && WHEELS+=("$w"); done
STAMP="$PYEXE ${WHEELS[*]+${WHEELS[*]}}"
if [ -f "$SITE/.bundle_stamp" ] && [ "$(cat "$SITE/.bundle_stamp")" = "$STAMP" ]; then
  echo "gpu_node_run: the $BUNDLE_WHEELS wheels are already installed in node_env/site"
else
  echo "gpu_node_run: installing $BUNDLE_WHEELS wheels into node_env/site (offline, for $PYEXE)"
  rm -rf "$SITE.partial"; mkdir -p "$SITE.partial"
  if [ ${#WHEELS[@]} -gt 0 ]; then
    "$PY" -m pip --isolated install --no-index --no-deps --no-compile --no-cache-dir --disable-pip-version-check \
      --quiet --target "$SITE.partial" "${WHEELS[@]}" \
      || die "pip could not install the bundle's wheels (its message is above) into $SITE.partial"
  fi
  printf '%s\n' "$STAMP" > "$SITE.partial/.bundle_stamp"
  rm -rf "$SITE"; mv "$SITE.partial" "$SITE"
fi

KERNEL=$(sed -n 's/^KERNEL_NAME = "\([^"]*\)".*/\1/p' universal_features/kernels.py)
[ -n "$KERNEL" ] || die "cannot read KERNEL_NAME from universal_features/kernels.py"
mkdir -p "$JUP/kernels/$KERNEL"
"$PY" - "$JUP/kernels/$KERNEL/kernel.json" <<'PY'
import json, sys
spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python (universal_features)", "language": "python", "metadata": {"debugger": False}}
open(sys.argv[1], "w").write(json.dumps(spec, indent=1) + "\n")
PY

export PYTHONPATH="$ROOT:$SITE${PYTHONPATH:+:$PYTHONPATH}"
export JUPYTER_PATH="$JUP${JUPYTER_PATH:+:$JUPYTER_PATH}"
export PYTHON=$PYEXE PYTHONUNBUFFERED=1
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} HF_DATASETS_OFFLINE=${HF_DATASETS_OFFLINE:-1}   # no Hub here: fail fast, never wait
RUNTIME=${JUPYTER_RUNTIME_DIR:-${HOME:-/nonexistent}/.local/share/jupyter/runtime}
if ! mkdir -p "$RUNTIME" 2>/dev/null; then   # no writable home: the kernels' sockets go to a private temporary folder
  JUPYTER_RUNTIME_DIR="${TMPDIR:-/tmp}/uf-jupyter-runtime-$(id -u)"; export JUPYTER_RUNTIME_DIR
fi
if [ -n "${UF_DATA_DIR:-}" ]; then
  echo "gpu_node_run: note: UF_DATA_DIR is set; unset for the check (the data stage is carried, and a data directory here would change its key)"
  unset UF_DATA_DIR
fi

echo "gpu_node_run: checking that the pipeline imports and finds its kernel '$KERNEL'"
"$PY" - "$SITE" "$KERNEL" <<'PY' || die "the pipeline cannot run with this bundle on this node (above); rebuild it with \`--node-freeze\` from this node's \`$PY -m pip list --format=freeze\`"
import importlib, importlib.metadata as md, json, sys
from pathlib import Path
site, kernel = Path(sys.argv[1]), sys.argv[2]
try:
    from packaging.requirements import Requirement
except ImportError:
    from pip._vendor.packaging.requirements import Requirement
# what the private wheels ask of the node: a warning each (the imports below are the test that counts)
for info in sorted(site.glob("*.dist-info")):
    dist = md.Distribution.at(info)
    for r in dist.requires or []:
        req = Requirement(r)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}): continue
        try: v = md.version(req.name)
        except md.PackageNotFoundError:
            print(f"gpu_node_run: warning: {dist.metadata['Name']} needs {req}, which this node lacks", file=sys.stderr); continue
        if req.specifier and not req.specifier.contains(v, prereleases=True):
            print(f"gpu_node_run: warning: {dist.metadata['Name']} needs {req}; this node has {v}", file=sys.stderr)
failed = []
needed = json.loads(Path("BUNDLE.json").read_text()).get("modules", [])   # what the notebooks and the code import
for m in ("papermill", "nbclient", "nbformat", "jupyter_client", "ipykernel", "ipywidgets", "datasets", *needed,
          "universal_features"):
    try: importlib.import_module(m)
    except Exception as e: failed.append(f"{m}: {type(e).__name__}: {e}")
if not failed:
    try:   # every stage module, as the runner imports them
        from universal_features.reproduce import discover_stages
        stages = discover_stages()
    except Exception as e: failed.append(f"the stage modules: {type(e).__name__}: {e}")
if failed: sys.exit("gpu_node_run: cannot import " + "; ".join(failed))
from jupyter_client.kernelspec import KernelSpecManager
spec = KernelSpecManager().get_kernel_spec(kernel)
if Path(spec.argv[0]).resolve() != Path(sys.executable).resolve():
    sys.exit(f"gpu_node_run: the kernel '{kernel}' found first ({spec.resource_dir}) runs {spec.argv[0]}, not {sys.executable}")
def where(m):
    mod = sys.modules.get(m) or importlib.import_module(m)
    return "bundle" if site in Path(mod.__file__).resolve().parents else "node"
vers = ", ".join(f"{m} {getattr(importlib.import_module(m), '__version__', '?')} ({where(m)})"
                 for m in ("torch", "pyarrow", "huggingface_hub", "datasets", "papermill", "ipykernel"))
print(f"gpu_node_run: ok: Python {sys.version.split()[0]}, {len(stages)} stages, kernel '{kernel}'; {vers}")
PY

if [ $INSTALL_ONLY = 1 ]; then
  echo "gpu_node_run: installed (--install-only). The same environment by hand:"
  printf '  export PYTHONPATH=%q JUPYTER_PATH=%q PYTHON=%q\n' "$PYTHONPATH" "$JUPYTER_PATH" "$PYEXE"
  echo "  bash scripts/gpu_check.sh --profile $BUNDLE_PROFILE --run-dir $BUNDLE_RUN_DIR [--out DIR] [--budget-s N]"
  exit 0
fi
echo "gpu_node_run: bash scripts/gpu_check.sh --profile $BUNDLE_PROFILE --run-dir $BUNDLE_RUN_DIR ${PASS[*]+${PASS[*]}}"
exec bash scripts/gpu_check.sh --profile "$BUNDLE_PROFILE" --run-dir "$BUNDLE_RUN_DIR" ${PASS[@]+"${PASS[@]}"}
