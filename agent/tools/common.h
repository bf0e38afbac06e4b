// Small helpers shared by the lab tools: clocks, an owned fd, stop signals, a JSON writer and
// atomic file replacement.
#pragma once

#include <cstdint>
#include <expected>
#include <string>
#include <string_view>
#include <vector>

namespace anychain::tools {

std::uint64_t mono_ns();  // CLOCK_MONOTONIC
std::uint64_t real_ns();  // CLOCK_REALTIME

// Owns a file descriptor; move-only.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept;
  ~Fd();
  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }

 private:
  int fd_ = -1;
};

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
