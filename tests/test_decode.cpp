// Incremental decoding (reformer/decode.h, docs/NUMERICS.md "Incremental decoding"): the bucket
// index against a sort, cached steps against the slow reference decoder and against the full
// forward where the two must agree, prefill against stepping, and the state's memory.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <vector>

#include "kernels/cpu/lsh_bucket_index.h"
#include "reformer/memory.h"
#include "reformer/model.h"
#include "reformer/rng.h"
#include "support/decode_reference.h"
#include "support/expect_error.h"
#include "support/tiny_model.h"
#include "support/tolerance.h"

using namespace reformer;
using reformer::test::expect_error;

namespace {

// tiny_config (support/tiny_model.h) with vocabulary 13, one hash round and large weights.
ReformerConfig decoder_config(std::vector<std::string> layers, int64_t max_len = 64) {
  ReformerConfig c = test::tiny_config(std::move(layers), max_len);
  c.vocab_size = 13;
  c.num_hashes = 1;
  c.initializer_range = 0.3;  // large weights: attention patterns that matter
  return c;
}

// A model whose every parameter (LayerNorm gains and biases included) is random.
std::unique_ptr<ReformerModel> random_model(const ReformerConfig& c, uint64_t seed = 3) {
  auto m = std::make_unique<ReformerModel>(c, seed);
  uint64_t stream = 0;
  for (auto& p : m->parameters())
    if (p.name.find("layer_norm") != std::string::npos || p.name.find("bias") != std::string::npos)
      for (int64_t i = 0; i < p.param->numel(); ++i)
        (*p.param)[i] += 0.2f * (rng_uniform(seed, 1000 + stream, i) - 0.5f);
  return m;
}

std::vector<int32_t> random_ids(int64_t n, int64_t vocab, uint64_t seed) {
  std::vector<int32_t> ids(n);
  for (int64_t i = 0; i < n; ++i) ids[i] = static_cast<int32_t>(rng_uniform(seed, 7, i) * vocab) % vocab;
  return ids;
}

// Logits (n, V) of decoding ids from position 0: a one-token prefill, then one step per token.
std::vector<float> decode_all(ReformerModel& m, const std::vector<int32_t>& ids, uint64_t seed, int64_t prefill_n = 1) {
  const int64_t V = m.config().vocab_size, n = static_cast<int64_t>(ids.size());
  DecodeState st = m.make_decode_state(1, n, seed);
  std::vector<float> logits(static_cast<size_t>(n * V), 0.f);
  m.prefill(st, 0, ids.data(), prefill_n, logits.data() + (prefill_n - 1) * V);
  const int64_t seq = 0;
  for (int64_t t = prefill_n; t < n; ++t) m.decode_step(st, &seq, &ids[t], 1, logits.data() + t * V);
  return logits;
}

// Logits of the forward pass over positions 0..t padded to a length the model runs, at row t.
std::vector<float> forward_at(ReformerModel& m, const std::vector<int32_t>& ids, int64_t t, uint64_t seed,
                              int64_t multiple) {
  const int64_t n = t + 1, L = n <= multiple ? n : (n + multiple - 1) / multiple * multiple, V = m.config().vocab_size;
  std::vector<int32_t> padded(static_cast<size_t>(L), 0);
  std::copy(ids.begin(), ids.begin() + n, padded.begin());
  std::vector<uint8_t> mask(static_cast<size_t>(L), 0);
  std::fill(mask.begin(), mask.begin() + n, 1);
  Batch b;
  b.ids = padded.data();
  b.length = L;
  b.attention_mask = L > n ? mask.data() : nullptr;
  StepOptions opt;
  opt.training = false;
  opt.seed = seed;
  opt.step = 0;
  Tensor logits;
  m.forward_logits(logits, b, opt);
  return {logits.data() + t * V, logits.data() + (t + 1) * V};
}

}  // namespace

TEST(LshBucketIndex, MatchesAStableSortAfterEveryAppend) {
  for (int64_t buckets : {1, 3, 16, 64}) {
    LshBucketIndex index;
    const int64_t n = 300;
    index.reset(n, buckets, MemCategory::Workspace);
    std::vector<int32_t> bucket_of;
    for (int64_t t = 0; t < n; ++t) {
      const int32_t b = static_cast<int32_t>(rng_uniform(5, buckets, t) * buckets) % buckets;
      bucket_of.push_back(b);
      const int64_t rank = index.append(b);
      std::vector<int32_t> order(static_cast<size_t>(t + 1));
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](int32_t x, int32_t y) { return bucket_of[x] < bucket_of[y]; });
      ASSERT_EQ(order[rank], t) << "rank of the newest position, buckets " << buckets;
      ASSERT_EQ(index.newest_rank(), rank);
      // Any run of ranks, near the newest position, at the ends and in the middle.
      for (int64_t first : {int64_t{0}, rank, std::max<int64_t>(0, rank - 9), t / 2, std::max<int64_t>(0, t - 7)}) {
        const int64_t count = std::min<int64_t>(8, t + 1 - first);
        std::vector<int32_t> got(static_cast<size_t>(count));
        index.positions(first, count, got.data());
        ASSERT_TRUE(std::equal(got.begin(), got.end(), order.begin() + first)) << "t " << t << " first " << first;
      }
    }
    index.clear();
    EXPECT_EQ(index.size(), 0);
    EXPECT_EQ(index.append(0), 0);
  }
}

TEST(LshBucketIndex, ClearErrors) {
  LshBucketIndex index;
  index.reset(2, 4, MemCategory::Workspace);
  expect_error([&] { index.append(4); }, "bucket 4");
  index.append(1);
  index.append(1);
  expect_error([&] { index.append(1); }, "full");
  int32_t out[4];
  expect_error([&] { index.positions(1, 2, out); }, "outside");
}

// The fast cached step against the slow reference decoder, token by token from position 0, for
// every kind of layer and of LSH hashing. 40 tokens cross several chunk boundaries (chunk 8).
struct DecodeCase {
  std::vector<std::string> layers;
  int64_t num_hashes;
  std::vector<int64_t> buckets;
  int64_t chunks_before;
};

void PrintTo(const DecodeCase& p, std::ostream* os) {
  for (const std::string& l : p.layers) *os << l << ",";
  *os << " num_hashes " << p.num_hashes << ", buckets " << p.buckets.size() << " factors, chunks_before " << p.chunks_before;
}

class DecodeMatchesReference : public testing::TestWithParam<DecodeCase> {};

TEST_P(DecodeMatchesReference, EveryPosition) {
  const DecodeCase& p = GetParam();
  ReformerConfig c = decoder_config(p.layers);
  c.num_hashes = p.num_hashes;
  c.num_buckets = p.buckets;
  c.lsh_num_chunks_before = c.local_num_chunks_before = p.chunks_before;
  auto m = random_model(c);
  const std::vector<int32_t> ids = random_ids(40, c.vocab_size, 11);
  const std::vector<float> fast = decode_all(*m, ids, /*seed=*/21);
  const std::vector<double> ref = test::reference_decode(*m, ids, 21);
  std::vector<float> want(ref.begin(), ref.end());
  EXPECT_CLOSE(fast.data(), want.data(), static_cast<int64_t>(want.size()), test::kDecodeTol, "decoded logits");
}

INSTANTIATE_TEST_SUITE_P(
    Kinds, DecodeMatchesReference,
    testing::Values(DecodeCase{{"local", "local"}, 1, {4}, 1}, DecodeCase{{"local"}, 1, {4}, 2},
                    DecodeCase{{"full", "local"}, 1, {4}, 1}, DecodeCase{{"lsh"}, 1, {4}, 1},
                    DecodeCase{{"lsh"}, 4, {4}, 1}, DecodeCase{{"lsh", "lsh"}, 4, {2, 4}, 1},
                    DecodeCase{{"lsh"}, 2, {8}, 2}, DecodeCase{{"local", "lsh", "local", "lsh"}, 2, {4}, 1}));

// Local layers see only earlier positions, so a model of local layers decodes exactly what its
// full forward computes at every position.
TEST(Decode, LocalModelEqualsTheFullForwardAtEveryPosition) {
  auto m = random_model(decoder_config({"local", "local", "local"}));
  const std::vector<int32_t> ids = random_ids(64, 13, 4);
  const std::vector<float> fast = decode_all(*m, ids, 1);
  const std::vector<float> full = forward_at(*m, ids, 63, 1, 8);  // row 63 only; check every row below
  Batch b;
  b.ids = ids.data();
  b.length = 64;
  StepOptions opt;
  opt.training = false;
  Tensor logits;
  m->forward_logits(logits, b, opt);
  EXPECT_CLOSE(fast.data(), logits.data(), logits.numel(), test::kPathTol, "cached vs forward logits");
  EXPECT_CLOSE(fast.data() + 63 * 13, full.data(), 13, test::kPathTol, "last row");
}

// A single LSH layer: the cached step at t equals the forward over positions 0..t (padded, masked)
// with the same rotations, for one and several rounds.
TEST(Decode, SingleLshLayerEqualsTheForwardOverThePrefix) {
  for (int64_t nh : {1, 4}) {
    ReformerConfig c = decoder_config({"lsh"});
    c.num_hashes = nh;
    auto m = random_model(c);
    const std::vector<int32_t> ids = random_ids(48, 13, 8);
    const std::vector<float> fast = decode_all(*m, ids, 5);
    for (int64_t t = 0; t < 48; ++t) {
      const std::vector<float> want = forward_at(*m, ids, t, 5, 8);
      EXPECT_CLOSE(fast.data() + t * 13, want.data(), 13, test::kPathTol, "position " + std::to_string(t));
    }
  }
}

// Prefill fills the caches with what stepping would have put there when every layer before the
// last LSH layer is exact (local layers), so prefill-then-step equals stepping from position 0.
TEST(Decode, PrefillThenStepsEqualsSteppingThroughThePrompt) {
  for (const auto& layers : std::vector<std::vector<std::string>>{{"local", "local"}, {"local", "lsh"}, {"lsh"}}) {
    ReformerConfig c = decoder_config(layers);
    c.num_hashes = 2;
    auto m = random_model(c);
    const std::vector<int32_t> ids = random_ids(50, 13, 9);
    const std::vector<float> stepped = decode_all(*m, ids, 2);
    for (int64_t n : {1, 5, 8, 21, 32}) {
      const std::vector<float> filled = decode_all(*m, ids, 2, n);
      const int64_t from = (n - 1) * 13;
      EXPECT_CLOSE(filled.data() + from, stepped.data() + from, static_cast<int64_t>(stepped.size()) - from,
                   test::kPathTol, layers.back() + " model, prefill of " + std::to_string(n));
    }
  }
}

// Sequences of a batch are independent: decoding two prompts together gives each the logits it
// gets alone.
TEST(Decode, BatchRowsAreIndependent) {
  auto m = random_model(decoder_config({"local", "lsh"}));
  const std::vector<int32_t> a = random_ids(30, 13, 1), b = random_ids(30, 13, 2);
  const std::vector<float> alone_a = decode_all(*m, a, 3, 12), alone_b = decode_all(*m, b, 3, 5);
  DecodeState st = m->make_decode_state(2, 30, 3);
  std::vector<float> la(30 * 13), lb(30 * 13), two(2 * 13);
  m->prefill(st, 0, a.data(), 12, la.data() + 11 * 13);
  m->prefill(st, 1, b.data(), 5, lb.data() + 4 * 13);
  const int64_t both[2] = {0, 1}, only_b = 1;
  for (int64_t t = 5; t < 30; ++t) {
    if (t < 12) {
      m->decode_step(st, &only_b, &b[t], 1, lb.data() + t * 13);
      continue;
    }
    const int32_t ids[2] = {a[t], b[t]};
    m->decode_step(st, both, ids, 2, two.data());
    std::copy_n(two.data(), 13, la.data() + t * 13);
    std::copy_n(two.data() + 13, 13, lb.data() + t * 13);
  }
  EXPECT_CLOSE(la.data() + 11 * 13, alone_a.data() + 11 * 13, 19 * 13, test::kPathTol, "sequence a");
  EXPECT_CLOSE(lb.data() + 4 * 13, alone_b.data() + 4 * 13, 26 * 13, test::kPathTol, "sequence b");
}

// The state's bytes are affine in the capacity with the slope docs/NUMERICS.md gives: per position,
// every LSH layer keeps H (2 d floats + num_hashes (prev, next) int32 pairs) and every full layer
// H * 2 d floats (+ an int32 position and a float score); local layers keep a fixed window.
// All of it is accounted under DecodeState, and decoding allocates nothing after the first step.
TEST(Decode, StateMemoryIsLinearInTheContextAndStepsAllocateNothing) {
  ReformerConfig c = decoder_config({"local", "lsh", "full", "lsh"}, 256);
  c.num_hashes = 3;
  auto m = random_model(c);
  const int64_t H = 2, d = 8, nh = 3;
  const int64_t slope = 2 * H * (2 * d * 4 + nh * 8) + H * (2 * d * 4 + 4 + 4);
  const int64_t live0 = mem_stats().live_of(MemCategory::DecodeState);
  int64_t bytes[3];
  for (int i = 0; i < 3; ++i) {
    DecodeState st = m->make_decode_state(1, 64 * (i + 1), 0);
    bytes[i] = st.bytes();
    EXPECT_EQ(mem_stats().live_of(MemCategory::DecodeState) - live0, st.bytes());
  }
  EXPECT_EQ(bytes[1] - bytes[0], 64 * slope);
  EXPECT_EQ(bytes[2] - bytes[1], 64 * slope);
  EXPECT_EQ(mem_stats().live_of(MemCategory::DecodeState), live0);

  DecodeState st = m->make_decode_state(1, 200, 0);
  const std::vector<int32_t> ids = random_ids(200, 13, 3);
  std::vector<float> logits(13);
  m->prefill(st, 0, ids.data(), 40, logits.data());
  const int64_t seq = 0;
  m->decode_step(st, &seq, &ids[40], 1, logits.data());
  const MemStats before = mem_stats();
  for (int64_t t = 41; t < 200; ++t) m->decode_step(st, &seq, &ids[t], 1, logits.data());
  const MemStats after = mem_stats();
  EXPECT_EQ(after.allocations, before.allocations) << "decoding a token allocated accounted memory";
  EXPECT_EQ(after.live_total, before.live_total);
  EXPECT_EQ(st.length(0), 200);
}

// A model whose positions (60) are not a multiple of its chunks (8): a 59-token prompt cannot be
// padded to 64, so prefill runs the 56 it can through the forward and steps through the rest.
TEST(Decode, PrefillNearTheEndOfThePositions) {
  ReformerConfig c = decoder_config({"local", "lsh"});
  c.axial_pos_embds = false;
  c.max_position_embeddings = 60;
  auto m = random_model(c);
  const std::vector<int32_t> ids = random_ids(60, 13, 6);
  const std::vector<float> want = decode_all(*m, ids, 4, 56);
  DecodeState st = m->make_decode_state(1, 60, 4);
  std::vector<float> got(13);
  m->prefill(st, 0, ids.data(), 59, got.data());
  EXPECT_EQ(st.length(0), 59);
  EXPECT_CLOSE(got.data(), want.data() + 58 * 13, 13, test::kPathTol, "logits at position 58");
}

TEST(Decode, ClearErrors) {
  auto m = random_model(decoder_config({"local", "lsh"}));
  DecodeState st = m->make_decode_state(2, 16, 0);
  std::vector<float> logits(2 * 13);
  const std::vector<int32_t> ids = random_ids(17, 13, 1);
  expect_error([&] { m->prefill(st, 0, ids.data(), 17, logits.data()); }, "17 tokens");
  expect_error([&] { m->prefill(st, 0, ids.data(), 0, logits.data()); }, "0 tokens");
  expect_error([&] { m->prefill(st, 2, ids.data(), 3, logits.data()); }, "sequence 2");
  const int32_t bad = 13;
  expect_error([&] { m->prefill(st, 0, &bad, 1, logits.data()); }, "token id 13");
  m->prefill(st, 0, ids.data(), 16, logits.data());
  const int64_t seq = 0, twice[2] = {1, 1};
  expect_error([&] { m->decode_step(st, &seq, ids.data(), 1, logits.data()); }, "whole context");
  expect_error([&] { m->decode_step(st, twice, ids.data(), 2, logits.data()); }, "listed twice");
  expect_error([&] { m->make_decode_state(1, 65, 0); }, "65 positions");
  ReformerModel other(decoder_config({"local"}));
  expect_error([&] { other.prefill(st, 0, ids.data(), 1, logits.data()); }, "another model");
  ReformerConfig enc = decoder_config({"local"});
  enc.is_decoder = false;
  ReformerModel encoder(enc);
  expect_error([&] { encoder.make_decode_state(); }, "is_decoder");
}
