#!/usr/bin/env python3
"""Loss curves of two runs (docs/PERFORMANCE.md, "bf16"): the mean training loss per window of
steps and every validation loss, side by side, as a Markdown table; with --plot, also a PNG of both
curves (training loss as a running mean over --smooth steps, validation losses as points) and of
their ratio (needs matplotlib).
Usage: scripts/precision_loss_table.py FP32_RUN_DIR BF16_RUN_DIR [--window 500] [--plot PNG [--smooth 100]]"""
import argparse
import collections
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
    ap.add_argument("--plot", help="also write the curves to this PNG")
    ap.add_argument("--smooth", type=int, default=100, help="running-mean window of the plotted training loss")
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
    if a.plot:
        plot(train, valid, a.smooth, a.plot)


def running_mean(curve, n):
    out, window = {}, collections.deque(maxlen=n)
    for s in sorted(curve):
        window.append(curve[s])
        if len(window) == n:
            out[s] = statistics.mean(window)
    return out


def plot(train, valid, smooth, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 7), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    smoothed = [running_mean(t, smooth) for t in train]
    for name, color, sm, v in zip(("fp32", "bf16"), ("tab:blue", "tab:orange"), smoothed, valid):
        top.plot(list(sm), list(sm.values()), color=color, label=f"{name} training loss ({smooth}-step mean)")
        top.plot(list(v), list(v.values()), "o", color=color, label=f"{name} validation loss")
    top.set_ylabel("loss (nats per byte)")
    top.legend()
    top.grid(alpha=0.3)
    common = sorted(set(smoothed[0]) & set(smoothed[1]))
    bottom.plot(common, [smoothed[1][s] / smoothed[0][s] for s in common], color="tab:green", label="training")
    vsteps = sorted(set(valid[0]) & set(valid[1]))
    bottom.plot(vsteps, [valid[1][s] / valid[0][s] for s in vsteps], "o", color="tab:red", label="validation")
    bottom.axhline(1.0, color="black", linewidth=0.8)
    for bound in (0.99, 1.01):
        bottom.axhline(bound, color="gray", linestyle="--", linewidth=0.8)
    bottom.set_ylabel("bf16 / fp32")
    bottom.set_xlabel("step")
    bottom.legend()
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
