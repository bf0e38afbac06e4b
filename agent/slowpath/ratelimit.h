// Rate limits of the ICMP errors the slow path sends, like the kernel's own (icmp_ratelimit and
// icmp_msgs_per_sec): a token bucket per destination and one for the node, so that a flood of
// oversized packets from one source neither floods it with errors nor starves other sources.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>

namespace anychain::slowpath {

struct IcmpLimits {
  double per_destination_per_s = 1.0;  // the kernel's icmp_ratelimit: one per second ...
  double per_destination_burst = 6;    // ... with a burst of 6 (XRLIM_BURST_FACTOR)
  double total_per_s = 1000;           // icmp_msgs_per_sec
  double total_burst = 50;             // icmp_msgs_burst
  size_t max_destinations = 4096;      // buckets kept; idle full ones are forgotten first
};

class IcmpLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  using Key = std::array<uint8_t, 17>;  // family byte + 16 address bytes

  explicit IcmpLimiter(IcmpLimits l = {}) : limits_(l), total_{l.total_burst, {}} {}
  // true: an error to this destination may be sent now (a token is taken from both buckets).
  bool allow(const Key& destination, Clock::time_point now);
  size_t destinations() const { return buckets_.size(); }

 private:
  struct Bucket {
    double tokens = 0;
    Clock::time_point last{};
  };
  static void refill(Bucket& b, double rate, double burst, Clock::time_point now);
  IcmpLimits limits_;
  Bucket total_;
  std::map<Key, Bucket> buckets_;
};

}  // namespace anychain::slowpath
