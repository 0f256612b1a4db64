#!/usr/bin/env bash
# Incremental decoding benchmark (bench/decode_bench.cpp): per context length, the prefill time and
# the milliseconds per generated token of the C&P-size byte model, one process per context (peak RSS
# per row), with the FMA peak of the same run first. Run it alone: other busy processes wreck
# OpenMP timings.
#   bash scripts/bench_decode.sh BUILD_DIR [OUT_CSV]       (CONTEXTS=1000,16000,60000,1048576 TOKENS=64)
set -euo pipefail
BUILD=${1:-build}
OUT=${2:-bench-results/decode.csv}
mkdir -p "$(dirname "$OUT")"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
CONTEXTS=${CONTEXTS:-1000,16000,60000,1048576}
TOKENS=${TOKENS:-64}
echo "# fma_gflops(1 thread, all threads): $("$BUILD/reformer_bench" --fma)" | tee "$OUT"
"$BUILD/decode_bench" --header | tee -a "$OUT"
for n in ${CONTEXTS//,/ }; do
  "$BUILD/decode_bench" --context "$n" --tokens "$TOKENS" | tee -a "$OUT"
done
# The forward-pass throughput of the same run, to compare prefill with (training-length sweep's forward mode).
for n in 16384 65536; do
  echo "# forward L=$n: $("$BUILD/reformer_bench" --run "name=forward;model=cp;mode=forward;length=$n;reps=3;warmup=1")" | tee -a "$OUT"
done
