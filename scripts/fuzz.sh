#!/usr/bin/env bash
# Runs every libFuzzer harness of BUILD (make fuzz) for SECONDS each, starting from its seed corpus
# in fuzz/corpus/<name>/; new inputs go to BUILD/corpus-<name>/, crashes to BUILD/crash-*.
set -euo pipefail
build=${1:-build-fuzz}
seconds=${2:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
status=0
for name in safetensors config trainer_state byte_data; do
  mkdir -p "$build/corpus-$name"
  echo "fuzz_$name: $seconds s"
  # One thread: the inputs are small, and the machine is shared.
  if ! (cd "$build" && OMP_NUM_THREADS=1 ./fuzz_$name -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 \
          -max_len=65536 -print_final_stats=1 "corpus-$name" "$root/fuzz/corpus/$name" 2>&1 | tail -n 12); then
    status=1
  fi
done
exit $status
