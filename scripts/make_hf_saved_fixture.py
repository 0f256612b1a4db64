#!/usr/bin/env python3
"""Writes tests/fixtures/hf_saved/lm_head/: a tiny ReformerModelWithLMHead saved by transformers' own
save_pretrained() (safetensors, the default), which leaves out the tied lm_head.decoder.bias, plus
expected.safetensors with input ids and the eval-mode logits transformers computes for them.
Local attention only, so no LSH rotations are involved and the logits must match to kParityTol.

Usage: /work/hfvenv/bin/python scripts/make_hf_saved_fixture.py [--out tests/fixtures/hf_saved]
Needs: torch, transformers 4.57.x, safetensors.
"""
import argparse
import os
import shutil

import torch
from safetensors.torch import save_file
from transformers import ReformerConfig, ReformerModelWithLMHead


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/fixtures/hf_saved")
    args = ap.parse_args()
    torch.manual_seed(0)
    cfg = ReformerConfig(
        attn_layers=["local", "local"], hidden_size=16, num_attention_heads=2, attention_head_size=8,
        feed_forward_size=32, vocab_size=24, hidden_dropout_prob=0.0, local_attention_probs_dropout_prob=0.0,
        lsh_attention_probs_dropout_prob=0.0, local_attn_chunk_length=8, local_num_chunks_before=1,
        local_num_chunks_after=0, is_decoder=True, axial_pos_embds=True, axial_pos_shape=[4, 8],
        axial_pos_embds_dim=[6, 10], max_position_embeddings=32, num_buckets=4, lsh_attn_chunk_length=8,
        hidden_act="relu", pad_token_id=0, eos_token_id=2, chunk_size_feed_forward=0,
        initializer_range=0.3)
    model = ReformerModelWithLMHead(cfg).eval()
    with torch.no_grad():  # non-trivial LayerNorm and bias parameters, so every tensor matters
        for name, p in model.named_parameters():
            if "layer_norm" in name or name.endswith("bias"):
                p.add_(0.2 * (torch.rand_like(p) - 0.5))
    out = os.path.join(args.out, "lm_head")
    shutil.rmtree(out, ignore_errors=True)
    model.save_pretrained(out)
    ids = torch.randint(3, cfg.vocab_size, (2, 32))
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    save_file({"input_ids": ids.to(torch.int64).contiguous(), "logits": logits.contiguous()},
              os.path.join(out, "expected.safetensors"))
    print("wrote", sorted(os.listdir(out)))


if __name__ == "__main__":
    main()
