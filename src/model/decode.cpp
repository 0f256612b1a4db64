// ReformerModel's incremental decoding (reformer/decode.h): prefill through the chunked forward,
// then one token at a time through every layer using only the caches.

#include <algorithm>
#include <cstring>

#include "model/eval_length.h"
#include "ops/axial_position.h"
#include "model/model_layer.h"
#include "ops/embedding.h"
#include "ops/layernorm.h"
#include "ops/linear.h"
#include "reformer/decode.h"
#include "reformer/error.h"
#include "reformer/threads.h"

namespace reformer {

namespace {

constexpr MemCategory kState = MemCategory::DecodeState;


}  // namespace

struct DecodeState::Impl {
  const ModelImpl* model = nullptr;
  int64_t batch = 0, capacity = 0;
  uint64_t seed = 0;
  std::vector<std::vector<std::unique_ptr<AttentionCache>>> caches;  // [sequence][layer]
  std::vector<int64_t> length;                                       // per sequence
  // One decoding step's rows (batch at most): the two streams, the attention input and output,
  // the head's concatenation, and the caches of the rows being decoded.
  Tensor x1, x2, a, f, cat;
  std::vector<AttentionCache*> row_caches;
  // The positional embedding's weights and shape, taken once, so that a step allocates nothing.
  std::vector<const float*> pos_weights;
  AxialShape axial;
};

DecodeState::DecodeState(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DecodeState::~DecodeState() = default;
DecodeState::DecodeState(DecodeState&&) noexcept = default;
DecodeState& DecodeState::operator=(DecodeState&&) noexcept = default;

int64_t DecodeState::batch() const { return impl_->batch; }
int64_t DecodeState::capacity() const { return impl_->capacity; }
uint64_t DecodeState::seed() const { return impl_->seed; }

int64_t DecodeState::length(int64_t seq) const {
  REFORMER_CHECK(seq >= 0 && seq < impl_->batch, "decode state: sequence ", seq, " outside [0, ", impl_->batch, ")");
  return impl_->length[seq];
}

int64_t DecodeState::bytes() const {
  int64_t n = 0;
  for (const auto& seq : impl_->caches)
    for (const auto& c : seq) n += c->bytes();
  for (const Tensor* t : {&impl_->x1, &impl_->x2, &impl_->a, &impl_->f, &impl_->cat})
    n += t->capacity() * static_cast<int64_t>(sizeof(float));
  return n;
}

void DecodeState::clear(int64_t seq) {
  REFORMER_CHECK(seq >= 0 && seq < impl_->batch, "decode state: sequence ", seq, " outside [0, ", impl_->batch, ")");
  for (auto& c : impl_->caches[seq]) c->clear();
  impl_->length[seq] = 0;
}

DecodeState ModelImpl::make_decode_state(int64_t batch, int64_t capacity, uint64_t seed) {
  REFORMER_CHECK(head_w_, "incremental decoding needs a language model (ReformerModelWithLMHead); this is a ",
                 model_class_name(config_.model_class()), ", which has no LM head");
  REFORMER_CHECK(config_.is_decoder, "incremental decoding needs a causal language model (is_decoder: true in "
                                     "config.json); this model attends to later positions");
  REFORMER_CHECK(batch >= 1, "decode state: batch ", batch, " must be at least 1");
  if (capacity == 0) capacity = config_.max_length();
  REFORMER_CHECK(capacity >= 1 && capacity <= config_.max_length(), "decode state: context of ", capacity,
                 " positions is outside [1, ", config_.max_length(),
                 "], the positions the model's positional embedding covers");
  ensure_layers(std::max(capacity, config_.lsh_attn_chunk_length));
  auto impl = std::make_unique<DecodeState::Impl>();
  impl->model = this;
  impl->batch = batch;
  impl->capacity = capacity;
  impl->seed = seed;
  impl->length.assign(static_cast<size_t>(batch), 0);
  impl->caches.resize(static_cast<size_t>(batch));
  for (auto& seq : impl->caches)
    for (int l = 0; l < static_cast<int>(layers_.size()); ++l) {
      AttentionCall call;
      call.seed = seed;
      call.layer = l;
      seq.push_back(layers_[l]->attn->make_cache(capacity, call));
    }
  const int64_t D = config_.hidden_size;
  for (Tensor* t : {&impl->x1, &impl->x2, &impl->a, &impl->f}) *t = Tensor({batch, D}, kState);
  impl->cat = Tensor({batch, 2 * D}, kState);
  impl->row_caches.resize(static_cast<size_t>(batch));
  for (Tensor* t : pos_w_) impl->pos_weights.push_back(t->data());
  impl->axial = AxialShape{config_.axial_pos_shape, config_.axial_pos_embds_dim};
  return DecodeState(std::move(impl));
}

void ModelImpl::check_decode_state(const DecodeState& state) const {
  REFORMER_CHECK(state.impl_ && state.impl_->model == this,
                 "decode state was made by another model; make one with this model's make_decode_state()");
}

void ModelImpl::head_rows(float* logits, const float* x1, const float* x2, int64_t rows, float* cat) const {
  const int64_t D = config_.hidden_size;
  for (int64_t i = 0; i < rows; ++i) {
    std::memcpy(cat + i * 2 * D, x1 + i * D, static_cast<size_t>(D) * sizeof(float));
    std::memcpy(cat + i * 2 * D + D, x2 + i * D, static_cast<size_t>(D) * sizeof(float));
  }
  layernorm_forward(cat, nullptr, nullptr, cat, final_ln_w_->data(), final_ln_b_->data(), rows, 2 * D,
                    static_cast<float>(config_.layer_norm_eps));
  linear_forward(logits, cat, head_w_->data(), head_b_->data(), rows, 2 * D, config_.vocab_size);
}

void ModelImpl::prefill(DecodeState& state, int64_t seq, const int32_t* ids, int64_t n, float* logits) {
  check_decode_state(state);
  DecodeState::Impl& st = *state.impl_;
  REFORMER_CHECK(seq >= 0 && seq < st.batch, "prefill: sequence ", seq, " outside [0, ", st.batch, ")");
  REFORMER_CHECK(n >= 1 && n <= st.capacity, "prefill: a prompt of ", n, " tokens does not fit [1, ", st.capacity,
                 "], the decode state's context");
  for (int64_t t = 0; t < n; ++t)
    REFORMER_CHECK(ids[t] >= 0 && ids[t] < config_.vocab_size, "prefill: token id ", ids[t], " at position ", t,
                   " is outside the vocabulary [0, ", config_.vocab_size, ")");
  // Near the end of the positional embedding the padded length may not exist (max_length not a
  // multiple of the chunk lengths): the longest prefix the model runs goes through the forward and
  // the remaining few tokens through decoding steps.
  const int64_t longest = longest_eval_length(config_);
  if (n > longest) {
    prefill(state, seq, ids, longest, logits);
    for (int64_t t = longest; t < n; ++t) decode_step(state, &seq, ids + t, 1, logits);
    return;
  }
  // The prompt padded to a length the model runs, the padding masked: LSH sorts padded slots after
  // every real key (the padding bucket), local attention never lets a real position see them.
  const int64_t L = padded_eval_length(config_, n);
  std::vector<int32_t> padded(static_cast<size_t>(L), static_cast<int32_t>(config_.pad_token_id));
  std::copy(ids, ids + n, padded.begin());
  std::vector<uint8_t> mask(static_cast<size_t>(L), 0);
  std::fill(mask.begin(), mask.begin() + n, 1);
  Batch batch;
  batch.ids = padded.data();
  batch.length = L;
  batch.attention_mask = L > n ? mask.data() : nullptr;
  StepOptions opt;
  opt.training = false;
  opt.seed = st.seed;
  opt.step = 0;  // the state's caches were made with step 0: the same rotations
  prepare(1, L, false, false);
  embed(batch, opt);
  run_layers(batch, opt, false, [&](int l) {
    layers_[l]->attn->fill_cache(*st.caches[seq][l], attention_call(batch, opt, l), 0, n);
  });
  const int64_t D = config_.hidden_size;
  head_rows(logits, x1_.data() + (n - 1) * D, x2_.data() + (n - 1) * D, 1, st.cat.data());
  st.length[seq] = n;
}

void ModelImpl::decode_step(DecodeState& state, const int64_t* seqs, const int32_t* ids, int64_t count,
                                float* logits) {
  check_decode_state(state);
  DecodeState::Impl& st = *state.impl_;
  REFORMER_CHECK(count >= 1 && count <= st.batch, "decode_step: ", count, " sequences, the state holds ", st.batch);
  for (int64_t i = 0; i < count; ++i) {
    const int64_t s = seqs[i];
    REFORMER_CHECK(s >= 0 && s < st.batch, "decode_step: sequence ", s, " outside [0, ", st.batch, ")");
    for (int64_t j = 0; j < i; ++j)
      REFORMER_CHECK(seqs[j] != s, "decode_step: sequence ", s, " is listed twice");
    REFORMER_CHECK(st.length[s] < st.capacity, "decode_step: sequence ", s, " holds ", st.length[s],
                   " positions, the state's whole context; start again from a shorter context");
    REFORMER_CHECK(ids[i] >= 0 && ids[i] < config_.vocab_size, "decode_step: token id ", ids[i],
                   " is outside the vocabulary [0, ", config_.vocab_size, ")");
  }
  // A step is well under a millisecond of work per row, in pieces of a few microseconds: on two
  // threads their fork/joins and threaded one-row GEMMs made it 35x slower (0.57 -> 20 ms per token,
  // docs/PERFORMANCE.md "Generation"), so it runs on the calling thread.
  const ScopedThreads one_thread(1);
  const int64_t D = config_.hidden_size;
  const float eps = static_cast<float>(config_.layer_norm_eps);
  float *x1 = st.x1.data(), *x2 = st.x2.data(), *a = st.a.data(), *f = st.f.data();
  // Embedding (eval: no dropout): word embedding + the position's embedding, both streams.
  embedding_forward(x1, ids, word_emb_->data(), count, config_.vocab_size, D);
  for (int64_t i = 0; i < count; ++i) {
    const int64_t position = st.length[seqs[i]];
    if (config_.axial_pos_embds)
      axial_position_forward(x1 + i * D, st.pos_weights.data(), st.axial, 1, 1, position);
    else
      learned_position_forward(x1 + i * D, st.pos_weights[0], 1, 1, D, config_.max_position_embeddings, position);
  }
  std::memcpy(x2, x1, static_cast<size_t>(count * D) * sizeof(float));
  for (size_t l = 0; l < layers_.size(); ++l) {
    Layer& layer = *layers_[l];
    // Y1 = X1 + Attn(LN_a(X2)), Y2 = X2 + FF(Y1): the forward's block, one row per sequence.
    layernorm_forward(a, nullptr, nullptr, x2, layer.ln_w->data(), layer.ln_b->data(), count, D, eps);
    for (int64_t i = 0; i < count; ++i) st.row_caches[i] = st.caches[seqs[i]][l].get();
    layer.attn->decode(f, a, count, st.row_caches.data());
    for (int64_t j = 0; j < count * D; ++j) x1[j] += f[j];
    FeedForwardCall call;
    call.rows = count;
    call.training = false;
    call.layer = static_cast<int>(l);
    layer.ff->forward_add(x2, x1, call);
  }
  head_rows(logits, x1, x2, count, st.cat.data());
  for (int64_t i = 0; i < count; ++i) ++st.length[seqs[i]];
}

}  // namespace reformer
