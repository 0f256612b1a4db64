#include "layers/attention.h"

#include <iterator>
#include <utility>

#include "reformer/error.h"

namespace reformer {

void AttentionLayer::forward(float* out, const float* x, const AttentionCall& call) {
  forward(rows_from(x, hidden_), rows_into(out, hidden_), call);
}

void AttentionLayer::backward(float* dx, float* out, const float* dout, const float* x, const AttentionCall& call) {
  const RowWriter out_rows = rows_into(out, hidden_);
  backward(rows_from(x, hidden_), rows_from(dout, hidden_), rows_into(dx, hidden_), out ? &out_rows : nullptr, call);
}

void AttentionLayer::keep(const AttentionCall& call, std::initializer_list<Tensor*> buffers) {
  if (!call.kept) return;
  AttentionKept& k = *call.kept;
  REFORMER_CHECK(buffers.size() <= std::size(k.t), "an attention layer keeps at most ", std::size(k.t), " buffers");
  size_t i = 0;
  for (Tensor* b : buffers) std::swap(*b, k.t[i++]);
  k.valid = true;
  k.batch = call.batch;
  k.length = call.length;
}

bool AttentionLayer::take_kept(const AttentionCall& call, std::initializer_list<Tensor*> buffers) {
  if (!call.kept || !call.kept->valid) return false;
  AttentionKept& k = *call.kept;
  REFORMER_CHECK(k.batch == call.batch && k.length == call.length, "the kept attention state is of batch ", k.batch,
                 " x length ", k.length, ", the backward's of ", call.batch, " x ", call.length);
  size_t i = 0;
  for (Tensor* b : buffers) std::swap(*b, k.t[i++]);
  k.valid = false;
  return true;
}

}  // namespace reformer
