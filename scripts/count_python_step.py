"""Instructions per training step driven from Python (reformer.train) against the same step from the
CLI (`reformer train`), counted by valgrind's callgrind: unlike wall-clock time on a shared 2-core VM
(rounds spread by +-20%, docs/PERFORMANCE.md), the count is the same from run to run whatever else
the machine does. Each front end runs the same config twice, with S1 and S2 steps; the per-step
count is (I(S2) - I(S1)) / (S2 - S1), so start-up (the interpreter, imports, the model's
construction) and the final evaluation and save cancel out. One thread (callgrind serialises threads
anyway). Under valgrind the CPU reports no AVX-512, so both front ends run the AVX2 variants.
A step under callgrind takes minutes (oneDNN's JIT code is re-translated), hence the short default
sequence: what the front end adds per step (the metrics callback, the Ctrl-C poll) does not grow
with the sequence while the engine's work does, so a ratio at 256 tokens bounds the one at 16K.
    python scripts/count_python_step.py --cli build/reformer [--seq-len 256] [--steps 1,2]
Prints both per-step counts and their ratio (Python / CLI)."""
import argparse
import concurrent.futures
import os
import re
import subprocess
import sys
import tempfile

from cp_config import cp_config

parser = argparse.ArgumentParser()
parser.add_argument("--cli", required=True)
parser.add_argument("--seq-len", type=int, default=256)
parser.add_argument("--steps", default="1,2")
args = parser.parse_args()
s1, s2 = (int(s) for s in args.steps.split(","))
L = args.seq_len
work = tempfile.mkdtemp()
# The C&P architecture of bench_python_step.py at length L.
config = cp_config(L, 32)


# A small corpus of its own: reading and splitting the default one (GCIDE) under valgrind takes minutes.
data = os.path.join(work, "text.txt")
with open(data, "w") as f:
    f.write("".join(f"line {i}: the quick brown fox jumps over the lazy dog {i * 7919 % 1000}\n" for i in range(6000)))


def options(steps):
    return dict(data=data, steps=steps, batch=1, lr=1e-3, seed=1, log_interval=1, eval_interval=steps,
                eval_windows=1)


def callgrind(name, command):
    out = os.path.join(work, name + ".callgrind")
    subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"] + command, check=True,
                   capture_output=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    with open(out) as f:
        totals = [line for line in f if line.startswith(("summary:", "totals:"))]
    return int(re.findall(r"\d+", totals[-1])[0])


def cli(steps):
    import json
    cfg = os.path.join(work, "config.json")
    with open(cfg, "w") as f:
        json.dump(config, f)
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in options(steps).items()]
    return callgrind(f"cli{steps}", [args.cli, "train", "--out", os.path.join(work, f"cli{steps}"), "--config", cfg,
                                     "--threads", "1"] + flags)


def python(steps):
    code = (f"import reformer; reformer.train({os.path.join(work, f'py{steps}')!r}, reformer.Config(**{config!r}), "
            f"threads=1, verbose=False, on_step=lambda r: None, **{options(steps)!r})")
    return callgrind(f"py{steps}", [sys.executable, "-c", code])


# The four runs at once: a count does not depend on what else the machine runs.
with concurrent.futures.ThreadPoolExecutor(4) as pool:
    counts = {(name, s): pool.submit(run, s) for name, run in (("cli", cli), ("python", python)) for s in (s1, s2)}
per_step = {}
for name in ("cli", "python"):
    a, b = counts[(name, s1)].result(), counts[(name, s2)].result()
    per_step[name] = (b - a) / (s2 - s1)
    print(f"{name}: {a} instructions with {s1} steps, {b} with {s2}: {per_step[name]:.4g} per step", flush=True)
print(f"python / cli = {per_step['python'] / per_step['cli']:.5f}")
