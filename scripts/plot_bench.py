#!/usr/bin/env python3
"""PNG plots from reformer_bench CSV (and the Hugging Face peer CSV), for docs/PERFORMANCE.md.

  /work/hfvenv/bin/python scripts/plot_bench.py --csv bench-results/reformer.csv \
      [--csv bench-results/long.csv ...] [--hf bench-results/hf_peer.csv] --out docs/plots

Writes memory_vs_length.png (LSH, local, full, C&P mixed, Hugging Face), sec_per_token_vs_length.png,
memory_vs_layers.png (reversible vs stored activations), memory_vs_dff.png (chunked vs unchunked FF).
Only rows with status "ok" are plotted; peak memory is the process peak RSS of the row's own process.
"""
import argparse
import csv
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

GIB = 2 ** 30


def load_all(paths):
    """Every row, failed ones included (to mark where a run failed)."""
    rows = []
    for p in paths:
        if p and os.path.exists(p):
            with open(p) as f:
                rows += list(csv.DictReader(f))
    return rows


def load(paths):
    return [r for r in load_all(paths) if r.get("status") == "ok"]


def series(rows, key, **where):
    pts = sorted((int(r[key]), r) for r in rows if all(r.get(k) == v for k, v in where.items()))
    return [x for x, _ in pts], [r for _, r in pts]


def save(fig, out, name):
    fig.tight_layout()
    path = os.path.join(out, name)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print("wrote", path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--csv", action="append", default=[])
    ap.add_argument("--hf", default=None)
    ap.add_argument("--out", default="docs/plots")
    args = ap.parse_args()
    rows = load(args.csv)
    hf_all = load_all([args.hf])
    hf = [r for r in hf_all if r.get("status") == "ok"]
    os.makedirs(args.out, exist_ok=True)
    train = [r for r in rows if r["mode"] == "train" and r["reversible"] == "1" and r["sweep"] in ("length", "long", "attn")]

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for attn, label in (("mixed", "C&P (local+LSH)"), ("lsh", "LSH only"), ("local", "local only"), ("full", "full (blockwise)")):
        xs, rs = series(train, "length", attn=attn)
        if xs:
            ax.plot(xs, [int(r["peak_rss"]) / GIB for r in rs], "o-", label=label)
    hx, hr = series(hf, "length", impl="huggingface")
    if hx:
        ax.plot(hx, [int(r["peak_rss"]) / GIB for r in hr], "s--", label="Hugging Face (C&P)")
    # Lengths where the HF peer failed (out of memory): marked at the top of the plot.
    failed = sorted(int(r["length"]) for r in hf_all if r.get("impl") == "huggingface" and r.get("status") != "ok")
    for L in failed:
        ax.annotate("HF out of\nmemory", (L, 1), xycoords=("data", "axes fraction"), xytext=(0, -4),
                    textcoords="offset points", ha="center", va="top", fontsize=8, color="tab:purple")
        ax.axvline(L, color="tab:purple", linestyle=":", alpha=0.6)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequence length (tokens)")
    ax.set_ylabel("process peak RSS (GiB)")
    ax.set_title("Training step: peak memory vs sequence length")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    save(fig, args.out, "memory_vs_length.png")

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for attn, label in (("mixed", "C&P (local+LSH)"), ("lsh", "LSH only"), ("local", "local only"), ("full", "full (blockwise)")):
        xs, rs = series(train, "length", attn=attn)
        if xs:
            ax.plot(xs, [float(r["sec_per_token"]) * 1e6 for r in rs], "o-", label=label)
    if hx:
        ax.plot(hx, [1e6 / float(r["tokens_per_s"]) for r in hr], "s--", label="Hugging Face (C&P)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequence length (tokens)")
    ax.set_ylabel("training time per token (µs)")
    ax.set_title("Training step: seconds per token vs sequence length")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    save(fig, args.out, "sec_per_token_vs_length.png")

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for rev, label in (("1", "reversible"), ("0", "stored activations")):
        xs, rs = series([r for r in rows if r["sweep"] == "layers"], "layers", reversible=rev)
        if xs:
            ax.plot(xs, [int(r["peak_rss"]) / GIB for r in rs], "o-", label=label + " (peak RSS)")
            ax.plot(xs, [(int(r["alloc_peak_activations"]) + int(r["alloc_peak_workspace"])) / GIB for r in rs], "x:",
                    label=label + " (activations + workspace)")
    ax.set_xlabel("layers")
    ax.set_ylabel("GiB")
    ax.set_title("Peak memory vs depth (C&P, L = 65,536)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    save(fig, args.out, "memory_vs_layers.png")

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for ch, label in (("0", "unchunked feed-forward"), ("4096", "chunked feed-forward (4096 rows)")):
        xs, rs = series([r for r in rows if r["sweep"] == "dff"], "d_ff", ff_chunk=ch)
        if xs:
            ax.plot(xs, [int(r["peak_rss"]) / GIB for r in rs], "o-", label=label)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("d_ff")
    ax.set_ylabel("process peak RSS (GiB)")
    ax.set_title("Peak memory vs d_ff (C&P, L = 65,536)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    save(fig, args.out, "memory_vs_dff.png")


if __name__ == "__main__":
    main()
