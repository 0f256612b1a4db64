#!/usr/bin/env python3
"""Hugging Face peer benchmark: ReformerModelWithLMHead (PyPI torch, CPU) vs reformer_bench.

Same model ("C&P": 6 layers [local, lsh] x 3, hidden 256, d_ff 512, 2 heads x 64, chunks 64, one
chunk before, HF's auto num_buckets, axial positions, vocabulary 320, causal, feed-forward chunk
4096 rows), same sequence length, same thread count (torch.set_num_threads(THREADS), OMP_NUM_THREADS
for reformer_bench). A training step is forward + loss + backward + Adam update on both sides.

Each (implementation, L) runs in its own process, so peak RSS (ru_maxrss / VmHWM) is per run. The
Hugging Face process runs under an address-space limit (--hf-mem-gib, default 12) so that running
out of memory fails cleanly (reported as "OOM") instead of taking the shared machine down.

  /work/hfvenv/bin/python scripts/hf_peer_bench.py --reformer-bench build/reformer_bench \
      --lengths 16384,65536 --out bench-results/hf_peer.csv --table bench-results/hf_ratio.md

Ours runs twice per length: all layers reversible, and with the per-layer plan that `reformer train
--max-memory` makes for a quarter of HF's measured peak RSS (--planned-share), the memory target.

--rounds N repeats the three runs of each length N times, one after the other (ours, HF, ours
planned; the plan from that round's HF peak), and the table gives each row's median over the
rounds: the speed ratio is the median of the rounds' own ratios. On a shared machine whose speed
drifts by +-20% between processes, one round proves little.
"""
import argparse
import csv
import json
import os
import resource
import statistics
import subprocess
import sys
import time


def axial_shape(L):
    p = L.bit_length() - 1
    a = 1 << (p // 2)
    while L % a:
        a //= 2
    return [a, L // a]


def auto_num_buckets(L, chunk=64, max_pos=None):
    # HF _set_num_buckets (same rule as ReformerConfig::auto_num_buckets in the engine).
    max_pos = max_pos or L
    target = 2 * (L // chunk)
    p = max(target.bit_length() - 1, 0)
    n = 1 << p
    limit = 2 * max(int((max_pos // chunk) ** 0.5), chunk)
    if n > limit:
        return [1 << (p // 2), 1 << (p - p // 2)]
    return max(n, 2)


def hf_child(L, reps, warmup, threads):
    """Runs in the child: prints one JSON line."""
    import torch
    from transformers import ReformerConfig, ReformerModelWithLMHead

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = ReformerConfig(
        attn_layers=["local", "lsh"] * 3, hidden_size=256, feed_forward_size=512, num_attention_heads=2,
        attention_head_size=64, local_attn_chunk_length=64, lsh_attn_chunk_length=64, local_num_chunks_before=1,
        local_num_chunks_after=0, lsh_num_chunks_before=1, lsh_num_chunks_after=0, num_hashes=1, vocab_size=320,
        axial_pos_embds=True, axial_pos_shape=axial_shape(L), axial_pos_embds_dim=[64, 192], is_decoder=True,
        hidden_dropout_prob=0.05, local_attention_probs_dropout_prob=0.05, lsh_attention_probs_dropout_prob=0.0,
        chunk_size_feed_forward=4096, max_position_embeddings=L, num_buckets=auto_num_buckets(L), hidden_act="relu",
        axial_norm_std=1.0, pad_token_id=0, eos_token_id=2)
    model = ReformerModelWithLMHead(cfg)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    ids = torch.randint(0, 320, (1, L))
    times = []
    for r in range(warmup + reps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=False)
        out = model(input_ids=ids, labels=ids)
        out.loss.backward()
        opt.step()
        dt = time.perf_counter() - t0
        if r >= warmup:
            times.append(dt)
        print(f"  [hf L={L}] step {r}: {dt:.3f} s, loss {out.loss.item():.4f}", file=sys.stderr)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"sec_per_step": statistics.median(times), "min": min(times), "max": max(times), "peak_rss": rss,
                      "threads": torch.get_num_threads(), "torch": torch.__version__}))


def run_hf(L, args):
    def limit():
        lim = int(args.hf_mem_gib * (1 << 30))
        resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
    cmd = [sys.executable, __file__, "--hf-child", str(L), "--reps", str(args.reps), "--warmup", str(args.warmup),
           "--threads", str(args.threads)]
    print(" ".join(cmd), file=sys.stderr)
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=limit,
                           timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"status": f"timeout>{args.timeout}s"}, " ".join(cmd)
    sys.stderr.write(p.stderr[-2000:])
    if p.returncode != 0:
        oom = "MemoryError" in p.stderr or "out of memory" in p.stderr.lower() or "alloc" in p.stderr.lower() or p.returncode < 0
        return {"status": ("OOM" if oom else "failed") + f"(exit {p.returncode}, limit {args.hf_mem_gib} GiB)"}, " ".join(cmd)
    res = json.loads(p.stdout.strip().splitlines()[-1])
    res["status"] = "ok"
    return res, " ".join(cmd)


def run_ours(L, args, max_memory=0):
    """All layers reversible, or (max_memory > 0) the per-layer plan `reformer train --max-memory`
    makes for that many bytes: the lowest layers that fit keep their forward for the backward."""
    enc = f"name=hf_peer;model=cp;attn=mixed;mode=train;length={L};layers=0;d_ff=0;ff_chunk=4096;hashes=0;" \
          f"reversible=1;reps={args.reps};warmup={args.warmup}" + (f";max_memory={max_memory}" if max_memory else "")
    cmd = [args.reformer_bench, "--run", enc]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    print(" ".join(cmd), file=sys.stderr)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, timeout=args.timeout)
    sys.stderr.write(p.stderr)
    if p.returncode != 0:
        return {"status": f"failed(exit {p.returncode})"}, " ".join(cmd)
    f = p.stdout.strip().splitlines()[-1].split(",")
    plan = next((l[len("plan: "):] for l in p.stderr.splitlines() if l.startswith("plan: ")), "all layers reversible")
    # buckets,threads,med,min,max,tok/s,s/tok,flop,gflops,alloc x6,rss,loss
    return {"status": "ok", "sec_per_step": float(f[2]), "min": float(f[3]), "max": float(f[4]),
            "peak_rss": int(f[15]), "plan": plan}, " ".join(cmd)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hf-child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--reformer-bench", default="build/reformer_bench")
    ap.add_argument("--lengths", default="16384,65536")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--hf-mem-gib", type=float, default=12.0)
    ap.add_argument("--planned-share", type=float, default=0.25,
                    help="the planned run's --max-memory as a share of HF's peak RSS (default 0.25, the memory target)")
    ap.add_argument("--rounds", type=int, default=1, help="repeat each length's three runs this many times (medians)")
    ap.add_argument("--timeout", type=int, default=3600)
    ap.add_argument("--out", default="bench-results/hf_peer.csv")
    ap.add_argument("--table", default="bench-results/hf_ratio.md")
    args = ap.parse_args()
    if args.hf_child:
        hf_child(args.hf_child, args.reps, args.warmup, args.threads)
        return
    rows = []
    for L, rnd in [(int(x), r) for x in args.lengths.split(",") for r in range(1, args.rounds + 1)]:
        # Ours all reversible, HF, then ours with the layer plan for a quarter of HF's peak RSS (the
        # memory target): the plan stores what fits in that budget.
        runs = (("reformer", lambda: run_ours(L, args)), ("huggingface", lambda: run_hf(L, args)),
                ("reformer-planned", lambda: run_ours(L, args, int(args.planned_share * hf_rss)) if hf_rss else
                 ({"status": "skipped (no HF peak RSS)"}, "")))
        hf_rss = 0
        for impl, fn in runs:
            res, cmd = fn()
            if impl == "huggingface" and res.get("status") == "ok":
                hf_rss = res["peak_rss"]
            tok = L / res["sec_per_step"] if res.get("status") == "ok" else None
            rows.append({"impl": impl, "length": L, "round": rnd, "threads": args.threads, "reps": args.reps,
                         "warmup": args.warmup,
                         "sec_per_step": res.get("sec_per_step"), "sec_per_step_min": res.get("min"),
                         "sec_per_step_max": res.get("max"), "tokens_per_s": tok, "peak_rss": res.get("peak_rss"),
                         "plan": res.get("plan", ""), "status": res["status"], "command": cmd})
            print(rows[-1], file=sys.stderr)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)
    lines = ["| L | reformer | layers (per round) | rounds | reformer tokens/s | HF tokens/s | speed ratio (per round) | "
             "reformer peak RSS | HF peak RSS | memory ratio (target <= 0.25) |",
             "|--:|--|--|--:|--:|--:|--:|--:|--:|--:|"]
    gib = lambda b: f"{b / 2**30:.2f} GiB"
    for L in sorted({r["length"] for r in rows}):
        for impl in ("reformer", "reformer-planned"):
            pairs = [(o, h) for o in rows for h in rows
                     if o["length"] == L and h["length"] == L and o["round"] == h["round"] and o["impl"] == impl
                     and h["impl"] == "huggingface" and o["status"] == "ok" and h["status"] == "ok"]
            if not pairs:
                bad = [r["status"] for r in rows if r["length"] == L and r["status"] != "ok"]
                lines.append(f"| {L} | {impl} | - | 0 | - | - | {', '.join(bad) or 'no rounds'} | - | - | - |")
                continue
            med = lambda xs: statistics.median(xs)
            speed = [o["tokens_per_s"] / h["tokens_per_s"] for o, h in pairs]
            mem = [o["peak_rss"] / h["peak_rss"] for o, h in pairs]
            plans = "; ".join(sorted({o["plan"] for o, _ in pairs}))
            lines.append(f"| {L} | {impl} | {plans} | {len(pairs)} | {med([o['tokens_per_s'] for o, _ in pairs]):.0f} | "
                         f"{med([h['tokens_per_s'] for _, h in pairs]):.0f} | **{med(speed):.2f}x** "
                         f"({', '.join(f'{x:.2f}' for x in speed)}) | {gib(med([o['peak_rss'] for o, _ in pairs]))} | "
                         f"{gib(med([h['peak_rss'] for _, h in pairs]))} | {med(mem):.3f} (max {max(mem):.3f}) |")
    with open(args.table, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
