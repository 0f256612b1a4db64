#pragma once
// Byte-level models, as enwik8 (tensor2tensor's byte encoder): token id = byte + 2, id 0 = padding,
// id 1 (t2t's EOS) is never produced; the vocabulary is 258.
#include <cstdint>

namespace reformer {

inline constexpr int32_t kByteVocab = 258;
inline constexpr int32_t kBytePadId = 0;
inline constexpr int32_t kByteIdOffset = 2;
// [MASK] of masked-language-model training on bytes: id 1, which byte data never produces.
inline constexpr int32_t kByteMaskId = 1;

}  // namespace reformer
