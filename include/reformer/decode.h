#pragma once
// DecodeState: the caller-owned state of incremental decoding (docs/NUMERICS.md "Incremental
// decoding"). It holds, for each of `batch` independent sequences, every layer's cache (local and
// full layers: their recent keys and values; LSH layers: every position's key, value and bucket
// per round), the LSH rotations of the run (fixed for the state's life, drawn from its seed), and
// the few rows of scratch a decoding step needs. All of it is allocated when the state is made,
// under MemCategory::DecodeState, so that decoding a token allocates nothing; its size is linear
// in the capacity (bytes()).
//
// Made by ReformerModel::make_decode_state() and used only with that model:
//   prefill(state, b, ids, n, logits)  the prompt through the chunked forward (fills sequence b)
//   decode_step(state, seqs, ids, k, logits)  one new token for each of k sequences
#include <cstdint>
#include <memory>
#include <vector>

namespace reformer {

class ModelImpl;

class DecodeState {
 public:
  ~DecodeState();
  DecodeState(DecodeState&&) noexcept;
  DecodeState& operator=(DecodeState&&) noexcept;

  int64_t batch() const;
  int64_t capacity() const;            // positions each sequence can hold
  int64_t length(int64_t seq) const;   // positions sequence `seq` holds (the next token's position)
  uint64_t seed() const;
  int64_t bytes() const;               // accounted bytes held (caches and scratch)
  void clear(int64_t seq);             // forget sequence `seq`, keep the memory

 private:
  friend class ModelImpl;  // src/model/model_impl.h
  struct Impl;
  explicit DecodeState(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace reformer
