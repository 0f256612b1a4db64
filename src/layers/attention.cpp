#include "layers/attention.h"

namespace reformer {

void AttentionLayer::forward(float* out, const float* x, const AttentionCall& call) {
  forward(rows_from(x, hidden_), rows_into(out, hidden_), call);
}

void AttentionLayer::backward(float* dx, float* out, const float* dout, const float* x, const AttentionCall& call) {
  const RowWriter out_rows = rows_into(out, hidden_);
  backward(rows_from(x, hidden_), rows_from(dout, hidden_), rows_into(dx, hidden_), out ? &out_rows : nullptr, call);
}

}  // namespace reformer
