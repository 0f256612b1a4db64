#!/usr/bin/env python3
"""Loss curves of two runs (docs/PERFORMANCE.md, "bf16"): the mean training loss per window of
steps and every validation loss, side by side, as a Markdown table.
Usage: scripts/precision_loss_table.py FP32_RUN_DIR BF16_RUN_DIR [--window 500]"""
import argparse
import json
import statistics


def records(run):
    with open(f"{run}/metrics.jsonl") as f:
        return [json.loads(line) for line in f]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("fp32")
    ap.add_argument("bf16")
    ap.add_argument("--window", type=int, default=500)
    a = ap.parse_args()
    runs = [records(a.fp32), records(a.bf16)]
    train = [{r["step"]: r["loss"] for r in rs if r["split"] == "train"} for rs in runs]
    valid = [{r["step"]: r["loss"] for r in rs if r["split"] == "validation"} for rs in runs]
    print("| steps | fp32 train (mean) | bf16 train (mean) | bf16 / fp32 | fp32 validation | bf16 validation | bf16 / fp32 |")
    print("|---|--:|--:|--:|--:|--:|--:|")
    last = min(max(t) for t in train)
    for end in range(a.window, last + 1, a.window):
        steps = range(end - a.window + 1, end + 1)
        m = [statistics.mean(t[s] for s in steps if s in t) for t in train]
        v = [vv.get(end) for vv in valid]
        vs = f"| {v[0]:.4f} | {v[1]:.4f} | {v[1] / v[0]:.4f} |" if None not in v else "| | | |"
        print(f"| {steps[0]}-{end} | {m[0]:.4f} | {m[1]:.4f} | {m[1] / m[0]:.4f} {vs}")
    ends = [max(r["wall_s"] for r in rs if "wall_s" in r) for rs in runs]
    print(f"\nwall time of the runs: fp32 {ends[0]:.0f} s, bf16 {ends[1]:.0f} s")


if __name__ == "__main__":
    main()
