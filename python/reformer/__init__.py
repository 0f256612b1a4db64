"""reformer: train and run the Reformer (LSH attention, reversible layers) on long sequences.

The engine is C++ (reformer._core); this package gives it a Python face:

    import reformer
    model = reformer.Model.load("runs/tiny")          # a `reformer train` output or a HF directory
    logits = model.logits([[2 + b for b in b"LIGHT, n."]])       # numpy (B, L, vocab)
    text = model.generate(b"LIGHT, n.", max_new_tokens=100, temperature=0.8, seed=1)
    for byte in model.generate_iter(b"LIGHT, n.", max_new_tokens=100):
        ...                                            # bytes as they are drawn
    reformer.train("runs/py", reformer.Config(...), steps=300, on_step=print)  # as `reformer train`
    model.evaluate(split="validation")                 # as `reformer eval`

Byte-level models map a byte b to id b + 2 (0 = padding, 1 = end of sequence), as `reformer train`.
"""
import json

import numpy as np

from . import _core

__all__ = ["Config", "Model", "DecodeState", "Error", "train", "BYTE_ID_OFFSET", "DEFAULT_DATA"]

BYTE_ID_OFFSET = 2
DecodeState = _core.DecodeState
# Every engine error, with the engine's message (the value, the field and the fix); a ValueError.
Error = _core.Error
_TRAIN_DEFAULTS = json.loads(_core.train_defaults())
# The corpus `reformer train` uses by default: Debian's dict-gcide.
DEFAULT_DATA = _TRAIN_DEFAULTS["data"]


def train(out_dir, config=None, *, resume=False, on_step=None, on_eval=None, max_memory=0, threads=0,
          verbose=True, **options):
    """Trains a model into out_dir exactly as `reformer train` does (same losses for the same seed
    and threads) and returns a summary dict ({"step", "interrupted", "already_finished", "args",
    "config"}); load the result with Model.load(out_dir).

    config: a Config (or dict of its fields) for a new run; with resume=True it may be left out (the
    run's own config is kept; one that differs is refused). options: the CLI's flags with
    underscores, e.g. data=, valid_data=, test_data=, task="lm"|"mlm"|"classify"|"copy", copy_vocab=,
    batch=, steps=, grad_accum=, lr=, warmup=, schedule=, optimizer=, clip_norm=, seed=, log_interval=,
    eval_interval=, eval_windows=, save_interval=, save_total_limit=, precision="fp32"|"bf16" (bf16 matrix
    products, on CPUs with AVX512-BF16 or AMX-BF16), mlm_probability= (task="mlm"),
    num_labels= (task="classify": data= and valid_data= are JSON-lines files of {"text", "label"}).
    init_from=DIR fine-tunes a checkpoint (ours or Hugging Face's): with config=None its config is
    kept; a config that changes more than dropout, chunk lengths, num_hashes or num_buckets is
    refused, naming the field.
    on_step(record) is called after every step with its metrics dict (step, loss, lr, grad_norm,
    tokens_per_s, ...) and on_eval(record) after every evaluation, as metrics.jsonl records them.
    max_memory: bytes or a size such as "24G" (0 = physical memory). Ctrl-C saves a checkpoint,
    then raises KeyboardInterrupt; continue with resume=True.
    """
    unknown = sorted(set(options) - set(_TRAIN_DEFAULTS))
    if unknown:
        raise TypeError(f"train() got unknown options {unknown}; the options are {sorted(_TRAIN_DEFAULTS)}")
    args = dict(_TRAIN_DEFAULTS)
    args.update(options)
    if config is not None and not isinstance(config, Config):
        config = Config(**config)

    def on_record(record):
        if record.get("split") == "train":
            if on_step is not None:
                on_step(record)
        elif on_eval is not None:
            on_eval(record)

    return _core.train(str(out_dir), json.dumps(args), sorted(options), None if config is None else config.to_json(),
                       resume, _memory_bytes(max_memory), threads, verbose, on_record)


def _memory_bytes(value):
    if isinstance(value, int):
        return value
    text = str(value).strip()
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(text[-1:].upper(), 1)
    number = text[:-1] if scale > 1 else text
    try:
        return int(float(number) * scale)
    except ValueError:
        raise Error(f"max_memory {value!r} is not a memory size; give bytes or a number with K, M, G or T, "
                    "e.g. '24G' (0 = physical memory)") from None


class Config:
    """A Reformer configuration with Hugging Face ReformerConfig field names (config.json).

    Config(**fields) starts from the engine's defaults; unknown or invalid fields raise ValueError
    naming the field. Fields read and write as attributes.
    """

    def __init__(self, **fields):
        merged = json.loads(_core.config_defaults())
        merged.update(fields)
        object.__setattr__(self, "_fields", _validated(merged, fields))

    @classmethod
    def from_dict(cls, d):
        return cls(**d)

    @classmethod
    def from_json(cls, text_or_path):
        text = text_or_path
        if not text_or_path.lstrip().startswith("{"):
            with open(text_or_path) as f:
                text = f.read()
        return cls(**json.loads(text))

    def to_dict(self):
        return dict(self._fields)

    def to_json(self):
        return json.dumps(self._fields, indent=2, sort_keys=True)

    def __getattr__(self, name):
        if name == "_fields":
            raise AttributeError(name)
        try:
            return self._fields[name]
        except KeyError:
            raise AttributeError(f"Config has no field {name!r}") from None

    def __setattr__(self, name, value):
        fields = dict(self._fields)
        fields[name] = value
        object.__setattr__(self, "_fields", _validated(fields, {name: value}))

    def __repr__(self):
        return f"Config({self._fields})"


def _validated(fields, given):
    # num_hidden_layers is derived from attn_layers (config.json carries both, as HF writes them).
    fields = dict(fields)
    if "attn_layers" in given and "num_hidden_layers" not in given:
        fields["num_hidden_layers"] = len(fields["attn_layers"])
    return json.loads(_core.config_validate(json.dumps(fields)))


def _ids_2d(ids, name="ids"):
    a = np.asarray(ids)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2:
        raise ValueError(f"{name} must be (batch, length) or (length,), got shape {a.shape}")
    return np.ascontiguousarray(a, dtype=np.int32)


def _prompt_ids(prompt):
    if isinstance(prompt, str):
        prompt = prompt.encode("utf-8")
    if isinstance(prompt, (bytes, bytearray)):
        return [b + BYTE_ID_OFFSET for b in prompt]
    return [int(i) for i in prompt]


class Model:
    """A Reformer language model (ReformerModelWithLMHead weights and semantics)."""

    def __init__(self, config=None, seed=0, *, _core_model=None, _directory=""):
        self._directory = _directory  # where load() read it: its spiece.model is the text's tokenizer
        if _core_model is not None:
            self._m = _core_model
            return
        config = config if isinstance(config, Config) else Config(**(config or {}))
        self._m = _core.Model(config.to_json(), seed)

    @classmethod
    def load(cls, directory):
        """Loads config.json + model.safetensors (a `reformer train` output or a Hugging Face directory)."""
        return cls(_core_model=_core.Model.load(str(directory)), _directory=str(directory))

    def save(self, directory):
        """Writes config.json + model.safetensors (Hugging Face layout)."""
        self._m.save(str(directory))

    @property
    def config(self):
        return Config.from_dict(json.loads(self._m.config_json()))

    @property
    def num_parameters(self):
        return self._m.num_parameters

    def logits(self, ids, attention_mask=None, *, seed=0, threads=0):
        """Logits (B, L, vocab) of ids (B, L) in eval mode; seed keys the LSH rotations."""
        ids = _ids_2d(ids)
        mask = None if attention_mask is None else np.ascontiguousarray(_ids_2d(attention_mask), dtype=np.uint8)
        return self._m.logits(ids, mask, seed, threads)

    def hidden_states(self, ids, attention_mask=None, *, seed=0, threads=0):
        """Hugging Face's output_hidden_states: [embedding output, X2 after layer 1, ...], each (B, L, hidden)."""
        ids = _ids_2d(ids)
        mask = None if attention_mask is None else np.ascontiguousarray(_ids_2d(attention_mask), dtype=np.uint8)
        return self._m.hidden_states(ids, mask, seed, threads)

    def loss(self, ids, labels=None, attention_mask=None, *, seed=0, threads=0):
        """Mean next-token cross-entropy (nats) as Hugging Face computes it (logits[t] vs labels[t + 1])."""
        ids = _ids_2d(ids)
        lab = None if labels is None else _ids_2d(labels, "labels")
        mask = None if attention_mask is None else np.ascontiguousarray(_ids_2d(attention_mask), dtype=np.uint8)
        return self._m.loss(ids, lab, mask, seed, threads)[0]

    def set_num_hashes(self, num_hashes):
        """Hash rounds of every LSH layer from now on (0 = the config's num_hashes)."""
        self._m.set_num_hashes(num_hashes)

    def set_rotations(self, layer, rotations):
        """Fixes LSH layer `layer`'s random rotations, in Hugging Face's layout (heads, head size,
        num_hashes, num_buckets / 2), float32, instead of drawing them from the seed (None goes back
        to drawing): for comparing with transformers, whose rotations come from torch.randn."""
        self._m.set_rotations(layer, None if rotations is None else np.ascontiguousarray(rotations, dtype=np.float32))

    def evaluate(self, data=DEFAULT_DATA, *, file=None, split="validation", task="lm", tokenizer=None, seq_len=0,
                 batch=1, max_windows=0, num_hashes=0, seed=0, incremental=False, threads=0):
        """Loss, bits per byte and accuracy exactly as `reformer eval` computes them: consecutive
        windows of seq_len tokens (0 = the model's length) over a split of data (90/5/5) or a whole
        file; task="copy" scores fresh copy-task sequences. The text is tokenized by `tokenizer` (a
        spiece.model), else by the spiece.model of the directory the model was loaded from, else as
        bytes. Returns {"loss", "bits_per_byte", "accuracy", "tokens", "length", "source"}."""
        r = _core.EvalRequest()
        r.data, r.file, r.split, r.task = str(data), "" if file is None else str(file), split, task
        r.tokenizer, r.model_dir = "" if tokenizer is None else str(tokenizer), self._directory
        r.seq_len, r.batch, r.max_windows, r.num_hashes = seq_len, batch, max_windows, num_hashes
        r.seed, r.incremental, r.threads = seed, incremental, threads
        return _core.evaluate(self._m, r)

    def memory_plan(self, seq_len, batch=1, training=True, optimizer="adam", logits=False, threads=0):
        """Bytes by category ("parameters", "gradients", "optimizer_state", "activations",
        "workspace", "outputs", "total") that a pass over `batch` sequences of `seq_len` tokens needs,
        from the config alone: a training step with `optimizer` (training=True), or a forward
        (training=False: the loss of evaluate(); with logits=True also the (B, L, vocab) output of
        logits()). threads 0 = the default thread count (attention scratch is per thread)."""
        return self._m.memory_plan(seq_len, batch, training, optimizer, logits, threads)

    # --- generation -------------------------------------------------------------------------------
    def decode_state(self, batch=1, capacity=0, seed=0):
        """A caller-owned decoding state (capacity 0 = the model's max length); see prefill/decode_step."""
        return self._m.make_decode_state(batch, capacity, seed)

    def prefill(self, state, ids, seq=0, *, threads=0):
        """Runs a prompt's ids through the chunked forward into sequence `seq`; next-token logits (vocab,)."""
        return self._m.prefill(state, seq, _prompt_ids(ids), threads)

    def decode_step(self, state, ids, seqs=None):
        """Appends ids[i] to sequence seqs[i] (default 0..len(ids)-1); next-token logits (len(ids), vocab)."""
        ids = [int(i) for i in ids]
        seqs = list(range(len(ids))) if seqs is None else [int(s) for s in seqs]
        return self._m.decode_step(state, seqs, ids)

    def generate(self, prompt, max_new_tokens=200, *, temperature=1.0, top_k=0, top_p=1.0, seed=0,
                 max_context=0, stop=(), threads=0, tokenizer=None):
        """The text generated after a prompt (bytes or str), as bytes, exactly as `reformer generate`
        draws it; a list of prompts decodes them together and returns a list. Prompts and output go
        through `tokenizer` (a spiece.model), else the spiece.model of the directory the model was
        loaded from, else bytes (max_new_tokens then counts bytes)."""
        many = isinstance(prompt, (list, tuple))
        prompts = [p.encode("utf-8") if isinstance(p, str) else bytes(p) for p in (prompt if many else [prompt])]
        stops = [s.decode("latin-1") if isinstance(s, bytes) else s for s in stop]
        texts, _ = _core.generate_bytes(self._m, prompts, max_new_tokens, temperature, top_k, top_p, seed,
                                        max_context, stops, threads, self._directory,
                                        "" if tokenizer is None else str(tokenizer))
        return texts if many else texts[0]

    def generate_iter(self, prompt, max_new_tokens=200, *, temperature=1.0, top_k=0, top_p=1.0, seed=0,
                      threads=0):
        """Yields the generated bytes one at a time (as `bytes` of length 1), drawn like generate().

        Stops with ValueError when the context (the model's max length) is full; generate() instead
        continues from the newest half of the context.
        """
        ids = _prompt_ids(prompt)
        if not ids:
            raise ValueError("the prompt is empty; give at least one byte")
        capacity = min(len(ids) + max_new_tokens, self._m.max_length)
        if len(ids) >= capacity:
            raise ValueError(f"a prompt of {len(ids)} tokens leaves no room in the model's context of "
                             f"{self._m.max_length} positions; use generate(), which keeps the newest half")
        state = self._m.make_decode_state(1, capacity, seed)
        sampler = _core.Sampler(temperature, top_k, top_p, seed)
        logits = self._m.prefill(state, 0, ids, threads)
        for i in range(max_new_tokens):
            token = sampler.sample(logits, BYTE_ID_OFFSET, i)
            yield bytes([token - BYTE_ID_OFFSET])
            if i + 1 < max_new_tokens:
                logits = self._m.decode_step(state, [0], [token])[0]

