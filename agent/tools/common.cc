#include <iostream>

#include "tools/common.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace anychain::tools {

namespace {
volatile sig_atomic_t g_stop = 0;
void on_stop(int) { g_stop = 1; }

std::uint64_t clock_ns(clockid_t id) {
  timespec ts{};
  clock_gettime(id, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL +
         static_cast<std::uint64_t>(ts.tv_nsec);
}
}  // namespace

std::uint64_t mono_ns() { return clock_ns(CLOCK_MONOTONIC); }
std::uint64_t real_ns() { return clock_ns(CLOCK_REALTIME); }


std::string errno_text(std::string_view what) {
  const int e = errno;
  return std::string(what) + ": " + std::strerror(e);
}

void install_stop_signals() {
  struct sigaction sa {};
  sa.sa_handler = on_stop;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
}

bool stop_requested() { return g_stop != 0; }

std::expected<void, std::string> write_file_atomic(const std::string& path,
                                                   std::string_view content) {
  const std::string tmp = path + ".tmp";
  Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) return std::unexpected(errno_text("open " + tmp));
  std::size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::write(fd.get(), content.data() + done, content.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::unexpected(errno_text("write " + tmp));
    }
    done += static_cast<std::size_t>(n);
  }
  if (::close(fd.release()) != 0) return std::unexpected(errno_text("close " + tmp));
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return std::unexpected(errno_text("rename " + tmp + " -> " + path));
  }
  return {};
}

}  // namespace anychain::tools
