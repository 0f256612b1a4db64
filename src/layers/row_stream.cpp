#include "layers/row_stream.h"

#include <algorithm>

#include "kernels/cpu/gemm.h"
#include "ops/parallel.h"

namespace reformer {

void RowScratch::ensure(int64_t rows, int64_t D, int64_t Hd) {
  const int64_t n = std::min(rows, chunk);
  in.ensure({n, D}, MemCategory::Workspace);
  out.ensure({n, D}, MemCategory::Workspace);
  proj.ensure({n, Hd}, MemCategory::Workspace);
}

RowReader rows_from(const float* x, int64_t width) {
  return [x, width](float* dst, int64_t r0, int64_t n) { copy_elementwise(dst, x + r0 * width, n * width); };
}

RowWriter rows_into(float* y, int64_t width) {
  return [y, width](float* src, int64_t r0, int64_t n) { copy_elementwise(y + r0 * width, src, n * width); };
}

void project_rows(const RowReader& x, int64_t rows, int64_t D, int64_t Hd, std::initializer_list<Projection> ps,
                  RowScratch& s) {
  s.ensure(rows, D, Hd);
  for (int64_t r0 = 0; r0 < rows; r0 += s.chunk) {
    const int64_t n = std::min(s.chunk, rows - r0);
    const GemmOperandReuse reuse;  // bf16: the chunk is rounded once for every projection (or by the reader)
    x(s.in.data(), r0, n);
    for (const Projection& p : ps)
      gemm(false, true, n, Hd, D, p.scale, s.in.data(), D, p.w, D, 0.f, p.y + r0 * Hd, Hd);
  }
}

void output_rows(const RowWriter& out, const float* o, const float* wo, int64_t rows, int64_t Hd, int64_t D,
                 RowScratch& s) {
  s.ensure(rows, D, Hd);
  for (int64_t r0 = 0; r0 < rows; r0 += s.chunk) {
    const int64_t n = std::min(s.chunk, rows - r0);
    gemm(false, true, n, D, Hd, 1.f, o + r0 * Hd, Hd, wo, Hd, 0.f, s.out.data(), D);
    out(s.out.data(), r0, n);
  }
}

void output_backward_rows(float* dO, const float* o, float* row_dlse, const RowReader& dout, const RowWriter* out,
                          const float* wo, float* dwo, int64_t B, int64_t L, int64_t H, int64_t d, int64_t D,
                          RowScratch& s) {
  const int64_t rows = B * L, Hd = H * d;
  s.ensure(rows, D, Hd);
  for (int64_t r0 = 0; r0 < rows; r0 += s.chunk) {
    const int64_t n = std::min(s.chunk, rows - r0);
    const float* oc = o ? o + r0 * Hd : nullptr;
    const GemmOperandReuse reuse;  // bf16: dout and o rounded once for dWo, out and dO (none changes below)
    dout(s.in.data(), r0, n);
    if (oc) {
      gemm(true, false, D, Hd, n, 1.f, s.in.data(), D, oc, Hd, 1.f, dwo, Hd);  // dWo += dout^T o
      if (out) {
        gemm(false, true, n, D, Hd, 1.f, oc, Hd, wo, Hd, 0.f, s.out.data(), D);
        (*out)(s.out.data(), r0, n);
      }
    }
    if (!dO) continue;
    float* g = s.proj.data();
    gemm(false, false, n, Hd, D, 1.f, s.in.data(), D, wo, Hd, 0.f, g, Hd);  // dO = dout Wo
    if (row_dlse && oc) {
#pragma omp parallel for schedule(static) if (n * Hd > 65536)
      for (int64_t i = 0; i < n; ++i) {
        const int64_t r = r0 + i, b = r / L, t = r % L;
        for (int64_t h = 0; h < H; ++h) {
          double dot = 0;
          for (int64_t j = 0; j < d; ++j) dot += static_cast<double>(g[i * Hd + h * d + j]) * oc[i * Hd + h * d + j];
          row_dlse[(b * H + h) * L + t] = static_cast<float>(-dot);
        }
      }
    }
    copy_elementwise(dO + r0 * Hd, g, n * Hd);  // last: dO may be o
  }
}

void project_backward_rows(const RowReader& x, const RowWriter& dx, int64_t rows, int64_t D, int64_t Hd,
                           std::initializer_list<ProjectionGrad> gs, RowScratch& s) {
  s.ensure(rows, D, Hd);
  for (int64_t r0 = 0; r0 < rows; r0 += s.chunk) {
    const int64_t n = std::min(s.chunk, rows - r0);
    const GemmOperandReuse reuse;  // bf16: x and each dy rounded once for dW and dx
    x(s.in.data(), r0, n);
    float beta = 0.f;
    for (const ProjectionGrad& g : gs) {
      const float* dy = g.dy + r0 * Hd;
      gemm(true, false, Hd, D, n, g.scale, dy, Hd, s.in.data(), D, 1.f, g.dw, D);         // dW += s dy^T x
      gemm(false, false, n, D, Hd, g.scale, dy, Hd, g.w, D, beta, s.out.data(), D);      // dx += s dy W
      beta = 1.f;
    }
    dx(s.out.data(), r0, n);
  }
}

}  // namespace reformer
