#!/usr/bin/env python3
"""Reverse-direction parity check: a model trained and saved by `reformer` loads in Hugging Face
transformers and gives the same logits (docs/HF_INTEROP.md records the result).

For each case the script
  1. writes a small deterministic text file and trains a tiny mixed local/LSH model on it with
     `reformer train` (a few dozen steps, dropout 0);
  2. loads the saved directory with transformers' from_pretrained and requires that no key is
     missing, unexpected or mismatched;
  3. draws LSH rotations for every LSH layer in HF's layout (heads, head size, num_hashes,
     num_buckets/2): a bounded search (--max-draws) for a draw whose every hashing argmax over real
     (unpadded) positions has a margin >= --min-margin (so the different fp32 rounding of torch and
     the C++ GEMM cannot flip a bucket), and runs HF in eval mode with them injected in place of the
     torch.randn draw inside LSHSelfAttention._hash_vectors. The trained weights, and so the margins,
     depend on the CPU; when no draw reaches the margin, the best draw is used: if some decisions have
     a margin below --flip-margin (1e-4, 50 times the measured torch/reformer output difference), only
     the output elements that do not change when HF is rerun with those decisions flipped to their
     runner-up are compared (the script says how many);
  4. runs `reformer logits` on the same ids, mask and rotations and reports the max abs difference of
     every output (HF's names: logits, start_logits, end_logits, last_hidden_state).

Cases: "decoder" (is_decoder true, ReformerModelWithLMHead; plain, padded, and evaluated with more
hash rounds than trained with), "encoder" (is_decoder false, chunks after > 0, factorized
buckets, ReformerForMaskedLM; trained by `reformer train --config`) and "converted_bin" (a random HF
model saved as pytorch_model.bin with legacy mask buffers, converted by convert_pytorch_bin.py, with
num_buckets null so both sides resolve it from the sequence length; also run through `reformer eval`),
and one case per Reformer class ("class_<name>": a random transformers model saved with
save_pretrained, converted by `reformer convert`, loaded back with <class>.from_pretrained with no
missing or unexpected keys and the same weights, and compared output by output).

Usage: python scripts/check_hf_roundtrip.py [--reformer build/reformer] [--work /tmp/reformer_hf_roundtrip]
                                             [--steps 40] [--tolerance 1e-4] [--min-margin 1e-3] [--max-draws 100]
                                             [--flip-margin 1e-4]
                                             [--only-classes]
Needs: torch, transformers 4.x (4.57.6 checked; 5.x drops lm_head.bias, see tests/fixtures/hf/README.md),
safetensors, and a built `reformer` binary. Exits non-zero if any case exceeds --tolerance.
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys

import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers import (ReformerConfig, ReformerForMaskedLM, ReformerForQuestionAnswering,
                          ReformerForSequenceClassification, ReformerModel, ReformerModelWithLMHead)
from transformers.models.reformer import modeling_reformer as hf_reformer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_hf_fixtures import randomize_  # noqa: E402  (makes every parameter non-trivial)

MIN_HASH_MARGIN = 1e-3  # --min-margin
OUTPUT_NAMES = ("logits", "start_logits", "end_logits", "last_hidden_state")
WORDS = ("the of and to in is was that for on with as by at from his her it an be this which or are had not "
         "but were they all one reformer attention hashing bucket chunk layer").split()

# Model flags shared by both cases (byte vocabulary 258, sequence length 128).
DECODER_FLAGS = ["--hidden-size", "32", "--ff-size", "64", "--heads", "2", "--head-size", "16",
                 "--attn-layers", "local,lsh", "--layers", "4", "--seq-len", "128", "--lsh-chunk", "16",
                 "--local-chunk", "32", "--hashes", "2", "--buckets", "8", "--dropout", "0"]

ENCODER_CONFIG = dict(
    model_type="reformer", attn_layers=["lsh", "local", "lsh", "local"], hidden_size=32, feed_forward_size=64,
    num_attention_heads=2, attention_head_size=16, vocab_size=258, is_decoder=False,
    axial_pos_embds=True, axial_pos_shape=[8, 16], axial_pos_embds_dim=[8, 24], max_position_embeddings=128,
    lsh_attn_chunk_length=16, lsh_num_chunks_before=1, lsh_num_chunks_after=1, num_buckets=[4, 2], num_hashes=2,
    local_attn_chunk_length=16, local_num_chunks_before=1, local_num_chunks_after=1, hidden_act="gelu",
    hidden_dropout_prob=0.0, local_attention_probs_dropout_prob=0.0, lsh_attention_probs_dropout_prob=0.0,
    layer_norm_eps=1e-12, pad_token_id=0, eos_token_id=2,
)


def run(cmd):
    print("$", " ".join(cmd), flush=True)
    result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        sys.exit(f"command failed ({result.returncode}):\n{result.stdout}")
    return result.stdout


def write_text(path, n_words=20000, seed=0):
    rng = random.Random(seed)
    with open(path, "w") as f:
        f.write(" ".join(rng.choice(WORDS) for _ in range(n_words)))


def lsh_layers(model):
    return {i: layer.attention.self_attention for i, layer in enumerate(getattr(model, "reformer", model).encoder.layers)
            if isinstance(layer.attention.self_attention, hf_reformer.LSHSelfAttention)}


def rotation_shape(attn, num_hashes):
    nb = attn.num_buckets
    return (attn.num_attention_heads, attn.attention_head_size, num_hashes, (nb if isinstance(nb, int) else sum(nb)) // 2)


def factor_argmaxes(vectors, rotations, num_buckets):
    """Per bucket factor: (top-2 values, top-2 indices, the factor's place value) of HF's argmax([xR, -xR])."""
    rotated = torch.einsum("bmtd,mdhr->bmhtr", vectors, rotations.to(vectors.dtype))
    factors = [num_buckets] if isinstance(num_buckets, int) else list(num_buckets)
    out, col, place = [], 0, 1
    for f in factors:
        y = rotated[..., col:col + f // 2]
        col += f // 2
        top2 = torch.cat([y, -y], dim=-1).topk(2, dim=-1)
        out.append((top2.values, top2.indices, place))
        place *= f
    return out


def real_positions(attention_mask, shape):
    """(B, H, nh, L) mask of the decisions HF keeps (padded positions get the padding bucket)."""
    if attention_mask is None:
        return torch.ones(shape, dtype=torch.bool)
    return attention_mask.to(torch.bool)[:, None, None, :].expand(shape)


def min_margin(vectors, rotations, num_buckets, attention_mask=None):
    """Smallest gap between the two largest entries over every argmax([xR, -xR]) whose bucket HF keeps."""
    margin = float("inf")
    for values, _, _ in factor_argmaxes(vectors, rotations, num_buckets):
        gap = values[..., 0] - values[..., 1]
        gap = gap[real_positions(attention_mask, gap.shape)]
        if gap.numel():
            margin = min(margin, gap.min().item())
    return margin


def flip_near_ties(buckets, vectors, rotations, num_buckets, attention_mask, below):
    """HF's offset buckets with every kept decision whose margin is < below replaced by its runner-up;
    returns (buckets, number flipped)."""
    delta, flipped = 0, 0
    for values, indices, place in factor_argmaxes(vectors, rotations, num_buckets):
        near = ((values[..., 0] - values[..., 1]) < below) & real_positions(attention_mask, values.shape[:-1])
        delta = delta + torch.where(near, (indices[..., 1] - indices[..., 0]) * place, 0)
        flipped += int(near.sum())
    return buckets + delta.flatten(start_dim=2, end_dim=3), flipped


def hf_outputs_with_rotations(model, input_ids, mask, rotations, num_hashes, flip_below=None):
    """Eval forward in which LSH layer i's torch.randn returns rotations[i]; returns the outputs under
    HF's names, the smallest hashing margin seen and, with flip_below, how many near-tie decisions
    were flipped to their runner-up."""
    margins, calls, flips = [], {}, [0]
    originals = {}
    for i, attn in lsh_layers(model).items():
        originals[i] = attn._hash_vectors

        def patched(vectors, n, attention_mask, increase_num_buckets=False, i=i, attn=attn):
            rot = rotations[i]
            real_randn = torch.randn

            def fixed(shape, device=None, dtype=None, **kwargs):
                if tuple(shape) != tuple(rot.shape):
                    raise RuntimeError(f"layer {i}: HF asked for rotations {tuple(shape)}, have {tuple(rot.shape)}")
                return rot.to(device=device, dtype=dtype)

            torch.randn = fixed
            try:
                buckets = originals[i](vectors, n, attention_mask, increase_num_buckets)
            finally:
                torch.randn = real_randn
            calls[i] = calls.get(i, 0) + 1
            margins.append(min_margin(vectors.detach(), rot, attn.num_buckets, attention_mask))
            if flip_below is not None:
                buckets, k = flip_near_ties(buckets, vectors.detach(), rot, attn.num_buckets, attention_mask, flip_below)
                flips[0] += k
            return buckets

        attn._hash_vectors = patched
    try:
        with torch.no_grad():
            kwargs = dict(input_ids=input_ids, attention_mask=mask)
            if num_hashes is not None:
                kwargs["num_hashes"] = num_hashes
            out = model(**kwargs)
    finally:
        for i, attn in lsh_layers(model).items():
            attn._hash_vectors = originals[i]
    if input_ids.shape[1] > model.config.lsh_attn_chunk_length:
        assert sorted(calls) == sorted(rotations) and all(n == 1 for n in calls.values()), calls
    outputs = {k: getattr(out, k) for k in OUTPUT_NAMES if getattr(out, k, None) is not None}
    return outputs, (min(margins) if margins else float("inf")), flips[0]


def compare(name, model_dir, model, reformer, work, input_ids, mask, num_hashes, seed, opts):
    """Runs HF and `reformer logits` with the same rotations; returns the max abs difference over
    every output (over the comparable elements when no rotation draw reached the margin)."""
    nh = num_hashes if num_hashes is not None else model.config.num_hashes
    if any(a.num_buckets is None for a in lsh_layers(model).values()):
        with torch.no_grad():  # HF fixes an unset num_buckets on its first forward (spec 1.2)
            model(input_ids=input_ids, attention_mask=mask)
    gen = torch.Generator().manual_seed(seed)
    best = None
    for attempt in range(opts.max_draws):  # bounded search for the draw with the largest margin
        rotations = {i: torch.randn(rotation_shape(a, nh), generator=gen) for i, a in lsh_layers(model).items()}
        hf_out, margin, _ = hf_outputs_with_rotations(model, input_ids, mask, rotations, num_hashes)
        if best is None or margin > best[2]:
            best = (rotations, hf_out, margin, attempt + 1)
        if margin >= opts.min_margin:
            break
    rotations, hf_out, margin, draw = best
    keep, note = None, ""
    if opts.flip_margin <= margin < opts.min_margin:
        note = (f"; no draw of {opts.max_draws} reached margin {opts.min_margin:g}, but none is below the flip margin "
                f"{opts.flip_margin:g}: every element compared")
    elif margin < opts.min_margin:
        # Fallback: compare only what the near-tie bucket decisions do not change in HF itself.
        flipped_out, _, n_flipped = hf_outputs_with_rotations(model, input_ids, mask, rotations, num_hashes,
                                                              flip_below=opts.flip_margin)
        keep = {k: (v - flipped_out[k]).abs() <= opts.tolerance for k, v in hf_out.items()}
        kept = sum(int(m.sum()) for m in keep.values())
        total = sum(m.numel() for m in keep.values())
        note = (f"; no draw of {opts.max_draws} reached margin {opts.min_margin:g}: {n_flipped} decisions below "
                f"{opts.flip_margin:g}, the {kept} of {total} output elements flipping them does not change are compared")
        if kept < total // 2:
            sys.exit(f"{name}: only {kept} of {total} output elements are insensitive to the near-tie bucket decisions "
                     f"(best margin {margin:.1e} in {opts.max_draws} draws); pass a larger --max-draws")
    tensors = {"input_ids": input_ids.contiguous()}
    if mask is not None:
        tensors["attention_mask"] = mask.contiguous()
    tensors.update({f"rotations.{i}": r.contiguous() for i, r in rotations.items()})
    inp, out = os.path.join(work, f"{name}.input.safetensors"), os.path.join(work, f"{name}.outputs.safetensors")
    save_file(tensors, inp)
    cmd = [reformer, "logits", "--model", model_dir, "--input", inp, "--out", out]
    if num_hashes is not None:
        cmd += ["--num-hashes", str(num_hashes)]
    run(cmd)
    ours = load_file(out)
    assert set(k for k in ours if k in OUTPUT_NAMES) == set(hf_out), (sorted(ours), sorted(hf_out))
    diff, parts = 0.0, []
    for k, v in hf_out.items():
        assert ours[k].shape == v.shape, (k, ours[k].shape, v.shape)
        d = (ours[k] - v).abs()
        d = d[keep[k]] if keep is not None else d
        diff = max(diff, d.max().item() if d.numel() else 0.0)
        parts.append(f"{k} {tuple(v.shape)}")
    print(f"  {name}: {', '.join(parts)}, {len(rotations)} LSH layers, num_hashes {nh}, "
          f"rotation draw {draw}, min hash margin {margin:.1e}{note}: max |reformer - HF| = {diff:.3e}")
    return diff


def check_converter(reformer, work, ids, seed, opts):
    """HF model -> save_pretrained(safe_serialization=False) -> pytorch_model.bin made to look like an
    old checkpoint (legacy mask buffers added, only lm_head.decoder.bias) -> convert_pytorch_bin.py ->
    `reformer logits` and `reformer eval` on the converted directory."""
    config = ReformerConfig(**{**ENCODER_CONFIG, "is_decoder": True, "attn_layers": ["local", "lsh", "local", "lsh"],
                               "lsh_num_chunks_after": 0, "local_num_chunks_after": 0, "num_buckets": None,
                               "hidden_act": "relu", "chunk_size_feed_forward": 32, "use_cache": False})
    torch.manual_seed(seed)
    model = ReformerModelWithLMHead(config).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # HF's init leaves biases 0 and LayerNorms 1: perturb everything
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
    src, dst = os.path.join(work, "hf_bin"), os.path.join(work, "hf_bin_converted")
    model.save_pretrained(src, safe_serialization=False)
    bin_path = os.path.join(src, "pytorch_model.bin")
    state = torch.load(bin_path, map_location="cpu", weights_only=True)
    print(f"  save_pretrained(safe_serialization=False) wrote {len(state)} tensors"
          f" (lm_head.bias {'present' if 'lm_head.bias' in state else 'absent'})")
    state.pop("lm_head.bias", None)
    for i in range(len(config.attn_layers)):
        for name in ("self_mask_value_float32", "mask_value_float32", "self_mask_value_float16", "mask_value_float16"):
            state[f"reformer.encoder.layers.{i}.attention.self_attention.{name}"] = torch.tensor(-1e5)
    torch.save(state, bin_path)
    print(run([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "convert_pytorch_bin.py"),
               src, "--out", dst]).strip())
    diff = compare("converted_bin", dst, model, reformer, work, ids, None, None, seed + 1, opts)
    text = os.path.join(work, "text.txt")
    print("  " + run([reformer, "eval", "--model", dst, "--file", text, "--seq-len", "128", "--max-windows", "4"]).strip())
    return diff


CLASS_CASES = {  # class -> (overrides of ENCODER_CONFIG, padded input)
    ReformerModel: (dict(), True),
    ReformerModelWithLMHead: (dict(is_decoder=True, lsh_num_chunks_after=0, local_num_chunks_after=0), False),
    ReformerForMaskedLM: (dict(), False),
    ReformerForSequenceClassification: (dict(num_labels=3), True),
    ReformerForQuestionAnswering: (dict(), True),
}


def check_class(cls, reformer, work, ids, mask, seed, opts):
    """transformers' save_pretrained of a random <cls> -> `reformer convert` -> <cls>.from_pretrained of
    what reformer wrote (no missing or unexpected keys, the same weights) -> outputs compared."""
    overrides, padded = CLASS_CASES[cls]
    config = ReformerConfig(**{**ENCODER_CONFIG, **overrides, "use_cache": False})
    torch.manual_seed(seed)
    model = cls(config).eval()
    randomize_(model, torch.Generator().manual_seed(seed))
    hf_dir, ours_dir = os.path.join(work, f"hf_{cls.__name__}"), os.path.join(work, f"reformer_{cls.__name__}")
    model.save_pretrained(hf_dir)
    print("  " + run([reformer, "convert", "--model", hf_dir, "--out", ours_dir]).strip())
    back = load_hf(cls, ours_dir)
    want = model.state_dict()
    for k, v in back.state_dict().items():
        if not torch.equal(v, want[k]):
            sys.exit(f"{cls.__name__}: weight {k} changed on the way through reformer convert")
    with open(os.path.join(ours_dir, "config.json")) as f:
        written = json.load(f)["architectures"]
    assert written == [cls.__name__], written
    inputs = (ids.masked_fill(mask == 0, 0), mask) if padded else (ids, None)
    return compare(f"class_{cls.__name__}", ours_dir, back, reformer, work, *inputs, None, seed + 1, opts)


def load_hf(cls, model_dir):
    model, info = cls.from_pretrained(model_dir, output_loading_info=True)
    problems = {k: v for k, v in info.items() if v}
    if problems:
        sys.exit(f"{model_dir}: {cls.__name__}.from_pretrained reported {problems}")
    print(f"  {cls.__name__}.from_pretrained({model_dir}): no missing, unexpected or mismatched keys")
    return model.eval()


def sample_ids(text_path, batch, length, seed):
    data = open(text_path, "rb").read()
    rng = random.Random(seed)
    rows = []
    for _ in range(batch):
        start = rng.randrange(0, len(data) - length)
        rows.append([b + 2 for b in data[start:start + length]])  # byte id = byte + 2 (reformer's byte data)
    return torch.tensor(rows, dtype=torch.long)


def run_trained_cases(reformer, args, text, ids, mask, padded, results):
    """The models trained by `reformer train` (decoder, encoder) and the converted pickle checkpoint."""
    train = [reformer, "train", "--data", text, "--steps", str(args.steps), "--batch", "4", "--lr", "3e-3",
             "--seed", "1", "--log-interval", str(args.steps), "--eval-windows", "4"]

    # Causal LM (ReformerModelWithLMHead).
    dec_dir = os.path.join(args.work, "decoder")
    print(run(train + DECODER_FLAGS + ["--out", dec_dir]).strip().splitlines()[-2])
    dec = load_hf(ReformerModelWithLMHead, dec_dir)
    results["decoder"] = compare("decoder", dec_dir, dec, reformer, args.work, ids, None, None, 10, args)
    results["decoder_padded"] = compare("decoder_padded", dec_dir, dec, reformer, args.work, padded, mask, None, 20, args)
    results["decoder_4_hashes"] = compare("decoder_4_hashes", dec_dir, dec, reformer, args.work, ids, None, 4, 30, args)
    results["decoder_short"] = compare("decoder_short", dec_dir, dec, reformer, args.work, ids[:, :16], None, None, 40, args)

    # Bidirectional encoder (ReformerForMaskedLM), trained from a config.json.
    enc_dir = os.path.join(args.work, "encoder")
    enc_config = os.path.join(args.work, "encoder_config.json")
    with open(enc_config, "w") as f:
        json.dump(ENCODER_CONFIG, f, indent=2)
    print(run(train + ["--config", enc_config, "--out", enc_dir]).strip().splitlines()[-2])
    enc = load_hf(ReformerForMaskedLM, enc_dir)
    results["encoder"] = compare("encoder", enc_dir, enc, reformer, args.work, ids, None, None, 50, args)
    results["encoder_padded"] = compare("encoder_padded", enc_dir, enc, reformer, args.work, padded, mask, None, 60, args)

    # A Hugging Face checkpoint in the old pickle format, converted by scripts/convert_pytorch_bin.py.
    results["converted_bin"] = check_converter(reformer, args.work, ids, 70, args)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reformer", default="build/reformer", help="the reformer binary")
    ap.add_argument("--work", default="/tmp/reformer_hf_roundtrip", help="scratch directory (recreated)")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--tolerance", type=float, default=1e-4)
    ap.add_argument("--min-margin", type=float, default=MIN_HASH_MARGIN,
                    help="hashing margin a rotation draw must reach for every output element to be compared")
    ap.add_argument("--max-draws", type=int, default=100, help="rotation draws searched per case")
    ap.add_argument("--flip-margin", type=float, default=1e-4,
                    help="when no draw reaches --min-margin: decisions below this margin are flipped to find the output "
                         "elements they affect, which are left out (torch and reformer outputs differ by ~2e-6)")
    ap.add_argument("--only-classes", action="store_true", help="run only the per-class cases (no training)")
    args = ap.parse_args()
    reformer = os.path.abspath(args.reformer)
    if not os.path.exists(reformer):
        sys.exit(f"{reformer} not found; build it (cmake --build build --target reformer) or pass --reformer")
    torch.set_num_threads(1)
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    text = os.path.join(args.work, "text.txt")
    write_text(text)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}")
    results = {}
    ids = sample_ids(text, 2, 128, seed=1)
    mask = torch.ones_like(ids)
    mask[1, 100:] = 0
    padded = ids.masked_fill(mask == 0, 0)
    if not args.only_classes:
        run_trained_cases(reformer, args, text, ids, mask, padded, results)

    # Every Reformer class: transformers' save_pretrained -> reformer convert -> from_pretrained.
    for k, cls in enumerate(CLASS_CASES):
        results[f"class_{cls.__name__}"] = check_class(cls, reformer, args.work, ids, mask, 80 + 10 * k, args)

    worst = max(results.values())
    print(f"max abs output difference over all cases: {worst:.3e} (tolerance {args.tolerance:g})")
    for name, d in results.items():
        print(f"  {name:42s} {d:.3e}")
    sys.exit(0 if worst <= args.tolerance else 1)


if __name__ == "__main__":
    main()
