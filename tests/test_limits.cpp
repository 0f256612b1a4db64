// The bounds on sizes (reformer/limits.h, core/checked_math.h), the memory plan and allocator ceiling,
// and the rule that no exception leaves an OpenMP region (core/parallel_errors.h).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "core/checked_math.h"
#include "reformer/limits.h"
#include "core/parallel_errors.h"
#include "reformer/safetensors.h"
#include "reformer/config.h"
#include "reformer/memory.h"
#include "reformer/tensor.h"
#include "support/expect_error.h"
#include "reformer/memory_estimate.h"

using namespace reformer;
using reformer::test::expect_error;

namespace {

constexpr int64_t k2p40 = int64_t{1} << 40;

TEST(CheckedMath, OverflowIsAnErrorNamingWhatWasComputed) {
  EXPECT_EQ(checked_mul(int64_t{1} << 31, int64_t{1} << 31, "x"), int64_t{1} << 62);
  expect_error([] { checked_mul(k2p40, k2p40, "the window size"); }, "the window size = 1099511627776 x 1099511627776 overflows");
  expect_error([] { checked_add(INT64_MAX, 1, "the total"); }, "the total = 9223372036854775807 + 1 overflows");
  expect_error([] { checked_product({1 << 20, 1 << 20, 1 << 20, 1 << 20}, "B x L x D"); }, "B x L x D");
}

TEST(ShapeNumel, RefusesOverflowingAndHugeShapesBeforeAllocating) {
  const int64_t allocations = mem_stats().allocations;
  // 2^53 x 2^53 used to wrap to 0 and allocate a 64-byte block that was then written past.
  expect_error([] { Tensor t({int64_t{1} << 53, int64_t{1} << 53}, MemCategory::Workspace); }, "overflows 64 bits");
  expect_error([] { shape_numel({k2p40, 2}); }, "more than the limit");
  EXPECT_EQ(mem_stats().allocations, allocations);
  EXPECT_EQ(shape_numel({k2p40}), k2p40);
}

TEST(ParallelErrors, AnExceptionInsideAnOpenMPLoopReachesTheCaller) {
  ParallelErrors errors;
  int ran = 0;
#pragma omp parallel for reduction(+ : ran)
  for (int i = 0; i < 1000; ++i)
    errors.run([&] {
      ++ran;
      if (i == 500) fail("iteration ", i, " failed");
    });
  EXPECT_TRUE(errors.failed());
  expect_error([&] { errors.rethrow(); }, "iteration 500 failed");
  EXPECT_GE(ran, 1);
  EXPECT_NO_THROW(errors.rethrow());  // handed over once
}

TEST(MemoryLimit, AnAllocationAboveTheCeilingIsRefusedWithTheBytes) {
  mem_set_limit(int64_t{1} << 20);
  expect_error([] { Buffer<float> b(int64_t{1} << 20, MemCategory::Activations); }, "allocating 4194304 bytes for activations");
  mem_set_limit(0);
  EXPECT_NO_THROW(Buffer<float>(int64_t{1} << 20, MemCategory::Activations));
}

ReformerConfig long_config() {
  ReformerConfig c;
  c.attn_layers = {"local", "lsh"};
  c.axial_pos_shape = {32768, 32768};  // 2^30 positions
  c.num_buckets = {64, 64};
  c.pad_token_id = 0;
  return c;
}

TEST(MemoryPlan, AnOverflowingPlanIsAnErrorNotAWrappedNumber) {
  const ReformerConfig c = long_config();
  c.validate();
  // 2^20 sequences of 2^30 tokens: the stream buffers alone pass 2^63 bytes.
  expect_error([&] { estimate_training_memory(c, int64_t{1} << 20, c.max_length(), "adam", 1); }, "overflows 64 bits");
}

TEST(MemoryPlan, APlanAboveTheBudgetIsRefusedWithThePlannedBytes) {
  MemoryEstimate m;
  m.activations = int64_t{3} << 30;
  expect_error([&] { check_memory_plan(m, int64_t{1} << 30); },
               "needs about 3221225472 bytes (3.00 GiB) but --max-memory allows 1073741824 bytes");
  EXPECT_NO_THROW(check_memory_plan(m, int64_t{4} << 30));
  m.activations = int64_t{1} << 62;  // more than any machine
  expect_error([&] { check_memory_plan(m, 0); }, "this machine has");
}

TEST(Config, EverySizeHasAnUpperBoundNamingTheField) {
  for (auto [field, set] : std::initializer_list<std::pair<const char*, void (*)(ReformerConfig&)>>{
           {"num_attention_heads = 9007199254740992", [](ReformerConfig& c) { c.num_attention_heads = int64_t{1} << 53; }},
           {"local_num_chunks_before = 4611686018427387904", [](ReformerConfig& c) { c.local_num_chunks_before = int64_t{1} << 62; }},
           {"lsh_num_chunks_before = 9223372036854775807", [](ReformerConfig& c) { c.lsh_num_chunks_before = INT64_MAX; }},
           {"hidden_size = 4611686018427387904", [](ReformerConfig& c) { c.hidden_size = int64_t{1} << 62; }},
           {"pad_token_id = 320 is not a token", [](ReformerConfig& c) { c.pad_token_id = 320; }},
           {"hidden_size (attention) = 2199023255552 weights in one tensor, more than the limit", [](ReformerConfig& c) {
              c.num_attention_heads = 4096;
              c.attention_head_size = 1 << 20;
              c.hidden_size = 512;
            }},
       }) {
    ReformerConfig c;
    set(c);
    expect_error([&] { c.validate(); }, field);
  }
}

TEST(RegularFiles, AFifoOrADirectoryIsRefusedWithoutOpeningIt) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / ("reformer_limits_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const std::string fifo = (dir / "weights.safetensors").string();
  ASSERT_EQ(mkfifo(fifo.c_str(), 0644), 0);
  expect_error([&] { SafetensorsFile::open(fifo); }, "'" + fifo + "' is not a regular file (a FIFO)");  // would block in open()
  expect_error([&] { SafetensorsFile::open(dir.string()); }, "is a directory, not a file");
  expect_error([&] { ReformerConfig::load(fifo); }, "config file '" + fifo + "' is not a regular file");
  std::filesystem::remove_all(dir);
}

}  // namespace
