#pragma once
// EXPECT that f() throws reformer::Error whose message mentions `mention`.
#include <gtest/gtest.h>

#include <string>

#include "reformer/error.h"

namespace reformer::test {

template <typename F>
void expect_error(F&& f, const std::string& mention) {
  try {
    f();
    ADD_FAILURE() << "expected reformer::Error mentioning '" << mention << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(mention), std::string::npos) << "message: " << e.what();
  }
}

}  // namespace reformer::test
