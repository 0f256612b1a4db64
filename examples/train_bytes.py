"""Train a byte-level Reformer on a text file and sample from it (about a minute on 2 cores).
    python examples/train_bytes.py [TEXT_FILE] [OUT_DIR]"""
import sys

import reformer

data = sys.argv[1] if len(sys.argv) > 1 else reformer.DEFAULT_DATA  # Debian's dict-gcide
out = sys.argv[2] if len(sys.argv) > 2 else "runs/example"
config = reformer.Config(vocab_size=258, attn_layers=["local", "lsh"] * 2, hidden_size=128,
                         feed_forward_size=512, num_attention_heads=2, attention_head_size=64, axial_pos_shape=[32, 32],
                         axial_pos_embds_dim=[32, 96], max_position_embeddings=1024, is_decoder=True,
                         lsh_attn_chunk_length=64, local_attn_chunk_length=64, num_buckets=[16])
reformer.train(out, config, data=data, steps=300, batch=4, lr=2e-3, eval_interval=100, verbose=False,
               on_step=lambda r: r["step"] % 50 == 0 and print(f"step {r['step']}: loss {r['loss']:.3f}"),
               on_eval=lambda r: print(f"validation: {r['bits_per_byte']:.3f} bits/byte"))
model = reformer.Model.load(out)
print(model.evaluate(data=data, split="test", max_windows=8))
print(model.generate(b"LIGHT, n.", 200, temperature=0.8, seed=1).decode("utf-8", "replace"))
