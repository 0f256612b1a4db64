#!/usr/bin/env python3
"""Converts a Hugging Face Reformer directory with pytorch_model.bin into model.safetensors, the
only weight format `reformer` reads (docs/HF_INTEROP.md).

  python scripts/convert_pytorch_bin.py SRC_DIR [--out DST_DIR] [--force]

SRC_DIR holds config.json and pytorch_model.bin (or a sharded pytorch_model.bin.index.json with its
shards). The script
  - loads the pickles with torch.load(weights_only=True) (no code from the checkpoint is executed);
  - drops the scalar mask buffers old checkpoints stored per attention layer
    (self_mask_value_float16/32, mask_value_float16/32; spec 6.2);
  - stores the tied LM-head bias under both names HF uses, lm_head.decoder.bias and lm_head.bias
    (one of them is enough in the source; if both are present they must be equal);
  - checks every name and shape against what config.json needs (spec 6.2) and stops with a list of
    missing / unexpected / misshapen tensors, so a checkpoint `reformer` cannot load is caught here;
  - writes DST_DIR/model.safetensors (metadata {"format": "pt"}; dtypes kept, `reformer` converts
    F16/BF16 to float32 on load) atomically, copies config.json (and generation_config.json if
    present) when DST_DIR differs from SRC_DIR, and re-reads the result to check every tensor.

DST_DIR defaults to SRC_DIR (model.safetensors is written beside pytorch_model.bin). An existing
model.safetensors is replaced only with --force. Needs torch and safetensors (not transformers).
"""
import argparse
import json
import os
import shutil
import sys

import torch
from safetensors import safe_open
from safetensors.torch import save_file

LEGACY_BUFFERS = ("self_mask_value_float16", "self_mask_value_float32", "mask_value_float16", "mask_value_float32")


def expected_shapes(cfg):
    """name -> shape of every ReformerModelWithLMHead / ReformerForMaskedLM parameter (spec 6.2)."""
    D, H, d = cfg.get("hidden_size", 256), cfg.get("num_attention_heads", 12), cfg.get("attention_head_size", 64)
    F, V = cfg.get("feed_forward_size", 512), cfg.get("vocab_size", 320)
    layers = cfg.get("attn_layers", ["local", "lsh", "local", "lsh", "local", "lsh"])
    out = {"reformer.embeddings.word_embeddings.weight": (V, D)}
    if cfg.get("axial_pos_embds", True):
        shape, dims = cfg.get("axial_pos_shape", [64, 64]), cfg.get("axial_pos_embds_dim", [64, 192])
        for i, (n, dim) in enumerate(zip(shape, dims)):
            s = [1] * len(shape) + [dim]
            s[i] = n
            out[f"reformer.embeddings.position_embeddings.weights.{i}"] = tuple(s)
    else:
        out["reformer.embeddings.position_embeddings.embedding.weight"] = (cfg.get("max_position_embeddings", 4096), D)
    for i, kind in enumerate(layers):
        p = f"reformer.encoder.layers.{i}."
        out[p + "attention.layer_norm.weight"] = out[p + "attention.layer_norm.bias"] = (D,)
        names = ["query_key", "value"] if kind == "lsh" else ["query", "key", "value"]
        for n in names:
            out[p + f"attention.self_attention.{n}.weight"] = (H * d, D)
        out[p + "attention.output.dense.weight"] = (D, H * d)
        out[p + "feed_forward.layer_norm.weight"] = out[p + "feed_forward.layer_norm.bias"] = (D,)
        out[p + "feed_forward.dense.dense.weight"] = (F, D)
        out[p + "feed_forward.dense.dense.bias"] = (F,)
        out[p + "feed_forward.output.dense.weight"] = (D, F)
        out[p + "feed_forward.output.dense.bias"] = (D,)
    out["reformer.encoder.layer_norm.weight"] = out["reformer.encoder.layer_norm.bias"] = (2 * D,)
    out["lm_head.decoder.weight"] = (V, 2 * D)
    out["lm_head.decoder.bias"] = out["lm_head.bias"] = (V,)
    return out


def load_state_dict(src):
    single, index = os.path.join(src, "pytorch_model.bin"), os.path.join(src, "pytorch_model.bin.index.json")
    if os.path.exists(single):
        files = [single]
    elif os.path.exists(index):
        with open(index) as f:
            files = [os.path.join(src, s) for s in sorted(set(json.load(f)["weight_map"].values()))]
    else:
        sys.exit(f"{src}: neither pytorch_model.bin nor pytorch_model.bin.index.json found")
    state = {}
    for path in files:
        try:
            part = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # a pickle that needs more than tensors is refused by weights_only
            sys.exit(f"{path}: cannot load with torch.load(weights_only=True): {e}")
        if not isinstance(part, dict):
            sys.exit(f"{path}: holds a {type(part).__name__}, not a state dict")
        state.update(part)
    return state


def convert(state, cfg):
    """The state dict `reformer` expects, or exits listing what does not match."""
    out = {}
    dropped = []
    for name, t in state.items():
        if name.endswith(LEGACY_BUFFERS):
            dropped.append(name)
            continue
        if not isinstance(t, torch.Tensor):
            sys.exit(f"entry {name} is a {type(t).__name__}, not a tensor")
        out[name] = t
    # A base ReformerModel checkpoint has no "reformer." prefix and no LM head: not usable as an LM.
    if out and not any(n.startswith("reformer.") for n in out):
        sys.exit("this checkpoint has no 'reformer.' prefix and no LM head (a base ReformerModel); reformer needs "
                 "ReformerModelWithLMHead or ReformerForMaskedLM weights")
    head, tied = out.get("lm_head.decoder.bias"), out.get("lm_head.bias")
    if head is not None and tied is not None and not torch.equal(head, tied):
        sys.exit("lm_head.bias and lm_head.decoder.bias differ; HF ties them, so this checkpoint is inconsistent")
    bias = head if head is not None else tied
    if bias is not None:
        out["lm_head.decoder.bias"] = bias
        out["lm_head.bias"] = bias
    want = expected_shapes(cfg)
    missing = sorted(set(want) - set(out))
    unexpected = sorted(set(out) - set(want))
    misshapen = sorted(f"{n}: {tuple(out[n].shape)}, config.json needs {want[n]}"
                       for n in set(want) & set(out) if tuple(out[n].shape) != want[n])
    if missing or unexpected or misshapen:
        lines = [f"  missing: {n} {want[n]}" for n in missing] + [f"  unexpected: {n} {tuple(out[n].shape)}" for n in unexpected]
        lines += [f"  shape: {m}" for m in misshapen]
        sys.exit("the weights do not match config.json:\n" + "\n".join(lines))
    # safetensors refuses tensors sharing memory (the tied bias): store independent contiguous copies.
    return {n: t.detach().contiguous().clone() for n, t in out.items()}, dropped


def main():
    ap = argparse.ArgumentParser(description="pytorch_model.bin -> model.safetensors for reformer")
    ap.add_argument("src", help="Hugging Face Reformer directory (config.json + pytorch_model.bin)")
    ap.add_argument("--out", help="output directory (default: SRC)")
    ap.add_argument("--force", action="store_true", help="replace an existing model.safetensors")
    args = ap.parse_args()
    src, dst = args.src, args.out or args.src
    cfg_path = os.path.join(src, "config.json")
    if not os.path.exists(cfg_path):
        sys.exit(f"{src}: no config.json; pass a Hugging Face model directory")
    with open(cfg_path) as f:
        cfg = json.load(f)
    if cfg.get("model_type") != "reformer":
        sys.exit(f"{cfg_path}: model_type is {cfg.get('model_type')!r}, not 'reformer'")
    target = os.path.join(dst, "model.safetensors")
    if os.path.exists(target) and not args.force:
        sys.exit(f"{target} exists; pass --force to replace it")

    tensors, dropped = convert(load_state_dict(src), cfg)
    os.makedirs(dst, exist_ok=True)
    tmp = target + ".tmp"
    save_file(tensors, tmp, metadata={"format": "pt"})
    os.replace(tmp, target)
    if os.path.abspath(dst) != os.path.abspath(src):
        for name in ("config.json", "generation_config.json"):
            if os.path.exists(os.path.join(src, name)):
                shutil.copyfile(os.path.join(src, name), os.path.join(dst, name))

    with safe_open(target, framework="pt") as f:
        assert set(f.keys()) == set(tensors), "written names differ"
        for n in f.keys():
            assert torch.equal(f.get_tensor(n), tensors[n]), f"{n} differs after writing"
    n_params = sum(t.numel() for n, t in tensors.items() if n != "lm_head.bias")
    print(f"wrote {target}: {len(tensors)} tensors, {n_params:,} parameters"
          + (f"; dropped {len(dropped)} legacy mask buffers" if dropped else ""))


if __name__ == "__main__":
    main()
