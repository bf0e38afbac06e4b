// Small helpers shared by the lab tools: clocks, an owned fd, stop signals, a JSON writer and
// atomic file replacement.
#pragma once

#include <boost/program_options.hpp>
#include <cstdint>
#include <optional>
#include <expected>
#include <string>
#include <string_view>
#include <vector>

#include "common/options.h"
#include "common/unique_fd.h"

namespace anychain::tools {

using anychain::parse_command_line;

std::uint64_t mono_ns();  // CLOCK_MONOTONIC
std::uint64_t real_ns();  // CLOCK_REALTIME

using Fd = anychain::UniqueFd;

// "what: strerror(errno)" for the current errno.
std::string errno_text(std::string_view what);

// SIGTERM/SIGINT set a flag (no SA_RESTART, so blocking calls return EINTR).
void install_stop_signals();
bool stop_requested();

// Minimal streaming JSON writer: commas and string escaping are handled; nesting is the
// caller's job (begin/end must pair).
class JsonWriter {
 public:
  JsonWriter& begin_object();
  JsonWriter& end_object();
  JsonWriter& begin_array();
  JsonWriter& end_array();
  JsonWriter& key(std::string_view k);
  JsonWriter& value(std::string_view v);
  JsonWriter& value(const char* v) { return value(std::string_view(v)); }
  JsonWriter& value(std::uint64_t v);
  JsonWriter& value(std::int64_t v);
  JsonWriter& value(std::uint32_t v) { return value(std::uint64_t{v}); }
  JsonWriter& value(int v) { return value(std::int64_t{v}); }
  JsonWriter& value(double v);
  JsonWriter& value(bool v);
  template <typename T>
  JsonWriter& field(std::string_view k, T v) {
    key(k);
    return value(v);
  }
  const std::string& str() const { return out_; }

 private:
  void before_value();
  std::string out_;
  std::vector<bool> first_;  // per open container: no element written yet
  bool after_key_ = false;
};

// Writes `content` to `path` through a temporary file and rename(2), so readers never see a
// half-written file.
std::expected<void, std::string> write_file_atomic(const std::string& path,
                                                   std::string_view content);

}  // namespace anychain::tools
