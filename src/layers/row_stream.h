#pragma once
// Row-streamed inputs and outputs of an attention branch. The model never holds the branch input
// LN(X2) or the branch output F for the whole sequence (two (B, L, D) buffers, 2 GiB at 1M tokens
// with D = 256): an attention layer reads its input rows through a RowReader, chunk by chunk and
// possibly more than once (the model recomputes LN per chunk), and hands its output rows to a
// RowWriter (the model adds them, after dropout, into X1). Only the (B, L, H*d) projections are held.
//
// Rows are the flattened (B * L) positions, each `width` floats wide. Every function here visits
// row chunks in order and, for a chunk, finishes all reads before the chunk's write; so a reader
// and a writer may be backed by the same buffer (the pointer forms of AttentionLayer rely on it).
#include <cstdint>
#include <functional>
#include <initializer_list>

#include "reformer/tensor.h"

namespace reformer {

// Fills rows [r0, r0 + n) into dst (n x width, contiguous). The functions below call their readers
// inside the chunk's GemmOperandReuse scope, so a reader may also fill the bf16 operand slot of dst
// (gemm_operand_bf16_slot(dst, n, width), kernels/cpu/gemm.h) in its own pass.
using RowReader = std::function<void(float* dst, int64_t r0, int64_t n)>;
// Consumes rows [r0, r0 + n); src is scratch the writer may modify in place.
using RowWriter = std::function<void(float* src, int64_t r0, int64_t n)>;

// Rows per chunk: big enough for efficient GEMMs. 2,048 ran as fast as 4,096 in the 16K C&P step
// (twelfth session, --pair) with 5 MiB less scratch.
inline constexpr int64_t kRowChunk = 2048;

// Chunk-sized scratch: two (chunk, D) and one (chunk, H*d). Shared by all attention layers of a
// model (they run one at a time).
struct RowScratch {
  int64_t chunk = kRowChunk;  // rows per chunk (tests use small ones to cover chunk boundaries)
  Tensor in, out, proj;
  void ensure(int64_t rows, int64_t D, int64_t Hd);
};

// A reader over a plain (rows, width) buffer and a writer into one.
RowReader rows_from(const float* x, int64_t width);
RowWriter rows_into(float* y, int64_t width);

// One projection y = scale * x W^T, W: (Hd, D) torch layout, y: (rows, Hd).
struct Projection {
  const float* w;
  float* y;
  float scale = 1.f;
};
// Every projection of x in one pass over x's rows.
void project_rows(const RowReader& x, int64_t rows, int64_t D, int64_t Hd, std::initializer_list<Projection> ps,
                  RowScratch& s);

// out = o Wo^T, Wo: (D, Hd), chunk by chunk into `out`.
void output_rows(const RowWriter& out, const float* o, const float* wo, int64_t rows, int64_t Hd, int64_t D,
                 RowScratch& s);

// The backward of out = o Wo^T, chunk by chunk, reading dout once: with o, dWo += dout^T o and,
// if `out` is given, the recomputed forward output is written; with dO, dO = dout Wo. dO may be the
// o buffer itself (o is then replaced by dO chunk by chunk); `row_dlse` (B, H, L), if not null,
// receives -dO_h . o_h per row and head, the term the chunk attention backward needs from o
// (chunk_attention.h: pass it as dlse with o = nullptr). o or dO may be nullptr to skip their part.
void output_backward_rows(float* dO, const float* o, float* row_dlse, const RowReader& dout, const RowWriter* out,
                          const float* wo, float* dwo, int64_t B, int64_t L, int64_t H, int64_t d, int64_t D,
                          RowScratch& s);

// The backward of a projection: dW += scale * dy^T x, and dx += scale * dy W.
struct ProjectionGrad {
  const float* w;
  float* dw;
  const float* dy;
  float scale = 1.f;
};
// Every projection's weight gradient and dx = sum of their input gradients, in one pass over x's
// rows; dx rows go to the writer.
void project_backward_rows(const RowReader& x, const RowWriter& dx, int64_t rows, int64_t D, int64_t Hd,
                           std::initializer_list<ProjectionGrad> gs, RowScratch& s);

}  // namespace reformer
