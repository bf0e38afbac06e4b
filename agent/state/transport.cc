#include "state/transport.h"

#include <arpa/inet.h>
#include <time.h>

namespace anychain::state {

std::string Endpoint::str() const {
  char buf[INET_ADDRSTRLEN] = "?";
  in_addr a{.s_addr = addr};
  inet_ntop(AF_INET, &a, buf, sizeof buf);
  return std::string(buf) + ":" + std::to_string(port);
}

Result<Endpoint> parse_endpoint(const std::string& ip, uint16_t port) {
  in_addr a{};
  if (inet_pton(AF_INET, ip.c_str(), &a) != 1) return fail("'" + ip + "' is not an IPv4 address");
  if (port == 0) return fail("port 0 for " + ip);
  return Endpoint{a.s_addr, port};
}

namespace {
uint64_t now_us(clockid_t c) {
  timespec ts{};
  clock_gettime(c, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000 + static_cast<uint64_t>(ts.tv_nsec) / 1000;
}
}  // namespace

uint64_t SystemClock::mono_us() const { return now_us(CLOCK_MONOTONIC); }
uint64_t SystemClock::wall_us() const { return now_us(CLOCK_REALTIME); }

}  // namespace anychain::state
