// What the config parser's tests (config_test.cc, config_nf_test.cc) share.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "config/config.h"

namespace anychain::config::test {

// (line, message) of each diagnostic, for compact assertions
inline std::vector<std::pair<int, std::string>> lines(const Diagnostics& d) {
  std::vector<std::pair<int, std::string>> out;
  for (const auto& e : d) out.emplace_back(e.mark.line, e.message);
  return out;
}

// The diagnostics of a file that must not parse
inline Diagnostics errors_of(const std::string& yaml) {
  auto c = parse(yaml, "t.yaml");
  EXPECT_FALSE(c.has_value()) << "expected errors for:\n" << yaml;
  return c ? Diagnostics{} : c.error();
}

}  // namespace anychain::config::test
