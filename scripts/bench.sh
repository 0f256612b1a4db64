#!/usr/bin/env bash
# `make bench`: the benchmark sweeps (bench/reformer_bench.cpp), generation (bench/decode_bench.cpp),
# the Hugging Face peer, the plots.
#   bash scripts/bench.sh BUILD_DIR            full sweeps (tens of minutes; long runs take minutes each)
#   QUICK=1 bash scripts/bench.sh BUILD_DIR    seconds-long smoke run
# Outputs go to bench-results/ (CSV, microbenchmark JSON) and docs/plots/ (PNG). Set SWEEPS to choose sweeps
# (length,long,attn,forward,layers,dff,e8), HF=0 to skip the Hugging Face peer, PLOTS=0 to skip plots.
set -euo pipefail
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$ROOT/bench-results}
mkdir -p "$OUT"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
BENCH="$BUILD/reformer_bench"
[ -x "$BENCH" ] || { echo "missing $BENCH: build with REFORMER_BENCH=ON" >&2; exit 1; }
if [ "${QUICK:-0}" = 1 ]; then
  "$BENCH" --quick --out "$OUT/quick.csv"
  exit 0
fi
SWEEPS=${SWEEPS:-length,attn,forward,layers,dff,long,e8}
"$BENCH" --sweeps "$SWEEPS" --reps "${REPS:-3}" --warmup 1 --mem-limit-gib "${MEM_LIMIT_GIB:-16}" --out "$OUT/reformer.csv"
for micro in "$BUILD"/micro_*; do  # kernel microbenchmarks (Google Benchmark), JSON per program
  if [ -x "$micro" ]; then
    "$micro" --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
      --benchmark_out="$OUT/$(basename "$micro").json" --benchmark_out_format=json
  fi
done
CONTEXTS=${DECODE_CONTEXTS:-1000,16000,60000,1048576} bash "$ROOT/scripts/bench_decode.sh" "$BUILD" "$OUT/decode.csv"
PY=${PYTHON:-/work/hfvenv/bin/python}
if [ "${HF:-1}" = 1 ] && [ -x "$PY" ]; then
  "$PY" "$ROOT/scripts/hf_peer_bench.py" --reformer-bench "$BENCH" --out "$OUT/hf_peer.csv" --table "$OUT/hf_ratio.md"
fi
if [ "${PLOTS:-1}" = 1 ] && [ -x "$PY" ]; then
  "$PY" "$ROOT/scripts/plot_bench.py" --csv "$OUT/reformer.csv" --hf "$OUT/hf_peer.csv" --out "$ROOT/docs/plots"
fi
