#!/usr/bin/env bash
# `make demo`: trains a small Reformer (local + LSH attention, 1024-byte sequences) on the GNU
# Collaborative International Dictionary of English (Debian's dict-gcide) for a few minutes on two
# cores, then prints validation bits per byte and a generated sample.
# Usage: bash scripts/demo.sh BUILD_DIR   (STEPS=N to train longer or shorter)
set -euo pipefail

build=${1:?usage: bash scripts/demo.sh BUILD_DIR}
reformer="$build/reformer"
data=/usr/share/dictd/gcide.dict.dz
out="$build/demo-run"
steps=${STEPS:-3000}
threads=${THREADS:-2}

[[ -x "$reformer" ]] || { echo "demo: $reformer not found; build first (make build)" >&2; exit 1; }
[[ -r "$data" ]] || { echo "demo: $data not found; install dict-gcide (make bootstrap)" >&2; exit 1; }

rm -rf "$out"  # the demo's own run directory, recreated every time
start=$(date +%s)
echo "== training $steps steps on $data ($threads threads)"
"$reformer" train --data "$data" --out "$out" --threads "$threads" \
  --hidden-size 128 --heads 2 --head-size 64 --attn-layers local,lsh --layers 2 --seq-len 1024 \
  --hashes 1 --batch 1 --steps "$steps" --lr 4e-3 --warmup 30 --dropout 0 \
  --log-interval 100 --eval-windows 16
trained=$(date +%s)

echo "== validation (first 100 windows of 1024 bytes, evaluated with 2 hashes)"
"$reformer" eval --model "$out" --data "$data" --split validation --max-windows 100 --batch 4 --num-hashes 2 --threads "$threads"

echo "== sample (temperature 0.8, top-p 0.95)"
prompt='Reformer, n. '
printf '%s' "$prompt"
"$reformer" generate --model "$out" --prompt "$prompt" --bytes 300 --temperature 0.8 --top-p 0.95 --seed 1 --threads "$threads"
echo
echo "== wall time: training $((trained - start)) s, total $(($(date +%s) - start)) s; model and metrics.jsonl in $out"
