"""reformer.train and Model.evaluate: the same runs as `reformer train` / `reformer eval`, callbacks,
resume, errors and Ctrl-C."""
import json
import os
import signal
import subprocess
import sys

import pytest

import reformer
from test_reformer import TINY

CLI = os.environ.get("REFORMER_CLI")
needs_cli = pytest.mark.skipif(not CLI, reason="REFORMER_CLI (the reformer binary) not set")

OPTIONS = dict(steps=12, batch=2, lr=3e-3, warmup=2, seed=7, log_interval=4, eval_interval=5, eval_windows=2)


@pytest.fixture
def corpus(tmp_path):
    words = [b"light", b"noun", b"the", b"of", b"dictionary", b"reformer", b"hash", b"bucket", b"chunk", b"layer"]
    text = b" ".join(words[(i * 7 + i // 3) % len(words)] for i in range(3000)) + b"\n"
    path = tmp_path / "corpus.txt"
    path.write_bytes(text)
    return path


def metrics(out_dir):
    with open(os.path.join(out_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def cli_flags(options):
    flags = []
    for key, value in options.items():
        flags += ["--" + key.replace("_", "-"), str(value)]
    return flags


@needs_cli
def test_losses_equal_the_cli_for_the_same_seed_and_threads(tmp_path, corpus):
    config_file = tmp_path / "config.json"
    config_file.write_text(reformer.Config(**TINY).to_json())
    subprocess.run([CLI, "train", "--out", str(tmp_path / "cli"), "--config", str(config_file), "--data", str(corpus),
                    "--threads", "1"] + cli_flags(OPTIONS), check=True, capture_output=True)
    steps, evals = [], []
    summary = reformer.train(tmp_path / "py", reformer.Config(**TINY), data=str(corpus), threads=1, verbose=False,
                             on_step=steps.append, on_eval=evals.append, **OPTIONS)
    assert summary["step"] == 12 and not summary["interrupted"]

    cli_records = metrics(tmp_path / "cli")
    py_records = metrics(tmp_path / "py")
    assert [r["split"] for r in cli_records] == [r["split"] for r in py_records]
    for c, p in zip(cli_records, py_records):
        assert c["step"] == p["step"] and c["loss"] == p["loss"], (c, p)
    # The callbacks saw what metrics.jsonl holds, in order: every step, and the evaluations.
    assert [r["step"] for r in steps] == list(range(1, 13))
    assert [r["loss"] for r in steps] == [r["loss"] for r in py_records if r["split"] == "train"]
    assert [r["step"] for r in evals] == [5, 10, 12]
    assert steps[-1]["loss"] < steps[0]["loss"]

    model = reformer.Model.load(tmp_path / "py")
    assert model.config.to_dict() == reformer.Model.load(tmp_path / "cli").config.to_dict()
    result = model.evaluate(data=str(corpus), split="validation", threads=1)
    out = subprocess.run([CLI, "eval", "--model", str(tmp_path / "py"), "--data", str(corpus), "--threads", "1"],
                         check=True, capture_output=True, text=True).stdout
    assert f"loss {result['loss']:.4f}" in out and f"bits/byte {result['bits_per_byte']:.4f}" in out, (result, out)


def test_resume_continues_and_refuses_changes(tmp_path, corpus):
    config = reformer.Config(**TINY)
    # A constant schedule: cosine's depends on --steps, which the resumed run changes.
    options = dict(OPTIONS, schedule="constant")
    whole = reformer.train(tmp_path / "whole", config, data=str(corpus), threads=1, verbose=False, **options)
    short = dict(options, steps=6)
    reformer.train(tmp_path / "resumed", config, data=str(corpus), threads=1, verbose=False, **short)
    summary = reformer.train(tmp_path / "resumed", data=str(corpus), threads=1, verbose=False, resume=True, steps=12)
    assert summary["step"] == whole["step"] == 12
    losses = lambda d: [r["loss"] for r in metrics(d) if r["split"] == "train"]
    assert losses(tmp_path / "resumed") == losses(tmp_path / "whole")

    with pytest.raises(reformer.Error, match="--lr 0.01 differs from 0.003"):
        reformer.train(tmp_path / "resumed", resume=True, threads=1, verbose=False, steps=20, lr=0.01)
    with pytest.raises(reformer.Error, match="already holds a checkpoint; continue it with --resume"):
        reformer.train(tmp_path / "whole", config, data=str(corpus), verbose=False, **options)


def test_bad_options_raise_with_the_engines_messages(tmp_path, corpus):
    config = reformer.Config(**TINY)
    with pytest.raises(reformer.Error, match="--batch 0 must be at least 1"):
        reformer.train(tmp_path / "a", config, data=str(corpus), verbose=False, batch=0)
    assert issubclass(reformer.Error, ValueError)
    with pytest.raises(reformer.Error, match="does not exist"):
        reformer.train(tmp_path / "b", config, data=str(tmp_path / "missing.txt"), verbose=False)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()  # nothing left behind
    with pytest.raises(TypeError, match="unknown options \\['stepz'\\]"):
        reformer.train(tmp_path / "c", config, stepz=3)
    with pytest.raises(reformer.Error, match="a new run needs a model"):
        reformer.train(tmp_path / "d", data=str(corpus), verbose=False)
    with pytest.raises(reformer.Error, match="max_memory 'lots'"):
        reformer.train(tmp_path / "e", config, max_memory="lots")


def test_an_exception_in_a_callback_stops_the_run_and_is_raised(tmp_path, corpus):
    def on_step(record):
        if record["step"] == 3:
            raise RuntimeError("stop at 3")

    with pytest.raises(RuntimeError, match="stop at 3"):
        reformer.train(tmp_path / "run", reformer.Config(**TINY), data=str(corpus), verbose=False, on_step=on_step,
                       **OPTIONS)
    assert [r["step"] for r in metrics(tmp_path / "run")] == [1, 2, 3]


CTRL_C_SCRIPT = """
import sys, reformer
from test_reformer import TINY
def on_step(record):
    print("step", record["step"], flush=True)
reformer.train(sys.argv[1], reformer.Config(**TINY), data=sys.argv[2], steps=100000, batch=2, threads=1,
               verbose=False, on_step=on_step)
"""


def test_ctrl_c_saves_a_checkpoint_then_raises_keyboard_interrupt(tmp_path, corpus):
    env = dict(os.environ, PYTHONPATH=os.path.dirname(__file__))
    child = subprocess.Popen([sys.executable, "-c", CTRL_C_SCRIPT, str(tmp_path / "run"), str(corpus)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout.readline().startswith("step 1")
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=120)
    finally:
        child.kill()
    assert child.returncode != 0 and "KeyboardInterrupt" in err, err
    checkpoints = [d for d in os.listdir(tmp_path / "run") if d.startswith("checkpoint-")]
    assert len(checkpoints) == 1, os.listdir(tmp_path / "run")
    step = int(checkpoints[0].split("-")[1])
    assert step >= 1
    summary = reformer.train(tmp_path / "run", resume=True, data=str(corpus), steps=step + 2, threads=1, verbose=False)
    assert summary["step"] == step + 2


@needs_cli
def test_a_sentencepiece_model_trains_evaluates_and_generates_text(tmp_path, corpus):
    subprocess.run([CLI, "tokenizer", "train", "--data", str(corpus), "--vocab-size", "28", "--out",
                    str(tmp_path / "tok")], check=True, capture_output=True)
    config = reformer.Config(**dict(TINY, vocab_size=28))
    reformer.train(tmp_path / "run", config, data=str(corpus), tokenizer=str(tmp_path / "tok" / "spiece.model"),
                   threads=1, verbose=False, **OPTIONS)
    assert (tmp_path / "run" / "spiece.model").exists()  # the run's directory holds its tokenizer
    model = reformer.Model.load(tmp_path / "run")
    result = model.evaluate(data=str(corpus), threads=1)
    assert result["tokens"] > 0 and result["bits_per_byte"] > 0
    text = model.generate("the ", 20, seed=3)  # 20 tokens, printed as text
    assert len(text) >= 20 and set(text) <= set(corpus.read_bytes()), text


def test_masked_lm_classification_and_init_from(tmp_path, corpus):
    """task="mlm", task="classify" with init_from= and num_labels=, as the CLI's --task/--init-from/--num-labels."""
    mlm = reformer.train(tmp_path / "mlm", reformer.Config(**TINY), data=str(corpus), task="mlm", threads=1, verbose=False,
                         **OPTIONS)
    assert mlm["config"]["is_decoder"] is False and mlm["config"]["architectures"] == ["ReformerForMaskedLM"]
    evals = [r for r in metrics(tmp_path / "mlm") if r["split"] == "validation"]
    assert evals and all(r["masked_tokens"] > 0 and "bits_per_byte" not in r for r in evals)

    for name, n in (("train.jsonl", 40), ("valid.jsonl", 12)):
        with open(tmp_path / name, "w") as f:
            for i in range(n):
                f.write(json.dumps({"text": ["cold ice", "warm sun", "wet rain"][i % 3] + " today", "label": i % 3}) + "\n")
    options = dict(OPTIONS, eval_windows=1)
    summary = reformer.train(tmp_path / "cls", None, task="classify", init_from=str(tmp_path / "mlm"), num_labels=3,
                             data=str(tmp_path / "train.jsonl"), valid_data=str(tmp_path / "valid.jsonl"), threads=1,
                             verbose=False, **options)
    assert summary["config"]["architectures"] == ["ReformerForSequenceClassification"]
    assert summary["config"]["hidden_size"] == TINY["hidden_size"]
    last = [r for r in metrics(tmp_path / "cls") if r["split"] == "validation"][-1]
    assert last["examples"] == 12 and 0 <= last["accuracy"] <= 1 and "f1" not in last  # F1 only for two classes

    wider = reformer.Config(**dict(TINY, hidden_size=32, axial_pos_embds_dim=[8, 24], is_decoder=False))
    with pytest.raises(reformer.Error, match="hidden_size"):
        reformer.train(tmp_path / "wider", wider, task="mlm", init_from=str(tmp_path / "mlm"), data=str(corpus),
                       verbose=False, **OPTIONS)
    assert not (tmp_path / "wider").exists()


def test_precision_bf16_passes_through_or_is_refused_naming_the_fix(tmp_path, corpus):
    """precision= is a train option like any other: bf16 trains where the CPU has AVX512-BF16 or
    AMX-BF16 and is kept in the run's args; elsewhere it is refused, naming the fix."""
    try:
        summary = reformer.train(tmp_path / "bf16", reformer.Config(**TINY), data=str(corpus), threads=1, verbose=False,
                                 precision="bf16", steps=2, batch=2, eval_windows=1)
    except Exception as e:  # noqa: BLE001 - the engine's error, whatever its Python type
        assert "use --precision fp32" in str(e), e
        assert not (tmp_path / "bf16").exists()
        pytest.skip(f"no bf16 on this CPU: {e}")
    assert summary["args"]["precision"] == "bf16"
    assert all(r["loss"] == r["loss"] for r in metrics(tmp_path / "bf16") if r["split"] == "train")  # not NaN
