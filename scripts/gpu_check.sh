#!/usr/bin/env bash
# The paper-scale check, in one command, on any machine with an NVIDIA GPU, inside one wall-clock budget:
#   1. the `gpu` profile from the tokenizer stage on (the pipeline comes first: it is what the check is for);
#   2. the CUDA tests (tests/test_cuda.py), with the time that is left;
#   3. the benchmarks (SAE training step, the matching stage under cProfile, LM training step, correlation engine,
#      assignment), each only if its timeout still fits, ratios and absolute throughputs printed;
#   4. paper/gpu_run.md: machine, date, per-stage wall times and peak GPU memory, headline numbers, benchmarks, tests.
#
#   bash scripts/gpu_check.sh [--run-dir runs/gpu] [--budget-s 480] [--out DIR]
#   bash scripts/gpu_check.sh --profile smoke --run-dir DIR --allow-cpu --skip-benchmarks   # the script's own test
#
# The data stage needs the internet (PyPI, Debian) and the data directory; a GPU node usually has neither. Prepare
# the run directory where they are (`uf-reproduce --profile gpu --only data`), copy
# runs/gpu over (its corpora are zstd Parquet, about 30 MB), and run this: the finished data stage is skipped, since
# its cache key does not depend on where the run directory lives. scripts/gpu_bundle.sh packs the repository, that run
# directory and the wheels a node lacks into one archive for an air-gapped node. With --out, the report, the run's
# tables and figures, the executed notebooks and the logs are also copied there (what a batch job hands back).
set -uo pipefail
cd "$(dirname "$0")/.."
PROFILE=gpu; RUN_DIR=""; BUDGET=480; OUT_DIR=""; ALLOW_CPU=0; BENCH=1
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) PROFILE=$2; shift 2;;
    --run-dir) RUN_DIR=$2; shift 2;;
    --budget-s) BUDGET=$2; shift 2;;
    --out) OUT_DIR=$2; shift 2;;
    --allow-cpu) ALLOW_CPU=1; shift;;
    --skip-benchmarks) BENCH=0; shift;;
    *) echo "usage: bash scripts/gpu_check.sh [--profile gpu] [--run-dir DIR] [--budget-s SECONDS] [--out DIR] [--allow-cpu] [--skip-benchmarks]" >&2; exit 2;;
  esac
done
RUN_DIR=${RUN_DIR:-runs/$PROFILE}
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
# the runner's entry point (the console script uf-reproduce) as a -c program: the node's bundle puts the package on
# PYTHONPATH (pip --target), where no console script is on PATH
REPRODUCE='import sys; from universal_features.reproduce import main; sys.exit(main())'
START=$(date +%s)
left() { echo $(( BUDGET - ($(date +%s) - START) )); }
REPORT_RESERVE=30     # seconds kept for the report and the archives at the end
# run_within SECONDS NAME CMD...: run CMD with a timeout of SECONDS if that still fits the budget, else say it was skipped
run_within() {
  local want=$1 name=$2; shift 2
  local room=$(( $(left) - REPORT_RESERVE ))
  if [ "$room" -lt 10 ]; then echo "== $name: skipped, $(left) s of the budget left"; echo "skipped: out of budget" > "$LOGS/$name.log"; return 0; fi
  [ "$want" -gt "$room" ] && want=$room
  echo "== $name (timeout ${want} s, $(left) s left)"
  timeout "$want" "$@" > "$LOGS/$name.log" 2>&1
  local rc=$?
  [ $rc = 124 ] && printf "\ntimed out after %s s\n" "$want" >> "$LOGS/$name.log"
  grep -v "it/s\|act/s\]\|Kernel is running" "$LOGS/$name.log" | tail -8
  return 0
}
LOGS=$RUN_DIR/gpu_check; mkdir -p "$LOGS"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=true

if [ $ALLOW_CPU = 0 ] && ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check: no CUDA device visible to $PY; this script is for a machine with an NVIDIA GPU" >&2; exit 1
fi
if [ ! -f "$RUN_DIR/.stages/data.json" ]; then
  echo "gpu_check: $RUN_DIR has no finished data stage: run \`uf-reproduce --profile $PROFILE --only data\` on a machine with the internet and the data directory, then copy $RUN_DIR here (or use scripts/gpu_bundle.sh)" >&2
  exit 1
fi

# GPU memory in use, sampled twice a second for the whole check (per-stage peaks come from the stage windows)
( while true; do echo "$(date +%s.%N) $(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits 2>/dev/null | head -1)"; sleep 0.5; done ) > "$LOGS/gpu_memory.log" 2>/dev/null &
SAMPLER=$!
trap 'kill $SAMPLER 2>/dev/null' EXIT

# 1. the pipeline, with everything but the report's reserve; what it leaves goes to the tests and benchmarks
echo "== the $PROFILE profile ($(left) s left; the pipeline gets $(( $(left) - REPORT_RESERVE )) s)"
P0=$(date +%s)
timeout $(( $(left) - REPORT_RESERVE )) "$PY" -c "$REPRODUCE" --profile "$PROFILE" --run-dir "$RUN_DIR" --no-progress \
  2>&1 | grep --line-buffered -v "Kernel is running over TCP" | tee "$LOGS/pipeline.log"
echo "pipeline exit status ${PIPESTATUS[0]} after $(( $(date +%s) - P0 )) s" | tee -a "$LOGS/pipeline.log"

# 2. the CUDA tests, 3. the benchmarks: each only while its timeout fits what is left
run_within 120 cuda_tests "$PY" -m pytest -q -m cuda tests/test_cuda.py -p no:cacheprovider
if [ $BENCH = 1 ]; then
  run_within 90 bench_sae "$PY" benchmarks/sae_train.py --shape gpu --rounds 3 --steps 40
  run_within 90 bench_matching "$PY" benchmarks/matching_stage.py --run-dir "$RUN_DIR" --blocks-per-domain 500 --top 20
  run_within 60 bench_correlation "$PY" benchmarks/correlation.py --latents 16384 --tokens 32768 --pairs 200
  run_within 90 bench_lm "$PY" benchmarks/lm_train.py --profile gpu --rounds 3
  run_within 60 bench_assignment "$PY" benchmarks/assignment.py
fi

kill $SAMPLER 2>/dev/null
echo "== report"
REPORT=paper/gpu_run.md; PUBLISH=--publish
if [ "$PROFILE" != gpu ]; then REPORT=$LOGS/gpu_run.md; PUBLISH=""; fi   # only the gpu profile's report is the artifact's
"$PY" scripts/gpu_report.py --run-dir "$RUN_DIR" --logs "$LOGS" --out "$REPORT" --budget-s "$BUDGET" --elapsed-s $(( $(date +%s) - START )) $PUBLISH
if [ -n "$OUT_DIR" ]; then
  mkdir -p "$OUT_DIR"
  cp "$REPORT" "$OUT_DIR/"
  tar -czf "$OUT_DIR/gpu_results.tar.gz" -C "$RUN_DIR" tables figures 2>/dev/null
  tar -czf "$OUT_DIR/gpu_logs.tar.gz" -C "$RUN_DIR" gpu_check logs .stages results.json config.json 2>/dev/null
  tar -czf "$OUT_DIR/gpu_notebooks.tar.gz" -C "$RUN_DIR" notebooks 2>/dev/null
fi
echo "gpu_check: done in $(( $(date +%s) - START )) s"
