#pragma once
// Errors: every failure the user can cause is a reformer::Error whose message names the bad value
// and the fix. Internal invariants use REFORMER_CHECK too, so a broken invariant never goes silent.
#include <sstream>
#include <stdexcept>
#include <string>

namespace reformer {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream s;
  (s << ... << args);
  return s.str();
}
}  // namespace detail

template <typename... Args>
[[noreturn]] void fail(const Args&... args) {
  throw Error(detail::concat(args...));
}

}  // namespace reformer

// REFORMER_CHECK(cond, "message parts", value, ...): throws reformer::Error when cond is false.
#define REFORMER_CHECK(cond, ...)                          \
  do {                                                     \
    if (!(cond)) ::reformer::fail(__VA_ARGS__);            \
  } while (0)
