"""The same checkpoint in Hugging Face transformers and in reformer: logits agree.
    pip install torch transformers==4.57.*   # only for this comparison; reformer does not need them
    python examples/hf_interop.py
LSH draws random rotations (torch.randn in transformers, the seed in reformer), so the script draws
one set and gives it to both."""
import tempfile

import numpy as np
import torch
import transformers

import reformer

config = transformers.ReformerConfig(
    attn_layers=["local", "lsh"], hidden_size=32, feed_forward_size=64, num_attention_heads=2,
    attention_head_size=16, vocab_size=258, axial_pos_shape=[8, 16], axial_pos_embds_dim=[8, 24],
    max_position_embeddings=128, lsh_attn_chunk_length=16, local_attn_chunk_length=16, num_buckets=4,
    num_hashes=2, is_decoder=True)
hf = transformers.ReformerModelWithLMHead(config).eval()
directory = tempfile.mkdtemp()
hf.save_pretrained(directory)  # config.json + model.safetensors
ours = reformer.Model.load(directory)

rotations = torch.randn(2, 16, 2, 2)  # (heads, head size, num_hashes, num_buckets / 2), HF's layout
ours.set_rotations(1, rotations.numpy())  # layer 1 is the LSH layer
ids = torch.randint(2, 258, (2, 128))
real_randn = torch.randn
torch.randn = lambda *shape, **kwargs: rotations.to(kwargs.get("dtype") or torch.float32)  # HF's one draw
try:
    with torch.no_grad():
        hf_logits = hf(ids).logits.numpy()
finally:
    torch.randn = real_randn
our_logits = ours.logits(ids.numpy())
print(f"logits {our_logits.shape}: max |reformer - transformers| = {np.abs(our_logits - hf_logits).max():.2e}")
