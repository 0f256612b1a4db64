#!/usr/bin/env bash
# Alternating rounds of the C&P 16K training step for several `reformer` binaries (docs/PERFORMANCE.md,
# "Issue 14"): for each round, each binary runs `reformer train` once; prints the median of the
# `wall_s` differences of steps 2..STEPS, the process's user/system CPU and elapsed seconds
# (/usr/bin/time) and the load average before and after.
# Usage: [ROUNDS=3] [THREADS=2] [STEPS=6] [OUT=/tmp/issue14-ab] scripts/issue14_ab.sh BIN...
set -euo pipefail
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-2}
STEPS=${STEPS:-6}
OUT=${OUT:-/tmp/issue14-ab}
mkdir -p "$OUT"
ARGS="--hidden-size 256 --ff-size 512 --heads 2 --head-size 64 --attn-layers local,lsh --layers 6 --seq-len 16384
--lsh-chunk 64 --local-chunk 64 --hashes 1 --ff-chunk 4096 --dropout 0.05 --batch 1 --steps $STEPS --log-interval 1000
--eval-windows 1 --schedule constant --warmup 1 --threads $THREADS"
i=0
for r in $(seq 1 "$ROUNDS"); do
  i=0
  for b in "$@"; do
    i=$((i + 1))
    d="$OUT/bin$i-round$r"
    rm -rf "$d"
    l0=$(cut -d' ' -f1 /proc/loadavg)
    # shellcheck disable=SC2086
    /usr/bin/time -f "%U %S %e" -o "$d.time" "$b" train --out "$d" $ARGS > "$d.log" 2>&1
    l1=$(cut -d' ' -f1 /proc/loadavg)
    python3 - "$d" "$b" "$r" "$l0" "$l1" <<'PY'
import json, statistics, sys
d, b, r, l0, l1 = sys.argv[1:]
w = [json.loads(l)["wall_s"] for l in open(d + "/metrics.jsonl") if '"wall_s"' in l]
st = [y - x for x, y in zip(w, w[1:])]
u, s, e = open(d + ".time").read().split()[-3:]
print(f"round {r} {b}: step median {statistics.median(st):.3f} s {[round(x, 3) for x in st]}; "
      f"user {u} s sys {s} s elapsed {e} s; load {l0} -> {l1}", flush=True)
PY
  done
done
