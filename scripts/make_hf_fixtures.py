#!/usr/bin/env python3
"""Generates the Hugging Face parity fixtures under tests/fixtures/hf/ and tests/fixtures/hf_classes/.

Each case builds a tiny random Reformer with HF transformers (fp32, CPU, every dropout 0), injects
known LSH rotations (HF draws them with torch.randn inside LSHSelfAttention._hash_vectors), runs ONE
train-mode forward (HF's reversible backward needs train mode), computes the causal-LM loss and
backpropagates. It writes config.json, model.safetensors (the state dict) and data.safetensors
(inputs, rotations, buckets, hidden states, logits, loss, gradients), and checks that an eval-mode
forward with the same rotations gives the same logits.

The second set (tests/fixtures/hf_classes/<case>/, see the README there) covers every Reformer class of
transformers: each tiny model is written by transformers' own save_pretrained (safetensors, with its
tied and omitted keys), with data.safetensors holding the inputs, rotations, eval outputs under HF's
names, the class's loss and its gradients.

Usage: python scripts/make_hf_fixtures.py [--out tests/fixtures/hf] [--classes-out tests/fixtures/hf_classes]
                                          [--only CASE ...]
Needs: torch, transformers 4.x (4.57.6 used; 5.x ignores lm_head.bias in ReformerOnlyLMHead), safetensors.
"""
import argparse
import json
import os
import shutil
import struct
import zlib

import torch
import transformers
from safetensors.torch import save_file
from transformers import (ReformerConfig, ReformerForMaskedLM, ReformerForQuestionAnswering,
                          ReformerForSequenceClassification, ReformerModel, ReformerModelWithLMHead)
from transformers.models.reformer import modeling_reformer as hf_reformer

# Hashing must not sit on an argmax near-tie: the C++ GEMM rounds differently from torch.einsum, so
# every bucket decision keeps at least this margin between the best and the runner-up projection.
MIN_HASH_MARGIN = 1e-3

BASE = dict(
    hidden_size=16, num_attention_heads=2, attention_head_size=8, feed_forward_size=32, vocab_size=24,
    hidden_dropout_prob=0.0, local_attention_probs_dropout_prob=0.0, lsh_attention_probs_dropout_prob=0.0,
    layer_norm_eps=1e-12, hash_seed=None, pad_token_id=0, eos_token_id=2, is_decoder=True,
    local_num_chunks_before=1, local_num_chunks_after=0, lsh_num_chunks_before=1, lsh_num_chunks_after=0,
    num_hashes=1, hidden_act="relu", axial_pos_embds=True, use_cache=False,
)

# name -> (config overrides, batch, length, padding positions per batch row, what it covers)
CASES = {
    "lsh_causal": (dict(attn_layers=["lsh", "lsh"], lsh_attn_chunk_length=8, num_buckets=4, num_hashes=1,
                        axial_pos_shape=[4, 8], axial_pos_embds_dim=[8, 8], hidden_act="relu"),
                   2, 32, None, "LSH only, causal, 1 hash round, int num_buckets, axial, relu"),
    "lsh_factorized": (dict(attn_layers=["lsh", "lsh"], lsh_attn_chunk_length=4, num_buckets=[2, 4], num_hashes=2,
                            axial_pos_shape=[4, 8], axial_pos_embds_dim=[4, 12], hidden_act="gelu"),
                       1, 32, None, "LSH only, 2 rounds, factorized num_buckets [2, 4], gelu"),
    "lsh_hashes4_learned": (dict(attn_layers=["lsh", "lsh", "lsh"], hidden_size=32, vocab_size=40,
                                 lsh_attn_chunk_length=8, num_buckets=8, num_hashes=4, axial_pos_embds=False,
                                 max_position_embeddings=64, hidden_act="gelu_new", axial_pos_shape=[8, 8],
                                 axial_pos_embds_dim=[16, 16]),
                            2, 64, None, "LSH only, 4 rounds, 3 layers, learned positions, gelu_new, D=32"),
    "local_causal": (dict(attn_layers=["local", "local"], local_attn_chunk_length=8, chunk_size_feed_forward=8,
                          axial_pos_shape=[4, 8], axial_pos_embds_dim=[8, 8], hidden_act="relu"),
                     2, 32, None, "local only, causal, chunk_size_feed_forward=8"),
    "mixed_causal": (dict(attn_layers=["local", "lsh", "local", "lsh"], local_attn_chunk_length=16,
                          lsh_attn_chunk_length=8, num_buckets=8, num_hashes=2, lsh_num_chunks_before=2,
                          chunk_size_lm_head=16, axial_pos_shape=[8, 8], axial_pos_embds_dim=[6, 10],
                          hidden_act="gelu_new", vocab_size=32),
                     1, 64, None, "mixed local/lsh x2, 2 rounds, LSH 2 chunks before, chunk_size_lm_head"),
    "padded_mixed": (dict(attn_layers=["lsh", "local"], lsh_attn_chunk_length=8, local_attn_chunk_length=8,
                          num_buckets=4, num_hashes=2, axial_pos_shape=[4, 8], axial_pos_embds_dim=[8, 8],
                          hidden_act="gelu"),
                     2, 32, {1: [3] + list(range(26, 32))},
                     "padding mask (row 1: position 3 and the last 6), LSH padding bucket, masked labels"),
    "bidirectional": (dict(attn_layers=["lsh", "local"], is_decoder=False, lsh_attn_chunk_length=8,
                           local_attn_chunk_length=8, num_buckets=4, num_hashes=2, lsh_num_chunks_before=1,
                           lsh_num_chunks_after=1, local_num_chunks_before=0, local_num_chunks_after=1,
                           axial_pos_shape=[2, 4, 4], axial_pos_embds_dim=[4, 4, 8], hidden_act="gelu"),
                      2, 32, None, "not causal (ReformerForMaskedLM), chunks after > 0, 3-axis axial"),
    "short_full": (dict(attn_layers=["lsh", "local"], lsh_attn_chunk_length=16, local_attn_chunk_length=16,
                        num_buckets=4, num_hashes=2, axial_pos_shape=[4, 4], axial_pos_embds_dim=[8, 8]),
                   2, 16, None, "L == chunk length: HF's full-attention path (no hashing, no rotations)"),
}


def randomize_(model, gen):
    """Replaces HF's init (zero biases, unit LayerNorm, tiny weights) so every parameter matters."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("layer_norm.weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            elif p.ndim == 2 and "embeddings" not in name:  # Linear (out, in)
                p.copy_(torch.randn(p.shape, generator=gen) / p.shape[1] ** 0.5)
            elif p.ndim == 1:  # biases
                p.copy_(0.2 * torch.randn(p.shape, generator=gen))
            else:  # word, axial and learned position embeddings
                p.copy_(torch.randn(p.shape, generator=gen))


def hash_margin(vectors, rotations, num_buckets):
    """Smallest gap between the best and second-best entry of every [y, -y] argmax HF takes."""
    rotated = torch.einsum("bmtd,mdhr->bmhtr", vectors, rotations.to(vectors.dtype))
    factors = [num_buckets] if isinstance(num_buckets, int) else list(num_buckets)
    margin, start = float("inf"), 0
    for f in factors:
        part = rotated[..., start:start + f // 2]
        start += f // 2
        top2 = torch.cat([part, -part], dim=-1).topk(2, dim=-1).values
        margin = min(margin, (top2[..., 0] - top2[..., 1]).min().item())
    return margin


class RotationInjector:
    """Makes each LSH layer's torch.randn in _hash_vectors return a fixed tensor and records buckets."""

    def __init__(self, model, seed):
        self.rotations, self.buckets, self.calls, self.margins = {}, {}, {}, {}
        gen = torch.Generator().manual_seed(seed)
        for i, layer in enumerate(getattr(model, "reformer", model).encoder.layers):
            attn = layer.attention.self_attention
            if not isinstance(attn, hf_reformer.LSHSelfAttention):
                continue
            nb = attn.num_buckets
            cols = (nb if isinstance(nb, int) else sum(nb)) // 2
            shape = (attn.num_attention_heads, attn.attention_head_size, attn.num_hashes, cols)
            self.rotations[i] = torch.randn(shape, generator=gen)
            self.calls[i] = 0
            attn._hash_vectors = self._wrap(i, attn, attn._hash_vectors)

    def _wrap(self, layer, attn, original):
        def hash_vectors(vectors, num_hashes, attention_mask, increase_num_buckets=False):
            rot = self.rotations[layer]
            real_randn = torch.randn

            def fixed_randn(shape, device=None, dtype=None):
                assert tuple(shape) == tuple(rot.shape), (shape, rot.shape)
                return rot.to(device=device, dtype=dtype)

            torch.randn = fixed_randn
            try:
                buckets = original(vectors, num_hashes, attention_mask, increase_num_buckets)
            finally:
                torch.randn = real_randn
            self.calls[layer] += 1
            self.buckets[layer] = buckets.detach().clone()
            self.margins[layer] = hash_margin(vectors.detach(), rot, attn.num_buckets)
            return buckets

        return hash_vectors


def save_canonical(tensors, path, metadata):
    """safetensors.save_file, then rewrite the header with sorted keys: the library writes the
    metadata map in hash order, which would make every regeneration differ byte-wise."""
    save_file(tensors, path, metadata=metadata)
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.dumps(json.loads(raw[8:8 + n]), sort_keys=True, separators=(",", ":")).encode()
    header += b" " * (-(8 + len(header)) % 8)  # the data buffer stays 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header + raw[8 + n:])


def causal_lm_loss(logits, labels):
    """HF ReformerModelWithLMHead's loss: predict token t+1 from position t, mean over labels != -100."""
    v = logits.shape[-1]
    return torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, v), labels[:, 1:].reshape(-1),
                                             ignore_index=-100)


def lm_loss(model, logits, labels):
    """The loss of the model's LM head: causal (shifted) for ReformerModelWithLMHead, unshifted over
    labels != -100 for ReformerForMaskedLM (HF's own losses)."""
    if isinstance(model, ReformerForMaskedLM):
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                                 ignore_index=-100)
    return causal_lm_loss(logits, labels)


def build(name, seed):
    overrides, batch, length, padding, _ = CASES[name]
    config = ReformerConfig(**{**BASE, **overrides})
    model_cls = ReformerModelWithLMHead if config.is_decoder else ReformerForMaskedLM
    torch.manual_seed(seed)
    model = model_cls(config)
    randomize_(model, torch.Generator().manual_seed(seed + 1))
    gen = torch.Generator().manual_seed(seed + 2)
    input_ids = torch.randint(3, config.vocab_size, (batch, length), generator=gen)
    mask = None
    labels = input_ids.clone()
    if padding:
        mask = torch.ones(batch, length, dtype=torch.long)
        for row, positions in padding.items():
            mask[row, positions] = 0
        input_ids[mask == 0] = config.pad_token_id
        labels = input_ids.masked_fill(mask == 0, -100)
    return config, model, input_ids, mask, labels


def check_gradients_fd(model, input_ids, mask, labels, grads, gen, per_tensor=2, h=1e-6, loss_of=None):
    """HF's reversible fp32 gradients vs central differences of the float64 eval-mode loss (same
    rotations; the hash margins keep the buckets fixed under a 1e-6 step). Returns (worst error /
    tolerance, where). Converts the model to float64 in place. loss_of(model) gives the loss
    (default: lm_loss of the model's logits)."""
    model.double().eval()

    def loss():
        with torch.no_grad():
            if loss_of is not None:
                return loss_of(model).item()
            return lm_loss(model, model(input_ids=input_ids, attention_mask=mask).logits, labels).item()

    worst = (0.0, "")
    for pname, p in model.named_parameters():
        flat = p.data.view(-1)
        for i in torch.randint(0, flat.numel(), (per_tensor,), generator=gen).tolist():
            old = flat[i].item()
            flat[i] = old + h
            up = loss()
            flat[i] = old - h
            down = loss()
            flat[i] = old
            fd, got = (up - down) / (2 * h), grads[pname].view(-1)[i].item()
            err = abs(got - fd) / (1e-4 + 1e-3 * abs(fd))
            assert err <= 1.0, f"grad of {pname}[{i}]: HF {got:.6e} vs finite difference {fd:.6e}"
            if err > worst[0]:
                worst = (err, f"{pname}[{i}] |HF - fd| = {abs(got - fd):.1e}, |fd| = {abs(fd):.1e}")
    return worst


def make_case(name, out_dir, seed):
    for attempt in range(20):
        config, model, input_ids, mask, labels = build(name, seed)
        inj = RotationInjector(model, seed=seed + 100 + attempt)

        model.train()
        captured = {}
        hook = model.reformer.register_forward_hook(
            lambda mod, args, out: captured.__setitem__("last_hidden_state", out.last_hidden_state))
        out = model(input_ids=input_ids, attention_mask=mask, output_hidden_states=True)
        hook.remove()
        hashed = any(inj.calls.values())
        if not hashed or min(inj.margins.values()) >= MIN_HASH_MARGIN:
            break
        print(f"{name}: hash margin {min(inj.margins.values()):.2e} too small, redrawing rotations")
    else:
        raise RuntimeError(f"{name}: no rotation draw gave hash margins >= {MIN_HASH_MARGIN}")

    loss = lm_loss(model, out.logits, labels)
    hf_loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss  # our loss is HF's own
    assert torch.allclose(loss, hf_loss, rtol=1e-6, atol=1e-7), (loss, hf_loss)
    model.zero_grad()
    calls_before = dict(inj.calls)
    loss.backward()
    assert inj.calls == calls_before, "the reversible backward must reuse the forward's buckets, not rehash"

    length = input_ids.shape[1]
    short = length <= config.lsh_attn_chunk_length  # HF's LSH layers attend fully, without hashing
    for layer, n in inj.calls.items():
        assert (n == 0) if short else (n >= 1), f"layer {layer}: hashing ran {n} times (L={length})"
    if short:
        inj.rotations.clear()

    model.eval()
    with torch.no_grad():
        eval_logits = model(input_ids=input_ids, attention_mask=mask).logits
    diff = (eval_logits - out.logits).abs().max().item()
    assert diff <= 1e-5, f"{name}: eval and train logits differ by {diff}"

    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        f.write(config.to_json_string(use_diff=False))

    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    save_canonical(state, os.path.join(out_dir, "model.safetensors"), {"format": "pt"})

    data = {"input_ids": input_ids, "labels": labels, "logits": out.logits.detach(), "loss": loss.detach(),
            "last_hidden_state": captured["last_hidden_state"].detach()}
    if mask is not None:
        data["attention_mask"] = mask
    for layer, rot in inj.rotations.items():
        data[f"rotations.{layer}"] = rot
        data[f"buckets.{layer}"] = inj.buckets[layer]
    for i, h in enumerate(out.hidden_states):
        data[f"hidden_states.{i}"] = h.detach()
    for pname, p in model.named_parameters(remove_duplicate=False):
        data[f"grad.{pname}"] = p.grad.detach()
    data = {k: v.clone().contiguous() for k, v in data.items()}
    meta = {"case": name, "covers": CASES[name][4], "model_class": type(model).__name__,
            "transformers_version": transformers.__version__, "torch_version": torch.__version__,
            "loss": "causal LM: cross_entropy(logits[:, :-1], labels[:, 1:]), mean over labels != -100" if config.is_decoder
                    else "masked LM: cross_entropy(logits, labels), mean over labels != -100"}
    save_canonical(data, os.path.join(out_dir, "data.safetensors"), meta)
    margin = min(inj.margins.values()) if inj.rotations else float("nan")
    grads = {k[len("grad."):]: v for k, v in data.items() if k.startswith("grad.")}
    fd_err = check_gradients_fd(model, input_ids, mask, labels, grads, torch.Generator().manual_seed(seed + 3))
    for layer in inj.rotations:
        assert torch.equal(inj.buckets[layer], data[f"buckets.{layer}"]), f"float64 rehash changed layer {layer}'s buckets"
    print(f"{name}: loss {loss.item():.6f}, eval/train max diff {diff:.1e}, min hash margin {margin:.2e}, "
          f"gradient vs finite differences: worst {fd_err[0]:.2f} of tolerance at {fd_err[1]}")

# ---------------------------------------------------------------------------------------------------
# Every Reformer class, saved by transformers' own save_pretrained (tests/fixtures/hf_classes/).

CLASS_BASE = dict(attn_layers=["lsh", "local"], lsh_attn_chunk_length=8, local_attn_chunk_length=8, num_buckets=4,
                  num_hashes=2, axial_pos_shape=[4, 8], axial_pos_embds_dim=[8, 8], hidden_act="gelu",
                  is_decoder=False, lsh_num_chunks_after=1, local_num_chunks_after=1)

# name -> (model class, config overrides, padding positions per batch row, what it covers)
CLASS_CASES = {
    "ReformerModel": (ReformerModel, dict(), {1: list(range(26, 32))},
                      "bare model (keys without reformer.), last_hidden_state; loss = sum(output_grad * last_hidden_state)"),
    "ReformerModelWithLMHead": (ReformerModelWithLMHead,
                                dict(is_decoder=True, lsh_num_chunks_after=0, local_num_chunks_after=0), None,
                                "causal LM; save_pretrained leaves out the tied lm_head.decoder.bias"),
    "ReformerForMaskedLM": (ReformerForMaskedLM, dict(), None,
                            "masked LM: unshifted loss over labels != -100 (half the positions)"),
    "ReformerForSequenceClassification": (ReformerForSequenceClassification, dict(num_labels=3), None,
                                          "3 labels, single_label_classification (integer labels)"),
    "ReformerForSequenceClassification_multi_label": (
        ReformerForSequenceClassification, dict(num_labels=4, problem_type="multi_label_classification"),
        None, "4 labels, multi_label_classification (BCE with logits)"),
    "ReformerForSequenceClassification_regression": (ReformerForSequenceClassification, dict(num_labels=1),
                                                     {0: [0, 5]}, "1 label: regression (MSE), padding mask"),
    "ReformerForQuestionAnswering": (ReformerForQuestionAnswering, dict(), {1: list(range(28, 32))},
                                     "start/end logits; one end position outside the input (clamped, ignored)"),
}


def class_targets(cls, config, gen, batch, length, input_ids):
    """The class's targets (HF argument names) and a loss function of the model's outputs."""
    if cls is ReformerModel:
        w = torch.randn(batch, length, 2 * config.hidden_size, generator=gen)
        return {}, {"output_grad": w}, lambda out: (out.last_hidden_state * w).sum()
    if cls in (ReformerModelWithLMHead, ReformerForMaskedLM):
        labels = input_ids.clone()
        if cls is ReformerForMaskedLM:
            labels[torch.rand(labels.shape, generator=gen) < 0.5] = -100
        return {"labels": labels}, {"labels": labels}, None
    if cls is ReformerForQuestionAnswering:
        start = torch.tensor([3, 17][:batch])
        end = torch.tensor([9, length + 5][:batch])  # beyond the input: clamped to L, ignored by HF's loss
        return ({"start_positions": start, "end_positions": end},
                {"start_positions": start, "end_positions": end}, None)
    if config.problem_type == "multi_label_classification":
        labels = (torch.rand(batch, config.num_labels, generator=gen) < 0.5).float()
    elif config.num_labels == 1:
        labels = torch.randn(batch, generator=gen)
    else:
        labels = torch.randint(0, config.num_labels, (batch,), generator=gen)
    return {"labels": labels}, {"labels": labels}, None


def class_outputs(out):
    """The eval outputs under HF's names."""
    return {k: getattr(out, k).detach() for k in ("logits", "start_logits", "end_logits", "last_hidden_state")
            if getattr(out, k, None) is not None}


def make_class_case(name, out_dir, seed, batch=2, length=32):
    cls, overrides, padding, covers = CLASS_CASES[name]
    config = ReformerConfig(**{**BASE, **CLASS_BASE, **overrides})
    for attempt in range(20):
        torch.manual_seed(seed)
        model = cls(config)
        randomize_(model, torch.Generator().manual_seed(seed + 1))
        gen = torch.Generator().manual_seed(seed + 2)
        input_ids = torch.randint(3, config.vocab_size, (batch, length), generator=gen)
        mask = None
        if padding:
            mask = torch.ones(batch, length, dtype=torch.long)
            for row, positions in padding.items():
                mask[row, positions] = 0
            input_ids[mask == 0] = config.pad_token_id
        hf_targets, stored_targets, custom_loss = class_targets(cls, config, gen, batch, length, input_ids)
        inj = RotationInjector(model, seed=seed + 100 + attempt)
        model.train()
        out = model(input_ids=input_ids, attention_mask=mask, output_hidden_states=True, **hf_targets)
        if min(inj.margins.values()) >= MIN_HASH_MARGIN:
            break
        print(f"{name}: hash margin {min(inj.margins.values()):.2e} too small, redrawing rotations")
    else:
        raise RuntimeError(f"{name}: no rotation draw gave hash margins >= {MIN_HASH_MARGIN}")

    loss = custom_loss(out) if custom_loss else out.loss
    model.zero_grad()
    calls_before = dict(inj.calls)
    loss.backward()
    assert inj.calls == calls_before, "the reversible backward must reuse the forward's buckets, not rehash"

    model.eval()
    with torch.no_grad():
        eval_out = model(input_ids=input_ids, attention_mask=mask, output_hidden_states=True)
    outputs = class_outputs(eval_out)
    for k, v in class_outputs(out).items():
        diff = (v - outputs[k]).abs().max().item()
        assert diff <= 1e-5, f"{name}: eval and train {k} differ by {diff}"

    shutil.rmtree(out_dir, ignore_errors=True)
    model.save_pretrained(out_dir)  # transformers' own layout: safetensors, tied keys left out
    data = {"input_ids": input_ids, "loss": loss.detach()}
    data.update(outputs)
    data.update(stored_targets)
    if mask is not None:
        data["attention_mask"] = mask
    for layer, rot in inj.rotations.items():
        data[f"rotations.{layer}"] = rot
    for i, h in enumerate(eval_out.hidden_states):
        data[f"hidden_states.{i}"] = h.detach()
    for pname, p in model.named_parameters(remove_duplicate=False):
        data[f"grad.{pname}"] = p.grad.detach()
    data = {k: v.clone().contiguous() for k, v in data.items()}
    meta = {"case": name, "covers": covers, "model_class": cls.__name__,
            "transformers_version": transformers.__version__, "torch_version": torch.__version__}
    save_canonical(data, os.path.join(out_dir, "data.safetensors"), meta)
    grads = {k[len("grad."):]: v for k, v in data.items() if k.startswith("grad.")}

    def loss_of(m):  # float64 targets too: a float32 target would round the float64 loss to float32
        targets = {k: v.double() if v.is_floating_point() else v for k, v in hf_targets.items()}
        o = m(input_ids=input_ids, attention_mask=mask, **targets)
        if cls is ReformerModelWithLMHead:  # HF's ForCausalLMLoss computes in float32 (logits.float())
            return lm_loss(m, o.logits, targets["labels"])
        return custom_loss(o) if custom_loss else o.loss

    if custom_loss:
        w = stored_targets["output_grad"]
        custom_loss = lambda o: (o.last_hidden_state * w.double()).sum()  # noqa: E731 (float64 for the check)
    # The finite differences check HF's backward in float64 (its float64 gradients): in float32, HF's
    # combination of hash rounds rounds the logsumexp of a query that sees only itself (score -1e5,
    # ulp 0.008), so a causal model's float32 outputs at position 0 are off by ~1e-3 from exact
    # arithmetic. The stored gradients stay float32 HF's, which the C++ engine reproduces.
    model.double().train()
    model.zero_grad()
    loss_of(model).backward()
    grads64 = {k: p.grad.detach().clone() for k, p in model.named_parameters(remove_duplicate=False)}
    fd_err = check_gradients_fd(model, input_ids, mask, None, grads64, torch.Generator().manual_seed(seed + 3),
                                loss_of=loss_of)
    fp32_vs_64 = max(((grads[k].double() - g).abs().max() / (1e-4 + g.abs().max())).item() for k, g in grads64.items())
    size = sum(os.path.getsize(os.path.join(out_dir, f)) for f in os.listdir(out_dir))
    print(f"{name}: loss {loss.item():.6f}, min hash margin {min(inj.margins.values()):.2e}, float64 gradient vs finite "
          f"differences: worst {fd_err[0]:.2f} of tolerance at {fd_err[1]}; float32 vs float64 gradients: "
          f"max |diff| / max |grad| per tensor {fp32_vs_64:.1e}; {size} bytes")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "hf"))
    ap.add_argument("--classes-out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures",
                                                          "hf_classes"))
    ap.add_argument("--only", nargs="*", choices=sorted(CASES) + sorted(CLASS_CASES),
                    help="cases to regenerate (default: all)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    for name in sorted(CLASS_CASES):
        if not args.only or name in args.only:
            make_class_case(name, os.path.join(args.classes_out, name), seed=zlib.crc32(name.encode()) % 100000 * 1000)
    for name in sorted(CASES):
        if args.only and name not in args.only:
            continue
        case_dir = os.path.join(args.out, name)
        shutil.rmtree(case_dir, ignore_errors=True)
        make_case(name, case_dir, seed=zlib.crc32(name.encode()) % 100000 * 1000)  # stable per case


if __name__ == "__main__":
    main()
