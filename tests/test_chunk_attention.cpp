// The chunk attention block kernel: forward vs a naive double reference (masks, strides, dropout),
// backward vs finite differences (including the lse gradient and dropout), and HF's behaviour on
// rows whose keys are all masked.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/cpu_isa.h"
#include "kernels/cpu/chunk_attention.h"
#include "reformer/rng.h"
#include "support/attention_reference.h"
#include "support/gradcheck.h"
#include "support/tolerance.h"

using namespace reformer;
using namespace reformer::test;

namespace {

// A block with strided q/k/v/o (row stride ld > d) to exercise the leading dimensions.
struct Block {
  int64_t nq, nk, d, ld;
  std::vector<float> q, k, v;
  std::vector<int32_t> qpos, kpos;
  std::vector<uint8_t> valid;
  ChunkAttentionOptions opt;

  Block(int64_t nq_, int64_t nk_, int64_t d_, ChunkAttentionOptions o, bool padding)
      : nq(nq_), nk(nk_), d(d_), ld(d_ + 3), q(nq_ * ld), k(nk_ * ld), v(nk_ * ld), qpos(nq_), kpos(nk_),
        valid(nk_, 1), opt(o) {
    fill_uniform(q.data(), nq * ld, 1);
    fill_uniform(k.data(), nk * ld, 2);
    fill_uniform(v.data(), nk * ld, 3);
    // Queries at positions 10..; keys at scattered positions (some before, some after, some equal).
    for (int64_t i = 0; i < nq; ++i) qpos[i] = static_cast<int32_t>(10 + i);
    for (int64_t j = 0; j < nk; ++j) kpos[j] = static_cast<int32_t>((j * 7) % (nq + 12));
    if (padding)
      for (int64_t j = 0; j < nk; j += 4) valid[j] = 0;
  }
  const uint8_t* valid_ptr() const { return valid.data(); }

  void forward(float* o, float* lse, float* scratch) const {
    chunk_attention_forward(o, ld, lse, q.data(), ld, k.data(), ld, v.data(), ld, qpos.data(), kpos.data(),
                            valid_ptr(), nq, nk, d, opt, scratch);
  }
  // Contiguous copy of rows with stride ld.
  std::vector<float> packed(const std::vector<float>& x, int64_t rows) const {
    std::vector<float> out(rows * d);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < d; ++c) out[r * d + c] = x[r * ld + c];
    return out;
  }
};

ChunkAttentionOptions options(bool causal, bool self_mask, float dropout) {
  ChunkAttentionOptions o;
  o.causal = causal;
  o.self_mask = self_mask;
  o.dropout = dropout;
  o.seed = 1234;
  o.stream = rng_stream(RngPurpose::AttentionDropout, {1, 2, 3});
  o.dropout_base = 777;
  return o;
}

void expect_forward_matches_reference(const Block& blk) {
  std::vector<float> o(blk.nq * blk.ld), lse(blk.nq), scratch(blk.nq * blk.nk);
  blk.forward(o.data(), lse.data(), scratch.data());
  const std::vector<float> qp = blk.packed(blk.q, blk.nq), kp = blk.packed(blk.k, blk.nk), vp = blk.packed(blk.v, blk.nk);
  std::vector<float> o_ref(blk.nq * blk.d), lse_ref(blk.nq);
  reference_block_attention(o_ref.data(), lse_ref.data(), qp.data(), kp.data(), vp.data(), blk.qpos.data(),
                            blk.kpos.data(), blk.valid_ptr(), blk.nq, blk.nk, blk.d, blk.opt.causal,
                            blk.opt.self_mask, blk.opt.dropout, blk.opt.seed, blk.opt.stream, blk.opt.dropout_base);
  EXPECT_CLOSE(blk.packed(o, blk.nq).data(), o_ref.data(), blk.nq * blk.d, kKernelTol, "o");
  EXPECT_CLOSE(lse.data(), lse_ref.data(), blk.nq, kKernelTol, "lse");
}

}  // namespace

TEST(ChunkAttention, ForwardMatchesReference) {
  // Every instruction-set variant this CPU runs (core/cpu_isa.h), each against the reference.
  const Isa active = isa_active();
  for (Isa isa : isa_supported_list())
  for (bool causal : {false, true})
    for (bool self_mask : {false, true})
      for (bool padding : {false, true})
        for (float dropout : {0.f, 0.3f}) {
          isa_set_active(isa);
          SCOPED_TRACE(testing::Message() << isa_name(isa) << " causal " << causal << " self " << self_mask << " pad " << padding
                                          << " dropout " << dropout);
          expect_forward_matches_reference(Block(5, 13, 8, options(causal, self_mask, dropout), padding));
          expect_forward_matches_reference(Block(3, 77, 8, options(causal, self_mask, dropout), padding));
          // Rows longer than the kernel's block of dropout draws (2,048) are drawn a piece at a time.
          expect_forward_matches_reference(Block(2, 2100, 4, options(causal, self_mask, dropout), padding));
        }
  isa_set_active(active);
}

TEST(ChunkAttention, RowWithNoValidKeyFollowsHuggingFace) {
  // Every key padded: HF's fp32 logsumexp rounds to the mask value, so p = 1 for every key and
  // o = sum of all values (not their mean).
  Block blk(2, 6, 4, options(false, false, 0.f), false);
  std::fill(blk.valid.begin(), blk.valid.end(), 0);
  std::vector<float> o(blk.nq * blk.ld), lse(blk.nq), scratch(blk.nq * blk.nk);
  blk.forward(o.data(), lse.data(), scratch.data());
  for (int64_t i = 0; i < blk.nq; ++i) {
    EXPECT_EQ(lse[i], kMaskValue);
    for (int64_t c = 0; c < blk.d; ++c) {
      float sum = 0;
      for (int64_t j = 0; j < blk.nk; ++j) sum += blk.v[j * blk.ld + c];
      EXPECT_NEAR(o[i * blk.ld + c], sum, kKernelTol.atol + kKernelTol.rtol * std::fabs(sum));
    }
  }
}

TEST(ChunkAttention, BackwardMatchesFiniteDifferences) {
  for (bool causal : {false, true})
    for (float dropout : {0.f, 0.3f}) {
      SCOPED_TRACE(testing::Message() << "causal " << causal << " dropout " << dropout);
      Block blk(5, 11, 6, options(causal, true, dropout), true);
      const int64_t nq = blk.nq, nk = blk.nk, ld = blk.ld;
      std::vector<float> o(nq * ld), lse(nq), scratch(2 * nq * nk);
      std::vector<float> w_o(nq * ld), w_lse(nq);
      fill_uniform(w_o.data(), nq * ld, 11);
      fill_uniform(w_lse.data(), nq, 12);
      // Loss = sum w_o * o + sum w_lse * lse: checks both the o path and the dlse term.
      auto loss = [&] {
        blk.forward(o.data(), lse.data(), scratch.data());
        return weighted_sum(blk.packed(o, nq).data(), blk.packed(w_o, nq).data(), nq * blk.d) +
               weighted_sum(lse.data(), w_lse.data(), nq);
      };
      loss();
      std::vector<float> dq(nq * ld, 0.f), dk(nk * ld, 0.f), dv(nk * ld, 0.f);
      chunk_attention_backward(dq.data(), ld, dk.data(), ld, dv.data(), ld, w_o.data(), ld, w_lse.data(), o.data(),
                               ld, lse.data(), blk.q.data(), ld, blk.k.data(), ld, blk.v.data(), ld, blk.qpos.data(),
                               blk.kpos.data(), blk.valid_ptr(), nq, nk, blk.d, blk.opt, scratch.data());
      EXPECT_GRAD_OK(loss, blk.q.data(), nq * ld, dq.data(), "q");
      EXPECT_GRAD_OK(loss, blk.k.data(), nk * ld, dk.data(), "k");
      EXPECT_GRAD_OK(loss, blk.v.data(), nk * ld, dv.data(), "v");
    }
}

TEST(ChunkAttention, BackwardAccumulatesIntoGradients) {
  Block blk(4, 9, 5, options(false, false, 0.f), false);
  const int64_t nq = blk.nq, nk = blk.nk, ld = blk.ld;
  std::vector<float> o(nq * ld), lse(nq), scratch(2 * nq * nk), dout(nq * ld);
  fill_uniform(dout.data(), nq * ld, 5);
  blk.forward(o.data(), lse.data(), scratch.data());
  auto run = [&](std::vector<float>& dq, std::vector<float>& dk, std::vector<float>& dv) {
    chunk_attention_backward(dq.data(), ld, dk.data(), ld, dv.data(), ld, dout.data(), ld, nullptr, o.data(), ld,
                             lse.data(), blk.q.data(), ld, blk.k.data(), ld, blk.v.data(), ld, blk.qpos.data(),
                             blk.kpos.data(), nullptr, nq, nk, blk.d, blk.opt, scratch.data());
  };
  std::vector<float> dq(nq * ld, 0.f), dk(nk * ld, 0.f), dv(nk * ld, 0.f);
  run(dq, dk, dv);
  std::vector<float> dq2 = dq, dk2 = dk, dv2 = dv;
  run(dq2, dk2, dv2);
  for (auto* pair : {&dq, &dk, &dv})
    for (float& x : *pair) x *= 2.f;
  EXPECT_CLOSE(dq2.data(), dq.data(), nq * ld, kKernelTol, "dq twice");
  EXPECT_CLOSE(dk2.data(), dk.data(), nk * ld, kKernelTol, "dk twice");
  EXPECT_CLOSE(dv2.data(), dv.data(), nk * ld, kKernelTol, "dv twice");
}
