#include "train/option_spec.h"

#include <cerrno>
#include <cstdlib>
#include <sstream>

#include "reformer/error.h"

namespace reformer {

OptionSpec::OptionSpec(const std::string& text, std::string what) : text_(text), what_(std::move(what)) {
  const size_t colon = text.find(':');
  kind_ = text.substr(0, colon);
  REFORMER_CHECK(!kind_.empty(), "empty ", what_, " '", text, "': expected 'kind' or 'kind:key=value,...'");
  if (colon == std::string::npos) return;
  std::istringstream items(text.substr(colon + 1));
  std::string item;
  while (std::getline(items, item, ',')) {
    const size_t eq = item.find('=');
    REFORMER_CHECK(eq != std::string::npos && eq > 0 && eq + 1 < item.size(), "bad item '", item, "' in ",
                   what_, " '", text, "': expected key=value");
    const std::string key = item.substr(0, eq);
    REFORMER_CHECK(!has(key), "key '", key, "' given twice in ", what_, " '", text, "'");
    values_[key] = item.substr(eq + 1);
  }
}

double OptionSpec::number(const std::string& key, double fallback) {
  known_.push_back(key);
  const auto it = values_.find(key);
  if (it == values_.end()) return fallback;
  const char* s = it->second.c_str();
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(s, &end);
  REFORMER_CHECK(end != s && *end == '\0' && errno == 0, "value '", it->second, "' of ", key, " in ", what_,
                 " '", text_, "' is not a number");
  return v;
}

bool OptionSpec::flag(const std::string& key, bool fallback) {
  known_.push_back(key);
  const auto it = values_.find(key);
  if (it == values_.end()) return fallback;
  const std::string& v = it->second;
  if (v == "1" || v == "true") return true;
  if (v == "0" || v == "false") return false;
  fail("value '", v, "' of ", key, " in ", what_, " '", text_, "' must be 0, 1, true or false");
}

void OptionSpec::finish() const {
  for (const auto& [key, value] : values_) {
    bool known = false;
    for (const std::string& k : known_) known = known || k == key;
    if (known) continue;
    std::string list;
    for (const std::string& k : known_) list += (list.empty() ? "" : ", ") + k;
    fail("unknown key '", key, "' in ", what_, " '", text_, "'; ", kind_, " takes: ",
         list.empty() ? "no keys" : list);
  }
}

}  // namespace reformer
