"""The Crime-and-Punishment architecture at length L, as the Python-step scripts train it (keyword
arguments of reformer.Config, HF field names): bench_python_step.py and count_python_step.py."""


def cp_config(L, axial_rows):
    return dict(
        attn_layers=["local", "lsh"] * 3, hidden_size=256, feed_forward_size=512, num_attention_heads=2,
        attention_head_size=64, local_attn_chunk_length=64, lsh_attn_chunk_length=64, local_num_chunks_before=1,
        lsh_num_chunks_before=1, num_hashes=1, vocab_size=258, axial_pos_shape=[axial_rows, L // axial_rows],
        axial_pos_embds_dim=[64, 192], max_position_embeddings=L, is_decoder=True, hidden_dropout_prob=0.05,
        local_attention_probs_dropout_prob=0.05, lsh_attention_probs_dropout_prob=0.0, chunk_size_feed_forward=4096,
        num_buckets=[2 * L // 64])
