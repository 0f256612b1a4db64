#include "kernels/cpu/gemm.h"

#include <dnnl.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <unordered_map>
#include <vector>

#include "core/cpu_isa.h"
#include "kernels/cpu/bf16.h"
#include "reformer/error.h"
#include "reformer/precision.h"
#include "reformer/tensor.h"

namespace reformer {
namespace {

#define REFORMER_DNNL(call)                                                                                    \
  do {                                                                                                         \
    const dnnl_status_t st_ = (call);                                                                          \
    REFORMER_CHECK(st_ == dnnl_success, #call " failed with status ", static_cast<int>(st_), " for M=", M, " N=", N, \
                   " K=", K);                                                                                  \
  } while (0)

dnnl_engine_t cpu_engine() {
  static dnnl_engine_t engine = [] {
    dnnl_engine_t e = nullptr;
    const dnnl_status_t st = dnnl_engine_create(&e, dnnl_cpu, 0);
    REFORMER_CHECK(st == dnnl_success, "dnnl_engine_create failed with status ", static_cast<int>(st));
    return e;
  }();
  return engine;
}

// What a cached primitive was made for. The thread count is part of it: oneDNN plans its split of
// the work across threads when the primitive is made. bf16 primitives read dense copies, so their
// lda/ldb are those of the copies.
struct Key {
  bool bf16, ta, tb, nested, bias;
  int threads;
  int64_t M, N, K, lda, ldb, ldc;
  uint32_t alpha, beta;
  bool operator==(const Key&) const = default;
};

struct KeyHash {
  size_t operator()(const Key& k) const {
    size_t h = static_cast<size_t>(k.ta) | static_cast<size_t>(k.tb) << 1 | static_cast<size_t>(k.nested) << 2 |
               static_cast<size_t>(k.bf16) << 3 | static_cast<size_t>(k.bias) << 4;
    for (uint64_t v : {static_cast<uint64_t>(k.threads), static_cast<uint64_t>(k.M), static_cast<uint64_t>(k.N),
                       static_cast<uint64_t>(k.K), static_cast<uint64_t>(k.lda), static_cast<uint64_t>(k.ldb),
                       static_cast<uint64_t>(k.ldc), uint64_t{k.alpha}, uint64_t{k.beta}})
      h = (h ^ v) * 0x100000001B3ull + (h >> 29);
    return h;
  }
};

// A thread keeps at most this many primitives; past it the cache starts over. A primitive depends on
// its key alone, so one made again computes the same bits. (Products of many distinct shapes, such
// as prompts of every length, would otherwise grow it without bound.)
constexpr size_t kMaxCachedPrimitives = 256;

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

// One matmul primitive and its three memory objects (handles set per call).
struct Matmul {
  dnnl_primitive_t prim = nullptr;
  dnnl_memory_t src = nullptr, wei = nullptr, dst = nullptr, bias = nullptr;
  Matmul() = default;
  Matmul(const Matmul&) = delete;
  Matmul& operator=(const Matmul&) = delete;
  ~Matmul() {
    for (dnnl_memory_t m : {src, wei, dst, bias})
      if (m) dnnl_memory_destroy(m);
    if (prim) dnnl_primitive_destroy(prim);
  }
};

// A bf16 copy of an operand as stored (rows x cols, row stride ld), dense (row stride cols).
struct Bf16Copy {
  const float* src = nullptr;
  int64_t ld = 0, rows = 0, cols = 0;
  Buffer<uint16_t> data;
  bool holds(const float* s, int64_t l, int64_t r, int64_t c) const { return src == s && ld == l && rows == r && cols == c; }
};

// Per thread: the primitives by shape, a stream, and the bf16 copies of the operands: the current
// product's two, or, inside a GemmOperandReuse scope, every operand converted since it began.
struct ThreadState {
  std::unordered_map<Key, std::unique_ptr<Matmul>, KeyHash> cache;
  dnnl_stream_t stream = nullptr;
  std::vector<std::unique_ptr<Bf16Copy>> copies;  // the first `copies_live` are valid in the scope
  size_t copies_live = 0;
  int reuse_depth = 0;
  int slots_off = 0;  // GemmOperandSlotsOff scopes
  ~ThreadState() {
    cache.clear();
    if (stream) dnnl_stream_destroy(stream);
  }
};

ThreadState& thread_state() {
  thread_local ThreadState s;
  return s;
}

// The bf16 copy of an operand for this product: one converted earlier in the reuse scope, or a free
// slot (nullptr in *convert means the copy is already valid).
uint16_t* operand_copy(ThreadState& ts, const float* src, int64_t ld, int64_t rows, int64_t cols, Bf16Rows* convert) {
  if (ts.reuse_depth > 0)
    for (size_t i = 0; i < ts.copies_live; ++i)
      if (ts.copies[i]->holds(src, ld, rows, cols)) {
        *convert = {nullptr, 0, nullptr, 0, 0, 0};
        return ts.copies[i]->data.data();
      }
  if (ts.copies_live == ts.copies.size()) ts.copies.push_back(std::make_unique<Bf16Copy>());
  Bf16Copy& c = *ts.copies[ts.copies_live++];
  c.data.ensure(rows * cols, MemCategory::Workspace);
  c.src = src, c.ld = ld, c.rows = rows, c.cols = cols;
  *convert = {c.data.data(), cols, src, ld, rows, cols};
  return c.data.data();
}

std::unique_ptr<Matmul> make_matmul(const Key& k) {
  const int64_t M = k.M, N = k.N, K = k.K;
  // op(A) is M x K; A^T is stored K x M, so op(A) has strides {1, lda}. Likewise B.
  const dnnl_dims_t a_dims = {M, K}, b_dims = {K, N}, c_dims = {M, N};
  const dnnl_dims_t a_strides = {k.ta ? 1 : k.lda, k.ta ? k.lda : 1}, b_strides = {k.tb ? 1 : k.ldb, k.tb ? k.ldb : 1},
                    c_strides = {k.ldc, 1};
  const dnnl_data_type_t in_type = k.bf16 ? dnnl_bf16 : dnnl_f32;
  const dnnl_dims_t bias_dims = {1, N}, bias_strides = {N, 1};
  dnnl_memory_desc_t a_md, b_md, c_md, bias_md;
  REFORMER_DNNL(dnnl_memory_desc_init_by_strides(&a_md, 2, a_dims, in_type, a_strides));
  REFORMER_DNNL(dnnl_memory_desc_init_by_strides(&b_md, 2, b_dims, in_type, b_strides));
  REFORMER_DNNL(dnnl_memory_desc_init_by_strides(&c_md, 2, c_dims, dnnl_f32, c_strides));
  REFORMER_DNNL(dnnl_memory_desc_init_by_strides(&bias_md, 2, bias_dims, dnnl_f32, bias_strides));
  dnnl_matmul_desc_t desc;
  REFORMER_DNNL(dnnl_matmul_desc_init(&desc, &a_md, &b_md, k.bias ? &bias_md : nullptr, &c_md));
  dnnl_primitive_attr_t attr = nullptr;
  REFORMER_DNNL(dnnl_primitive_attr_create(&attr));
  std::unique_ptr<dnnl_primitive_attr, decltype(&dnnl_primitive_attr_destroy)> attr_owner(attr, dnnl_primitive_attr_destroy);
  float alpha, beta;
  std::memcpy(&alpha, &k.alpha, sizeof alpha);
  std::memcpy(&beta, &k.beta, sizeof beta);
  if (alpha != 1.f) REFORMER_DNNL(dnnl_primitive_attr_set_output_scales(attr, 1, 0, &alpha));
  if (beta != 0.f) {  // dst = alpha * A B + beta * dst
    dnnl_post_ops_t po = nullptr;
    REFORMER_DNNL(dnnl_post_ops_create(&po));
    std::unique_ptr<dnnl_post_ops, decltype(&dnnl_post_ops_destroy)> po_owner(po, dnnl_post_ops_destroy);
    REFORMER_DNNL(dnnl_post_ops_append_sum(po, beta));
    REFORMER_DNNL(dnnl_primitive_attr_set_post_ops(attr, po));
  }
  dnnl_primitive_desc_t pd = nullptr;
  REFORMER_DNNL(dnnl_primitive_desc_create(&pd, &desc, attr, cpu_engine(), nullptr));
  std::unique_ptr<dnnl_primitive_desc, decltype(&dnnl_primitive_desc_destroy)> pd_owner(pd, dnnl_primitive_desc_destroy);
  auto m = std::make_unique<Matmul>();
  REFORMER_DNNL(dnnl_primitive_create(&m->prim, pd));
  REFORMER_DNNL(dnnl_memory_create(&m->src, &a_md, cpu_engine(), DNNL_MEMORY_NONE));
  REFORMER_DNNL(dnnl_memory_create(&m->wei, &b_md, cpu_engine(), DNNL_MEMORY_NONE));
  REFORMER_DNNL(dnnl_memory_create(&m->dst, &c_md, cpu_engine(), DNNL_MEMORY_NONE));
  if (k.bias) REFORMER_DNNL(dnnl_memory_create(&m->bias, &bias_md, cpu_engine(), DNNL_MEMORY_NONE));
  return m;
}

// Small products stay on sgemm: a primitive costs a JIT compile, and decoding's M = 1 gains nothing.
bool large_product(int64_t M, int64_t N, int64_t K) {
  return std::min({M, N, K}) >= 64 && M * N * K >= (int64_t{1} << 25);
}

// The calling thread's primitive for this product (made on first use), run on A, B and C as stored;
// with `bias` (N floats) the primitive adds it to every row of alpha op(A) op(B) in its epilogue.
void run_matmul(bool bf16, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const void* A,
                int64_t lda, const void* B, int64_t ldb, float beta, float* C, int64_t ldc,
                const float* bias = nullptr) {
  ThreadState& ts = thread_state();
  const bool nested = omp_in_parallel() != 0;
  // Inside a parallel region oneDNN runs on the calling thread only, so the primitive is planned for one.
  const Key key{bf16, trans_a, trans_b, nested, bias != nullptr, nested ? 1 : omp_get_max_threads(),
                M,    N,       K,       lda,    ldb,             ldc,
                bits(alpha), bits(beta)};
  auto it = ts.cache.find(key);
  if (it == ts.cache.end()) {
    if (ts.cache.size() >= kMaxCachedPrimitives) ts.cache.clear();
    const int saved = omp_get_max_threads();
    if (nested) omp_set_num_threads(1);  // sets this thread's count only
    std::unique_ptr<Matmul> m;
    try {
      m = make_matmul(key);
    } catch (...) {
      if (nested) omp_set_num_threads(saved);
      throw;
    }
    if (nested) omp_set_num_threads(saved);
    it = ts.cache.emplace(key, std::move(m)).first;
  }
  if (!ts.stream) {
    const dnnl_status_t st = dnnl_stream_create(&ts.stream, cpu_engine(), dnnl_stream_default_flags);
    REFORMER_CHECK(st == dnnl_success, "dnnl_stream_create failed with status ", static_cast<int>(st));
  }
  Matmul& mm = *it->second;
  REFORMER_DNNL(dnnl_memory_set_data_handle(mm.src, const_cast<void*>(A)));
  REFORMER_DNNL(dnnl_memory_set_data_handle(mm.wei, const_cast<void*>(B)));
  REFORMER_DNNL(dnnl_memory_set_data_handle(mm.dst, C));
  if (bias) REFORMER_DNNL(dnnl_memory_set_data_handle(mm.bias, const_cast<float*>(bias)));
  const dnnl_exec_arg_t args[4] = {
      {DNNL_ARG_SRC, mm.src}, {DNNL_ARG_WEIGHTS, mm.wei}, {DNNL_ARG_DST, mm.dst}, {DNNL_ARG_BIAS, mm.bias}};
  REFORMER_DNNL(dnnl_primitive_execute(mm.prim, ts.stream, bias ? 4 : 3, args));
  REFORMER_DNNL(dnnl_stream_wait(ts.stream));
}

// gemm_bf16, and with `bias` gemm_bias's bf16 path: the operands rounded into this thread's copies
// (or found there, inside a GemmOperandReuse scope), then oneDNN's bf16 matmul.
void bf16_product(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                  const float* B, int64_t ldb, float beta, float* C, int64_t ldc, const float* bias) {
  if (M == 0 || N == 0) return;
  REFORMER_CHECK(bf16_native(), "bf16 matrix products need AVX512-BF16 or AMX-BF16 with the AVX-512 variants active");
  if (K == 0) {  // oneDNN refuses empty dimensions; C = beta * C (+ bias)
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = (beta == 0.f ? 0.f : beta * C[i * ldc + j]) + (bias ? bias[j] : 0.f);
    return;
  }
  ThreadState& ts = thread_state();
  // Dense bf16 copies in the stored layout: A is M x K (or K x M when transposed), B is K x N (or N x K).
  // Outside a reuse scope both are converted into this thread's first two slots.
  if (ts.reuse_depth == 0) ts.copies_live = 0;
  const int64_t a_rows = trans_a ? K : M, a_cols = trans_a ? M : K, b_rows = trans_b ? N : K, b_cols = trans_b ? K : N;
  Bf16Rows convert_a, convert_b;
  uint16_t* a16 = operand_copy(ts, A, lda, a_rows, a_cols, &convert_a);
  uint16_t* b16 = operand_copy(ts, B, ldb, b_rows, b_cols, &convert_b);
  f32_to_bf16_rows(convert_a, convert_b);  // one parallel region for both; a valid copy has no rows
  if (ts.reuse_depth == 0) ts.copies_live = 0;
  run_matmul(true, trans_a, trans_b, M, N, K, alpha, a16, a_cols, b16, b_cols, beta, C, ldc, bias);
}

}  // namespace

bool gemm_f32_uses_matmul(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K) {
  if (!large_product(M, N, K)) return false;
  if (trans_a && !trans_b) return M > N;  // weight gradients dW = dy^T x with more rows than columns
  if (!trans_a && trans_b) return K >= N;  // x W^T that contracts at least as many columns as it makes
  return false;
}

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
          const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (precision_active() == Precision::bf16) return gemm_bf16(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  gemm_f32(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
              const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (gemm_f32_uses_matmul(trans_a, trans_b, M, N, K))
    return gemm_f32_matmul(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  gemm_f32_sgemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void gemm_f32_sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                    int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  const dnnl_status_t st = dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, alpha, A, lda,
                                      B, ldb, beta, C, ldc);
  REFORMER_CHECK(st == dnnl_success, "dnnl_sgemm failed with status ", static_cast<int>(st), " for M=", M,
                 " N=", N, " K=", K, " lda=", lda, " ldb=", ldb, " ldc=", ldc);
}

void gemm_f32_matmul(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                     int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) return gemm_f32_sgemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);  // C = beta C
  run_matmul(false, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void gemm_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
               const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  bf16_product(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, nullptr);
}

void gemm_bias(int64_t M, int64_t N, int64_t K, const float* x, int64_t ldx, const float* w, int64_t ldw,
               const float* bias, float* y, int64_t ldy) {
  if (M == 0 || N == 0) return;
  if (precision_active() == Precision::bf16)
    return bf16_product(false, true, M, N, K, 1.f, x, ldx, w, ldw, 0.f, y, ldy, bias);
  if (large_product(M, N, K)) return run_matmul(false, false, true, M, N, K, 1.f, x, ldx, w, ldw, 0.f, y, ldy, bias);
#pragma omp parallel for schedule(static) if (M * N >= (int64_t{1} << 16) && !omp_in_parallel())
  for (int64_t i = 0; i < M; ++i) std::copy(bias, bias + N, y + i * ldy);
  gemm_f32_sgemm(false, true, M, N, K, 1.f, x, ldx, w, ldw, 1.f, y, ldy);
}

uint16_t* gemm_operand_bf16_slot(const float* src, int64_t rows, int64_t cols) {
  if (precision_active() != Precision::bf16 || rows <= 0 || cols <= 0) return nullptr;
  ThreadState& ts = thread_state();
  if (ts.reuse_depth == 0 || ts.slots_off > 0) return nullptr;
  Bf16Rows unused;  // the caller converts
  return operand_copy(ts, src, cols, rows, cols, &unused);
}

GemmOperandSlotsOff::GemmOperandSlotsOff() { ++thread_state().slots_off; }
GemmOperandSlotsOff::~GemmOperandSlotsOff() { --thread_state().slots_off; }

GemmOperandReuse::GemmOperandReuse() { ++thread_state().reuse_depth; }

GemmOperandReuse::~GemmOperandReuse() {
  ThreadState& ts = thread_state();
  if (--ts.reuse_depth == 0) ts.copies_live = 0;
}

void gemm_reference(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                    const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                    int64_t ldc) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double acc = 0;
      for (int64_t k = 0; k < K; ++k) {
        const float a = trans_a ? A[k * lda + i] : A[i * lda + k];
        const float b = trans_b ? B[j * ldb + k] : B[k * ldb + j];
        acc += static_cast<double>(a) * b;
      }
      const float c = beta == 0.f ? 0.f : beta * C[i * ldc + j];
      C[i * ldc + j] = static_cast<float>(alpha * acc) + c;
    }
}

}  // namespace reformer
