#pragma once
// Parses the small option strings the training flags take, "kind" or "kind:key=value,key=value"
// (e.g. "rsqrt:constant=0.03125,warmup=2000", "adam:b2=0.999"). Whitespace is not allowed; values are
// numbers. Readers ask for each key they know with a default; finish() then rejects any key nobody
// asked for, listing the known ones, so a typo never silently falls back to a default.
#include <map>
#include <string>
#include <vector>

namespace reformer {

class OptionSpec {
 public:
  // what: how errors name the option, e.g. "learning-rate schedule".
  OptionSpec(const std::string& text, std::string what);

  const std::string& kind() const { return kind_; }
  const std::string& what() const { return what_; }
  const std::string& text() const { return text_; }
  bool has(const std::string& key) const { return values_.count(key) != 0; }
  double number(const std::string& key, double fallback);
  // 0/1, true/false.
  bool flag(const std::string& key, bool fallback);
  // Throws if the spec holds a key no number()/flag() call asked for.
  void finish() const;

 private:
  std::string text_, what_, kind_;
  std::map<std::string, std::string> values_;
  std::vector<std::string> known_;
};

}  // namespace reformer
