#!/usr/bin/env bash
# Data parallelism on one machine (issue 13's target; docs/DISTRIBUTED.md): the same global batch of
# 2 micro-batches of one C&P-size 16K-byte sequence each, as
#   1 rank x 2 threads (--grad-accum 2)   vs   2 ranks x 1 thread (mpirun -np 2, --grad-accum 1).
# Reports the median step time (steps after the first) and, for 2 ranks, rank 0's time with the
# gradient all-reduces in flight behind the backward (overlap) and blocked after it (wait).
# Needs a quiet machine: refuses to start when the 1-minute load is 0.5 or more (FORCE=1 overrides,
# and the output then says "disturbed"). Usage: scripts/bench_mpi.sh [steps, default 6]
set -euo pipefail
cd "$(dirname "$0")/.."
R=${R:-build/reformer}
STEPS=${1:-6}
load=$(cut -d' ' -f1 /proc/loadavg)
note=""
if awk "BEGIN{exit !($load >= 0.5)}"; then
  [ "${FORCE:-0}" = 1 ] || { echo "load $load >= 0.5: not a quiet machine; rerun later (FORCE=1 to measure anyway)"; exit 2; }
  note=" (disturbed: load $load at start)"
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
CP="--hidden-size 256 --ff-size 512 --heads 2 --head-size 64 --attn-layers local,lsh --layers 6 --seq-len 16384
    --lsh-chunk 64 --local-chunk 64 --hashes 1 --ff-chunk 4096 --dropout 0.05 --batch 1 --steps $STEPS
    --log-interval 1000 --eval-windows 1 --schedule constant --warmup 1"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
"$R" train --out "$out/one" $CP --threads 2 --grad-accum 2 > "$out/one.log" 2>&1
mpirun -np 2 --oversubscribe "$R" train --out "$out/two" $CP --threads 1 --grad-accum 1 > "$out/two.log" 2>&1
python3 - "$out" "$note" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import json, statistics, sys
out, note, load_end = sys.argv[1], sys.argv[2], sys.argv[3]
def steps(run):
    recs = [r for r in map(json.loads, open(f"{out}/{run}/metrics.jsonl")) if r["split"] == "train"]
    walls = [r["wall_s"] for r in recs]
    return recs[1:], [b - a for a, b in zip(walls, walls[1:])]  # the first step (allocation, warm-up) left out
one_recs, one = steps("one")
two_recs, two = steps("two")
t1, t2 = statistics.median(one), statistics.median(two)
print(f"C&P, L = 16384, global batch 2 micro-batches, {len(one)} timed steps each{note}")
print(f"  1 rank  x 2 threads: median step {t1:.3f} s  (steps: {' '.join(f'{t:.2f}' for t in one)})")
print(f"  2 ranks x 1 thread : median step {t2:.3f} s  (steps: {' '.join(f'{t:.2f}' for t in two)})")
print(f"  2 ranks / 1 rank: {t2 / t1:.3f}  (target <= 1.10)")
ov = statistics.median(r["allreduce_overlap_s"] for r in two_recs)
wt = statistics.median(r["allreduce_wait_s"] for r in two_recs)
mb = two_recs[0]["allreduce_bytes"] / 2**20
print(f"  all-reduce per step: {mb:.2f} MiB; in flight behind the backward {ov * 1e3:.1f} ms, waited after it {wt * 1e3:.1f} ms (rank 0, medians)")
tb = statistics.median(r["backward_layers_s"] for r in two_recs)
print(f"  backward of the layers and embeddings (last micro-batch, 1 thread): {tb:.3f} s, {tb / 6 * 1e3:.0f} ms per layer")
print(f"  load average at the end: {load_end}")
# The scaling model of docs/DISTRIBUTED.md from these measurements: a bandwidth-optimal all-reduce of
# S bytes in 8 groups, alpha = 10 us per message, hidden behind the layers' backward except the
# embeddings' group (the last one); one rank's step = this 1-thread rank's step (2 micro-batches).
S = two_recs[0]["allreduce_bytes"]
emb = 98816 * 4  # the embeddings' group: `reformer info` of this model, part "embeddings" (fp32)
import math
alpha = 10e-6
print(f"  scaling model (step {t2:.2f} s per rank, backward {tb:.2f} s): efficiency = step / (step + exposed)")
print("    ranks   10 Gb/s (exposed)      100 Gb/s (exposed)     400 Gb/s (exposed)")
for n in (8, 64, 512):
    row = []
    for gbps in (10, 100, 400):
        bw = gbps * 1e9 / 8
        t_ar = 2 * (n - 1) / n * S / bw + 8 * 2 * math.log2(n) * alpha
        t_emb = 2 * (n - 1) / n * emb / bw + 2 * math.log2(n) * alpha
        exposed = max(0.0, t_ar - tb) + t_emb
        row.append(f"{t2 / (t2 + exposed) * 100:8.3f}% ({exposed * 1e3:.2f} ms)")
    print(f"    {n:5d}  " + "  ".join(row))
PY
