"""The Python package (pip install .): models, logits and loss, generation, configs, errors."""
import json
import os
import struct
import subprocess

import numpy as np
import pytest

import reformer

TINY = dict(attn_layers=["local", "lsh"], hidden_size=16, feed_forward_size=24, num_attention_heads=2,
            attention_head_size=8, vocab_size=258, axial_pos_shape=[4, 16], axial_pos_embds_dim=[6, 10],
            max_position_embeddings=64, lsh_attn_chunk_length=8, local_attn_chunk_length=8, num_buckets=[4],
            num_hashes=2, is_decoder=True, hidden_dropout_prob=0.0, local_attention_probs_dropout_prob=0.0,
            lsh_attention_probs_dropout_prob=0.0, initializer_range=0.3)


@pytest.fixture
def model():
    return reformer.Model(reformer.Config(**TINY), seed=3)


def ids_of(text):
    return [b + reformer.BYTE_ID_OFFSET for b in text]


def test_config_fields_defaults_and_errors():
    c = reformer.Config(**TINY)
    assert c.hidden_size == 16 and c.attn_layers == ["local", "lsh"]
    assert reformer.Config().num_hashes == 1  # HF default
    assert reformer.Config.from_json(c.to_json()).to_dict() == c.to_dict()
    with pytest.raises(ValueError, match="hidden_size"):
        reformer.Config(**dict(TINY, hidden_size=-4))
    with pytest.raises(ValueError):
        c.lsh_attn_chunk_length = 0
    with pytest.raises(AttributeError):
        c.no_such_field


def test_logits_loss_and_save_load(model, tmp_path):
    ids = np.array([ids_of(b"LIGHT, n. That agent")[:16]] * 2, dtype=np.int32)
    logits = model.logits(ids)
    assert logits.shape == (2, 16, 258) and logits.dtype == np.float32
    # loss = HF's shifted cross-entropy of these logits
    lp = logits - logits.max(-1, keepdims=True)
    lp = lp - np.log(np.exp(lp).sum(-1, keepdims=True))
    want = -np.mean([lp[b, t, ids[b, t + 1]] for b in range(2) for t in range(15)])
    assert model.loss(ids) == pytest.approx(want, rel=1e-5)
    model.save(tmp_path / "m")
    again = reformer.Model.load(tmp_path / "m")
    assert again.num_parameters == model.num_parameters
    np.testing.assert_array_equal(again.logits(ids), logits)
    assert again.config.to_dict() == model.config.to_dict()


def test_hidden_states_one_per_layer_plus_the_embeddings(model):
    ids = [ids_of(b"abcdefgh")]
    states = model.hidden_states(ids)
    assert len(states) == 3 and all(h.shape == (1, 8, 16) for h in states)
    assert not np.allclose(states[0], states[1]) and not np.allclose(states[1], states[2])
    np.testing.assert_array_equal(model.hidden_states(ids)[2], states[2])  # the hook is cleared and re-set


def test_bad_input_raises_value_error_naming_it(model):
    with pytest.raises(ValueError, match="token id 300"):
        model.logits([[2, 300]])
    with pytest.raises(ValueError, match="prompt is empty"):
        model.generate(b"", 4)
    with pytest.raises(ValueError, match="sequence length 13"):
        model.logits([list(range(2, 15))])  # 13 is not a multiple of the chunk length 8


def test_generation_is_deterministic_and_streams_the_same_bytes(model):
    a = model.generate(b"The cat ", 24, temperature=0.8, top_k=20, seed=7)
    assert len(a) == 24 and isinstance(a, bytes)
    assert model.generate(b"The cat ", 24, temperature=0.8, top_k=20, seed=7) == a
    assert model.generate(b"The cat ", 24, temperature=0.8, top_k=20, seed=8) != a
    streamed = b"".join(model.generate_iter(b"The cat ", 24, temperature=0.8, top_k=20, seed=7))
    assert streamed == a
    batch = model.generate([b"The cat ", "water"], 10, seed=7, stop=["e"])
    assert len(batch) == 2 and batch[0] == model.generate(b"The cat ", 10, seed=7, stop=["e"])


def test_decoding_state_matches_the_forward_for_local_layers():
    m = reformer.Model(reformer.Config(**dict(TINY, attn_layers=["local", "local"])), seed=1)
    ids = ids_of(b"abcdefghijklmnopqrstuvwxyz012345")
    full = m.logits([ids])[0]
    state = m.decode_state(capacity=len(ids))
    rows = [m.prefill(state, ids[:5])]
    for t in range(5, len(ids)):
        rows.append(m.decode_step(state, [ids[t]])[0])
    # tests/support/tolerance.h kDecodeTol (atol 1e-4, rtol 1e-3): decoding sums in another order
    # than the chunked forward; 1e-6 / 1e-5 failed by 1.5e-6 once the build stopped fusing a*b+c.
    np.testing.assert_allclose(np.stack(rows), full[4:], rtol=1e-3, atol=1e-4)
    assert state.length(0) == len(ids) and state.bytes > 0


def test_memory_plan(model):
    train = model.memory_plan(64, batch=2)
    assert train["parameters"] == 4 * model.num_parameters
    assert train["total"] == sum(v for k, v in train.items() if k != "total")
    assert train["optimizer_state"] == 2 * train["parameters"]  # Adam's two moments
    forward = model.memory_plan(64, batch=2, training=False)
    assert forward["optimizer_state"] == 0 and forward["outputs"] == 0
    assert forward["activations"] < train["activations"] and forward["total"] < train["total"]
    logits = model.memory_plan(64, batch=2, training=False, logits=True)
    assert logits["outputs"] == 2 * 64 * 258 * 4 and logits["total"] == forward["total"] + logits["outputs"]
    with pytest.raises(reformer.Error, match="batch 0"):
        model.memory_plan(64, batch=0)


@pytest.mark.skipif(not os.environ.get("REFORMER_CLI"), reason="REFORMER_CLI (the reformer binary) not set")
def test_memory_plan_equals_reformer_info(model, tmp_path):
    model.save(tmp_path / "m")
    info = subprocess.run([os.environ["REFORMER_CLI"], "info", "--model", str(tmp_path / "m"), "--batch", "2",
                           "--threads", "1"], capture_output=True, text=True, check=True).stdout
    def printed(label):
        line = next(l for l in info.splitlines() if l.strip().startswith(label) and l.endswith(" bytes)"))
        return int(line.split("(")[-1].split()[0])
    assert printed("total") == model.memory_plan(64, batch=2, threads=1)["total"]
    assert printed("reformer eval") == model.memory_plan(64, batch=2, training=False, threads=1)["total"]
    assert printed("reformer logits") == model.memory_plan(64, batch=2, training=False, logits=True, threads=1)["total"]


@pytest.mark.skipif(not os.environ.get("REFORMER_CLI"), reason="REFORMER_CLI (the reformer binary) not set")
def test_generate_equals_the_cli(model, tmp_path):
    model.save(tmp_path / "m")
    cli = subprocess.run([os.environ["REFORMER_CLI"], "generate", "--model", str(tmp_path / "m"), "--prompt",
                          "LIGHT", "--bytes", "30", "--seed", "5", "--temperature", "0.9"],
                         capture_output=True, check=True)
    assert cli.stdout == model.generate(b"LIGHT", 30, seed=5, temperature=0.9)


def test_a_contiguous_int32_array_reaches_the_engine_without_a_copy():
    ids = np.arange(2, 34, dtype=np.int32).reshape(2, 16)
    passed = reformer._ids_2d(ids)  # what Model.logits, loss and hidden_states hand the engine
    assert passed is ids
    assert reformer._core._ids_address(passed) == ids.ctypes.data
    # int64 ids (numpy's default) are converted once, not rejected.
    assert reformer._ids_2d(ids.astype(np.int64)).dtype == np.int32


def write_safetensors(path, tensors):
    dtypes = {"int64": "I64", "int32": "I32", "float32": "F32"}
    header, blobs, offset = {}, [], 0
    for name, a in tensors.items():
        blob = np.ascontiguousarray(a).tobytes()
        header[name] = {"dtype": dtypes[a.dtype.name], "shape": list(a.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def read_safetensors(path):
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        assert info["dtype"] == "F32", info
        out[name] = np.frombuffer(raw[8 + n + begin:8 + n + end], dtype=np.float32).reshape(info["shape"])
    return out


@pytest.mark.skipif(not os.environ.get("REFORMER_CLI"), reason="REFORMER_CLI (the reformer binary) not set")
def test_logits_equal_the_clis_reformer_logits(model, tmp_path):
    model.save(tmp_path / "m")
    ids = np.array([ids_of(b"LIGHT, n. That agent in nature, ")] * 2, dtype=np.int64)
    ids[1, 5:] = 2 + 7  # another sequence
    write_safetensors(tmp_path / "in.safetensors", {"input_ids": ids})
    subprocess.run([os.environ["REFORMER_CLI"], "logits", "--model", str(tmp_path / "m"), "--input",
                    str(tmp_path / "in.safetensors"), "--out", str(tmp_path / "out.safetensors"), "--seed", "4"],
                   check=True, capture_output=True)
    cli = read_safetensors(tmp_path / "out.safetensors")["logits"]
    np.testing.assert_array_equal(model.logits(ids, seed=4), cli)
