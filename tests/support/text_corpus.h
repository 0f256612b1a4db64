#pragma once
// Dictionary-like text for tokenizer tests: a few thousand made-up words of two to four syllables,
// with punctuation, runs of spaces, tabs, blank lines, leading spaces and a few non-ASCII (UTF-8)
// words. No digits, so generated text can be told from printed token ids.
#include <cstdint>
#include <string>

namespace reformer::test {

inline std::string text_corpus(size_t bytes, uint64_t seed) {
  const char* onsets[] = {"b", "c", "d", "f", "g", "h", "l", "m", "n", "p", "r", "s", "t", "v", "w", "st", "th", "ch"};
  const char* vowels[] = {"a", "e", "i", "o", "u", "ea", "ou"};
  const char* specials[] = {"café", "naïve", "über", "(Zoöl.)", "[Webster]", "defn:", "n.", "v. t."};
  uint64_t s = seed;
  auto next = [&](uint64_t n) {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (s >> 33) % n;
  };
  std::string text;
  while (text.size() < bytes) {
    const uint64_t k = next(16);
    text += k == 0 ? "\n   " : k == 1 ? "\n\n" : k == 2 ? "  " : k == 3 ? "\t" : k == 4 ? ". " : k == 5 ? ", " : " ";
    if (next(12) == 0) {
      text += specials[next(std::size(specials))];
      continue;
    }
    // Words from a fixed lexicon of ~3000 (the seed of a word is drawn, so words repeat).
    uint64_t w = next(3000) + 1;
    const int syllables = 2 + static_cast<int>(w % 3);
    for (int i = 0; i < syllables; ++i) {
      w = w * 2862933555777941757ULL + 3037000493ULL;
      text += onsets[(w >> 20) % std::size(onsets)];
      text += vowels[(w >> 40) % std::size(vowels)];
    }
  }
  return text;
}

}  // namespace reformer::test
