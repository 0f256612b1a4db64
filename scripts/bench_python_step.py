"""A training step driven from Python (reformer.train) against the same step from the CLI
(`reformer train`), C&P architecture at 16,384 tokens, byte vocabulary, Adam, the same seed and
threads. The two are run alternately (CLI, Python, CLI, ...) so that a busy machine disturbs both
alike. A step's time is the difference of consecutive records' wall_s (the run's clock), so it
includes what happens between steps (metrics callbacks, Ctrl-C polling); each run reports the
median over its steps after the first (which sizes the workspaces).
    python scripts/bench_python_step.py --cli build/reformer [--steps 6] [--rounds 3] [--threads 2]
Prints one line per run and the ratio of the medians (Python / CLI)."""
import argparse
import json
import os
import statistics
import subprocess
import tempfile

import reformer
from cp_config import cp_config

parser = argparse.ArgumentParser()
parser.add_argument("--cli", required=True)
parser.add_argument("--steps", type=int, default=6)
parser.add_argument("--rounds", type=int, default=3)
parser.add_argument("--threads", type=int, default=2)
parser.add_argument("--seq-len", type=int, default=16384)
args = parser.parse_args()

L = args.seq_len
config = reformer.Config(**cp_config(L, 128))
options = dict(steps=args.steps, batch=1, lr=1e-3, seed=1, log_interval=args.steps, eval_interval=args.steps,
               eval_windows=1)
work = tempfile.mkdtemp()
config_file = os.path.join(work, "config.json")
with open(config_file, "w") as f:
    f.write(config.to_json())


def step_seconds(out):
    with open(os.path.join(out, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    wall = [r["wall_s"] for r in records if r["split"] == "train"]
    return statistics.median(b - a for a, b in zip(wall[1:], wall[2:]))


times = {"cli": [], "python": []}
for i in range(args.rounds):
    out = os.path.join(work, f"cli{i}")
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in options.items()]
    subprocess.run([args.cli, "train", "--out", out, "--config", config_file, "--threads", str(args.threads)] + flags,
                   check=True, capture_output=True)
    times["cli"].append(step_seconds(out))
    out = os.path.join(work, f"py{i}")
    reformer.train(out, config, threads=args.threads, verbose=False, **options)
    times["python"].append(step_seconds(out))
    print(f"round {i + 1}: cli {times['cli'][-1]:.3f} s/step, python {times['python'][-1]:.3f} s/step", flush=True)
cli, py = statistics.median(times["cli"]), statistics.median(times["python"])
print(f"median: cli {cli:.3f} s/step, python {py:.3f} s/step, python / cli = {py / cli:.3f}")
