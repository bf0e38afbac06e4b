// The kernel's clock tick: flow cache entries carry jiffies (bpf_jiffies64), the timeouts the
// agent writes are converted to jiffies, and flow ages are read against /proc/timer_list.
#include <time.h>

#include <fstream>
#include <string>

#include "dataplane/dataplane.h"

namespace anychain::dataplane {

uint64_t tick_ns() {
  static const uint64_t tick = [] {
    timespec res{};
    if (clock_getres(CLOCK_MONOTONIC_COARSE, &res) != 0 || res.tv_sec != 0 || res.tv_nsec <= 0)
      return uint64_t{1'000'000};  // not expected on Linux; 1 ms = HZ 1000, the shortest tick
    return static_cast<uint64_t>(res.tv_nsec);
  }();
  return tick;
}

uint64_t ns_to_jiffies(uint64_t ns) { return ns / tick_ns() + (ns % tick_ns() != 0); }

Result<uint64_t> current_jiffies() {
  std::ifstream f("/proc/timer_list");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("jiffies: ", 0) == 0) return std::stoull(line.substr(9));
  return fail("cannot read jiffies from /proc/timer_list", ENOENT);
}


}  // namespace anychain::dataplane
