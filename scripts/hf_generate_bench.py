#!/usr/bin/env python3
"""Hugging Face peer benchmark for incremental decoding: ReformerModelWithLMHead.generate vs decode_bench.

Same model directory on both sides (e.g. the reference byte model written by `decode_bench --save DIR`:
6 layers [local, lsh] x 3, hidden 256, vocabulary 258, causal, axial positions up to 1,048,576), same
context length N, same number of new tokens T, same thread count (torch.set_num_threads(THREADS) for
Hugging Face, OMP_NUM_THREADS for decode_bench), greedy decoding on both sides.

Hugging Face side, one child process per context N:
  - ReformerModelWithLMHead.from_pretrained on a temporary copy of DIR whose config.json has
    `chunk_size_feed_forward: 0` (HF's feed-forward chunking asserts that the sequence length is a
    multiple of the chunk, which a one-token decode step is not); the other files are symlinked.
  - model.eval(), torch.no_grad(), prompt = N byte ids (id = byte + 2, numpy default_rng(--seed)),
    shape (1, N), an all-ones attention_mask, pad_token_id / eos_token_id from config.json.
  - warm-up: one generate on a --warmup-context prompt (default 128) with 2 new tokens.
  - t_prefill = generate(max_new_tokens=1, min_new_tokens=1, do_sample=False, use_cache=True)
    (the prompt's forward plus one token); t_total = the same with max/min_new_tokens = 1 + T.
    min_new_tokens masks EOS, so generate never stops early.
  - hf_ms_per_token = (t_total - t_prefill) / T * 1000 (a mean over the T decode steps); a streamer
    also timestamps every new token of the t_total run, giving hf_ms_per_token_median/min/max over
    the same T steps (informative; the ratio uses the mean, as defined above).
  - runs under an address-space limit (--hf-mem-gib, default 12) so that running out of memory fails
    cleanly and is reported as "OOM" in that context's row instead of taking the machine down.
  HF pads a prompt whose length is not a multiple of the chunk lengths' least common multiple (64 for
  the reference model) to the next multiple in eval (logging "Input ids are automatically padded"),
  and caches only the unpadded N positions; hf_prompt_padded_to records the padded length.

reformer side (with --decode-bench), one child process per context N:
  OMP_NUM_THREADS=THREADS decode_bench --model DIR --context N --tokens T --header
  (prefill of N random bytes, 4 untimed warm-up tokens, T timed tokens; median/min/max ms per token).

ratio_hf_over_reformer = hf_ms_per_token / reformer_ms_per_token_median; ratio_medians =
hf_ms_per_token_median / reformer_ms_per_token_median. The difference of two single generate calls
carries the run-to-run noise of a whole prefill divided by T (compare hf_prefill_s with
hf_prefill_in_total_run_s, the prefill read off the streamer inside the longer call); the per-step
median does not. Peak RSS is per process
(ru_maxrss of the child; decode_bench reports VmHWM itself). Run with the machine otherwise idle:

  build/decode_bench --save /tmp/hfbench-model
  /work/hfvenv/bin/python scripts/hf_generate_bench.py --model /tmp/hfbench-model \\
      --contexts 1000,16000,60000 --new-tokens 32 --threads 2 --decode-bench build/decode_bench \\
      --out bench-results/hf_generate.csv --table bench-results/hf_generate.md
"""
import argparse
import csv
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

RESULT_TAG = "HF_GENERATE_BENCH_RESULT "


def lcm_chunk_length(cfg):
    """HF _get_least_common_mult_chunk_len / _get_min_chunk_len for the layer types in the config."""
    kinds = set(cfg.get("attn_layers", []))
    lengths = []
    if "lsh" in kinds:
        lengths.append(cfg.get("lsh_attn_chunk_length", 64))
    if "local" in kinds:
        lengths.append(cfg.get("local_attn_chunk_length", 64))
    if not lengths:
        return 1, 1
    return math.lcm(*lengths), min(lengths)


def padded_length(n, cfg):
    lcm, min_chunk = lcm_chunk_length(cfg)
    if n % lcm != 0 and n > min_chunk:
        return n + lcm - n % lcm
    return n


def prompt_ids(n, seed):
    import numpy as np
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, size=(1, n), dtype=np.int64) + 2)


def hf_child(args):
    """Runs in the child: prints one RESULT_TAG + JSON line on stdout."""
    import torch
    import transformers
    from transformers import ReformerModelWithLMHead
    from transformers.generation.streamers import BaseStreamer

    n, T = args.hf_child, args.new_tokens
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    model = ReformerModelWithLMHead.from_pretrained(args.hf_dir)
    model.eval()
    load_s = time.perf_counter() - t0
    cfg = model.config
    pad_id = cfg.pad_token_id if cfg.pad_token_id is not None else 0
    eos_id = cfg.eos_token_id

    class TokenClock(BaseStreamer):
        """Timestamps each put(): the first carries the prompt, each later one a new token."""

        def __init__(self):
            self.stamps = []

        def put(self, value):
            self.stamps.append(time.perf_counter())

        def end(self):
            pass

    def gen(ids, new_tokens, streamer=None):
        ids = torch.from_numpy(ids)
        t = time.perf_counter()
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                             min_new_tokens=new_tokens, do_sample=False, num_beams=1, use_cache=True,
                             pad_token_id=pad_id, eos_token_id=eos_id, streamer=streamer)
        dt = time.perf_counter() - t
        generated = int(out.shape[1] - ids.shape[1])
        if generated != new_tokens:
            raise RuntimeError(f"generate returned {generated} new tokens, expected {new_tokens}")
        return dt, out[0, ids.shape[1]:].tolist()

    with torch.no_grad():
        w = min(args.warmup_context, n)
        gen(prompt_ids(w, args.seed + 1), 2)
        ids = prompt_ids(n, args.seed)
        t_prefill, first = gen(ids, 1)
        print(f"  [hf N={n}] prefill + 1 token: {t_prefill:.3f} s", file=sys.stderr)
        clock = TokenClock()
        t_total, toks = gen(ids, 1 + T, clock)
        print(f"  [hf N={n}] prefill + {1 + T} tokens: {t_total:.3f} s", file=sys.stderr)
    steps = [1e3 * (b - a) for a, b in zip(clock.stamps[1:], clock.stamps[2:])]  # the T decode steps
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    res = {"load_s": load_s, "prefill_s": t_prefill, "total_s": t_total, "ms_per_token": (t_total - t_prefill) / T * 1e3,
           # the same quantities read off the streamer's timestamps inside the t_total run
           "prefill_in_total_run_s": clock.stamps[1] - clock.stamps[0] if len(clock.stamps) > 1 else None,
           "ms_per_token_median": statistics.median(steps) if steps else None,
           "ms_per_token_min": min(steps) if steps else None, "ms_per_token_max": max(steps) if steps else None,
           "steps_timed": len(steps), "first_token_same": toks[0] == first[0], "peak_rss": rss,
           "threads": torch.get_num_threads(), "torch": torch.__version__, "transformers": transformers.__version__}
    print(RESULT_TAG + json.dumps(res), flush=True)


def run_hf(n, args, hf_dir):
    def limit():
        lim = int(args.hf_mem_gib * (1 << 30))
        resource.setrlimit(resource.RLIMIT_AS, (lim, lim))

    cmd = [sys.executable, os.path.abspath(__file__), "--hf-child", str(n), "--hf-dir", hf_dir, "--new-tokens",
           str(args.new_tokens), "--threads", str(args.threads), "--seed", str(args.seed), "--warmup-context",
           str(args.warmup_context)]
    t = str(args.threads)
    env = dict(os.environ, OMP_NUM_THREADS=t, MKL_NUM_THREADS=t, CUDA_VISIBLE_DEVICES="")
    print(" ".join(cmd), file=sys.stderr)
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=limit, env=env,
                           timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"status": f"timeout>{args.timeout}s"}, " ".join(cmd)
    sys.stderr.write(p.stderr[-3000:])
    other = [line for line in p.stdout.splitlines() if not line.startswith(RESULT_TAG)]
    if other:  # e.g. prepare_inputs_for_generation's print("Warning: ...") goes to stdout
        uniq = sorted(set(other))
        print(f"  [hf N={n}] child stdout ({len(other)} lines, {len(uniq)} distinct): " + " | ".join(uniq[:5]),
              file=sys.stderr)
    if p.returncode != 0:
        err = p.stderr.lower()
        oom = ("memoryerror" in err or "out of memory" in err or "can't allocate" in err or "cannot allocate" in err
               or "bad_alloc" in err or "defaultcpuallocator" in err or p.returncode < 0)
        last = (p.stderr.strip().splitlines() or [""])[-1][:200]
        kind = "OOM" if oom else "failed"
        return {"status": f"{kind}(exit {p.returncode}, limit {args.hf_mem_gib:g} GiB: {last})"}, " ".join(cmd)
    found = [line for line in p.stdout.splitlines() if line.startswith(RESULT_TAG)]
    if not found:
        return {"status": "failed(no result line)"}, " ".join(cmd)
    res = json.loads(found[-1][len(RESULT_TAG):])
    res["status"] = "ok"
    return res, " ".join(cmd)


def run_reformer(n, args):
    cmd = [args.decode_bench, "--model", args.model, "--context", str(n), "--tokens", str(args.new_tokens), "--header"]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    print(f"OMP_NUM_THREADS={args.threads} " + " ".join(cmd), file=sys.stderr)
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                           timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"status": f"timeout>{args.timeout}s"}, " ".join(cmd)
    except OSError as e:
        return {"status": f"failed({e})"}, " ".join(cmd)
    if p.returncode != 0:
        last = (p.stderr.strip().splitlines() or [""])[-1][:200]
        return {"status": f"failed(exit {p.returncode}: {last})"}, " ".join(cmd)
    lines = [line for line in p.stdout.strip().splitlines() if line]
    try:
        row = dict(zip(lines[-2].split(","), lines[-1].split(",")))
        res = {"status": "ok", "prefill_s": float(row["prefill_s"]), "ms_per_token_median": float(row["ms_per_token_median"]),
               "ms_per_token_min": float(row["ms_per_token_min"]), "ms_per_token_max": float(row["ms_per_token_max"]),
               "threads": int(row["threads"]), "state_bytes": int(row["state_bytes"]),
               "peak_rss": int(row["peak_rss_bytes"])}
    except (IndexError, KeyError, ValueError) as e:
        return {"status": f"failed(unparsable output: {e!r}: {p.stdout[-200:]!r})"}, " ".join(cmd)
    return res, " ".join(cmd)


def make_hf_dir(model_dir):
    """Temporary copy of model_dir: config.json with chunk_size_feed_forward 0, everything else symlinked."""
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    tmp = tempfile.mkdtemp(prefix="hf_generate_bench_")
    for name in os.listdir(model_dir):
        if name != "config.json":
            os.symlink(os.path.abspath(os.path.join(model_dir, name)), os.path.join(tmp, name))
    hf_cfg = dict(cfg, chunk_size_feed_forward=0)
    with open(os.path.join(tmp, "config.json"), "w") as f:
        json.dump(hf_cfg, f, indent=2)
    return tmp, cfg


def fmt(v, spec):
    return format(v, spec) if isinstance(v, (int, float)) else "-"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hf-child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--hf-dir", help=argparse.SUPPRESS)
    ap.add_argument("--model", help="model directory (config.json + model.safetensors)")
    ap.add_argument("--contexts", default="1000,16000,60000", help="comma-separated context lengths N")
    ap.add_argument("--new-tokens", type=int, default=32, help="timed new tokens T after the first")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--decode-bench", help="path of decode_bench; without it only Hugging Face runs")
    ap.add_argument("--out", help="CSV file to write")
    ap.add_argument("--table", help="Markdown table to write")
    ap.add_argument("--hf-mem-gib", type=float, default=12.0, help="address-space limit of the HF child")
    ap.add_argument("--seed", type=int, default=0, help="numpy seed of the prompt")
    ap.add_argument("--warmup-context", type=int, default=128, help="prompt length of the HF warm-up generate")
    ap.add_argument("--timeout", type=int, default=7200, help="seconds per child process")
    args = ap.parse_args()
    if args.hf_child:
        hf_child(args)
        return
    if not args.model:
        ap.error("--model DIR is required")
    if args.new_tokens < 1:
        ap.error("--new-tokens must be >= 1")
    contexts = [int(x) for x in args.contexts.split(",") if x.strip()]
    hf_dir, cfg = make_hf_dir(args.model)
    rows = []
    try:
        for n in contexts:
            hf, hf_cmd = run_hf(n, args, hf_dir)
            if args.decode_bench:
                ours, ours_cmd = run_reformer(n, args)
            else:
                ours, ours_cmd = {"status": "not run"}, ""
            ok = hf["status"] == "ok" and ours["status"] == "ok"
            row = {"context": n, "new_tokens": args.new_tokens, "threads": args.threads,
                   "hf_prompt_padded_to": padded_length(n, cfg),
                   "hf_status": hf["status"], "hf_prefill_s": hf.get("prefill_s"), "hf_total_s": hf.get("total_s"),
                   "hf_ms_per_token": hf.get("ms_per_token"), "hf_ms_per_token_median": hf.get("ms_per_token_median"),
                   "hf_ms_per_token_min": hf.get("ms_per_token_min"), "hf_ms_per_token_max": hf.get("ms_per_token_max"),
                   "hf_prefill_in_total_run_s": hf.get("prefill_in_total_run_s"),
                   "hf_peak_rss": hf.get("peak_rss"),
                   "reformer_status": ours["status"], "reformer_prefill_s": ours.get("prefill_s"),
                   "reformer_ms_per_token_median": ours.get("ms_per_token_median"),
                   "reformer_ms_per_token_min": ours.get("ms_per_token_min"),
                   "reformer_ms_per_token_max": ours.get("ms_per_token_max"),
                   "reformer_state_bytes": ours.get("state_bytes"), "reformer_peak_rss": ours.get("peak_rss"),
                   "ratio_hf_over_reformer": hf["ms_per_token"] / ours["ms_per_token_median"] if ok else None,
                   "ratio_medians": hf["ms_per_token_median"] / ours["ms_per_token_median"]
                   if ok and hf.get("ms_per_token_median") else None,
                   "torch": hf.get("torch"), "transformers": hf.get("transformers"),
                   "hf_command": hf_cmd, "reformer_command": ours_cmd}
            rows.append(row)
            print({k: v for k, v in row.items() if not k.endswith("_command")}, file=sys.stderr)
    finally:
        shutil.rmtree(hf_dir, ignore_errors=True)

    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
            w.writeheader()
            w.writerows(rows)
    gib = lambda b: f"{b / 2**30:.2f} GiB" if b else "-"
    lines = [f"T = {args.new_tokens} new tokens after the first, {args.threads} thread(s), greedy", "",
             "| context | HF ms/token | reformer ms/token | ratio HF/reformer | HF median ms/token | ratio of medians | "
             "HF prefill s | reformer prefill s | HF peak RSS | reformer peak RSS |",
             "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in rows:
        hf_ms = fmt(r["hf_ms_per_token"], ".2f") if r["hf_status"] == "ok" else r["hf_status"]
        ours_ms = fmt(r["reformer_ms_per_token_median"], ".3f") if r["reformer_status"] == "ok" else r["reformer_status"]
        ratio = f"{r['ratio_hf_over_reformer']:.1f}x" if r["ratio_hf_over_reformer"] else "-"
        ratio_med = f"{r['ratio_medians']:.1f}x" if r["ratio_medians"] else "-"
        lines.append(f"| {r['context']} | {hf_ms} | {ours_ms} | {ratio} | {fmt(r['hf_ms_per_token_median'], '.2f')} | "
                     f"{ratio_med} | {fmt(r['hf_prefill_s'], '.2f')} | "
                     f"{fmt(r['reformer_prefill_s'], '.2f')} | {gib(r['hf_peak_rss'])} | {gib(r['reformer_peak_rss'])} |")
    lines += ["", "HF ms/token = (t(prefill + 1 + T tokens) - t(prefill + 1 token)) / T, two separate generate calls; "
              "HF median ms/token = median of the T per-step intervals (streamer timestamps) in the longer call; "
              "reformer ms/token = decode_bench median over T. HF pads the prompt to a multiple of the chunk lengths' LCM."]
    if args.table:
        os.makedirs(os.path.dirname(os.path.abspath(args.table)), exist_ok=True)
        with open(args.table, "w") as f:
            f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
