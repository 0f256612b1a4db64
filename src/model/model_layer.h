#pragma once
// One layer of ReformerModel: its parameters (views into the model's storage) and the attention and
// feed-forward objects built on them. Internal to src/model (model.cpp, decode.cpp).
#include <memory>
#include <string>
#include <vector>

#include "layers/attention.h"
#include "layers/feed_forward.h"
#include "layers/lsh_attention.h"
#include "reformer/attention_kinds.h"
#include "model/model_impl.h"

namespace reformer {

struct ModelImpl::Layer {
  AttentionKind kind;
  Tensor *ln_w, *ln_b, *ln_wg, *ln_bg;
  std::vector<Tensor*> attn_w, attn_g;  // lsh: qk, v, o; local/full: q, k, v, o
  Tensor *ff_ln_w, *ff_ln_b, *ff_w1, *ff_b1, *ff_w2, *ff_b2;
  Tensor *ff_ln_wg, *ff_ln_bg, *ff_w1g, *ff_b1g, *ff_w2g, *ff_b2g;
  std::unique_ptr<AttentionLayer> attn;
  LshSelfAttention* lsh = nullptr;
  std::unique_ptr<FeedForward> ff;
  std::vector<float> rotations;  // injected (HF layout); empty = drawn from the generator
};

}  // namespace reformer
