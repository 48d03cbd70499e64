#!/usr/bin/env bash
# The paper-scale check, in one command, on any machine with an NVIDIA GPU:
#   1. the CUDA tests (tests/test_cuda.py);
#   2. the three benchmarks (SAE training step, correlation engine, LM training step), ratios printed;
#   3. the `gpu` profile from the tokenizer stage on, under a wall-clock budget;
#   4. paper/gpu_run.md: machine, date, per-stage wall times and peak GPU memory, headline numbers.
#
#   bash scripts/gpu_check.sh [--run-dir runs/gpu] [--budget-s 540] [--out DIR]
#   bash scripts/gpu_check.sh --profile smoke --run-dir DIR --allow-cpu --skip-benchmarks   # the script's own test
#
# The data stage needs the internet (PyPI, Debian) and the data directory; a GPU node usually has neither. Prepare
# the run directory where they are (`python -m universal_features.reproduce --profile gpu --only data`), copy
# runs/gpu over (its corpora are zstd Parquet, about 30 MB), and run this: the finished data stage is skipped, since
# its cache key does not depend on where the run directory lives. With --out, the report, the run's tables and
# figures and the logs are also copied there (what a batch job hands back).
set -uo pipefail
cd "$(dirname "$0")/.."
PROFILE=gpu; RUN_DIR=""; BUDGET=540; OUT_DIR=""; ALLOW_CPU=0; BENCH=1
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
START=$(date +%s)
left() { echo $(( BUDGET - ($(date +%s) - START) )); }
LOGS=$RUN_DIR/gpu_check; mkdir -p "$LOGS"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=true

if [ $ALLOW_CPU = 0 ] && ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check: no CUDA device visible to $PY; this script is for a machine with an NVIDIA GPU" >&2; exit 1
fi
if [ ! -f "$RUN_DIR/.stages/data.json" ]; then
  echo "gpu_check: $RUN_DIR has no finished data stage: run \`python -m universal_features.reproduce --profile $PROFILE --only data\` on a machine with the internet and the data directory, then copy $RUN_DIR here" >&2
  exit 1
fi

# GPU memory in use, sampled twice a second for the whole check (per-stage peaks come from the stage windows)
( while true; do echo "$(date +%s.%N) $(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits 2>/dev/null | head -1)"; sleep 0.5; done ) > "$LOGS/gpu_memory.log" 2>/dev/null &
SAMPLER=$!
trap 'kill $SAMPLER 2>/dev/null' EXIT

echo "== CUDA tests ($(left) s left)"
timeout 240 "$PY" -m pytest -q -m cuda tests/test_cuda.py -p no:cacheprovider 2>&1 | tee "$LOGS/cuda_tests.log" | tail -5

if [ $BENCH = 1 ]; then
echo "== benchmarks ($(left) s left)"
timeout 120 "$PY" benchmarks/sae_train.py --rounds 3 --steps 40 2>&1 | tee "$LOGS/bench_sae.log" | grep -v "it/s\|act/s]" 
timeout 90 "$PY" benchmarks/correlation.py --latents 16384 --tokens 32768 --pairs 200 2>&1 | tee "$LOGS/bench_correlation.log"
timeout 90 "$PY" benchmarks/lm_train.py --profile gpu --rounds 3 2>&1 | tee "$LOGS/bench_lm.log" | grep -v "it/s"
timeout 60 "$PY" benchmarks/assignment.py 2>&1 | tee "$LOGS/bench_assignment.log"
fi

REPORT_RESERVE=45
echo "== the $PROFILE profile ($(left) s left; the pipeline gets $(( $(left) - REPORT_RESERVE )) s)"
timeout $(( $(left) - REPORT_RESERVE )) "$PY" -m universal_features.reproduce --profile "$PROFILE" --run-dir "$RUN_DIR" --no-progress \
  2>&1 | grep -v "Kernel is running over TCP" | tee "$LOGS/pipeline.log"
echo "pipeline exit status ${PIPESTATUS[0]}" | tee -a "$LOGS/pipeline.log"

kill $SAMPLER 2>/dev/null
echo "== report"
REPORT=paper/gpu_run.md; PUBLISH=--publish
if [ "$PROFILE" != gpu ]; then REPORT=$LOGS/gpu_run.md; PUBLISH=""; fi   # only the gpu profile's report is the artifact's
"$PY" scripts/gpu_report.py --run-dir "$RUN_DIR" --logs "$LOGS" --out "$REPORT" $PUBLISH
if [ -n "$OUT_DIR" ]; then
  mkdir -p "$OUT_DIR"
  cp "$REPORT" "$OUT_DIR/"
  tar -czf "$OUT_DIR/gpu_results.tar.gz" -C "$RUN_DIR" tables figures 2>/dev/null
  tar -czf "$OUT_DIR/gpu_logs.tar.gz" -C "$RUN_DIR" gpu_check logs .stages results.json config.json 2>/dev/null
  tar -czf "$OUT_DIR/gpu_notebooks.tar.gz" -C "$RUN_DIR" notebooks 2>/dev/null
fi
echo "gpu_check: done in $(( $(date +%s) - START )) s"
