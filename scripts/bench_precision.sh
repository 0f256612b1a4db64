#!/usr/bin/env bash
# The C&P 16K training step, fp32 vs bf16 matrix products (docs/PERFORMANCE.md, "bf16"): ROUNDS
# alternated rounds of one `reformer train` run per precision (6 steps each); a step is the
# difference of consecutive wall_s records of metrics.jsonl, median over steps 2-6.
# Usage: scripts/bench_precision.sh [BUILD_DIR] [ROUNDS]   (prints the load average before each run)
# Each run waits (at most 180 s) until no other `reformer train` runs and the 1-minute load is below 1.5.
set -euo pipefail
build=${1:-build}
rounds=${2:-3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
step() {  # median of the wall_s differences of steps 2-6
  python3 - "$1" <<'PY'
import json, statistics, sys
w = [json.loads(l)["wall_s"] for l in open(sys.argv[1]) if json.loads(l).get("split") == "train"]
print(f"{statistics.median([b - a for a, b in zip(w, w[1:])]):.3f}")
PY
}
echo "round precision s/step load"
for r in $(seq 1 "$rounds"); do
  for p in fp32 bf16; do
    for _ in $(seq 90); do
      others=$(pgrep -fc "reformer train" || true)
      load=$(cut -d' ' -f1 /proc/loadavg)
      [ "$others" -eq 0 ] && awk "BEGIN {exit !($load < 1.5)}" && break
      sleep 2
    done
    load=$(cut -d' ' -f1 /proc/loadavg)
    rm -rf "$tmp/run"
    "$build/reformer" train --out "$tmp/run" --hidden-size 256 --ff-size 512 --heads 2 --head-size 64 \
      --attn-layers local,lsh --layers 6 --seq-len 16384 --lsh-chunk 64 --local-chunk 64 --hashes 1 --ff-chunk 4096 \
      --dropout 0.05 --batch 1 --steps 6 --log-interval 1000 --eval-windows 1 --schedule constant --warmup 1 \
      --threads 2 --precision "$p" > "$tmp/log" 2>&1 || { cat "$tmp/log"; exit 1; }
    echo "$r $p $(step "$tmp/run/metrics.jsonl") $load"
  done
done
