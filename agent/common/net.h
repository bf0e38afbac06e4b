// Network values every module speaks: MAC addresses, prefixes, XDP modes and the classifier
// rule. Plain values and their text forms, no system state: the config parser, the control
// protocol, the dataplane library and the CLI all use these and nothing else for them.
#pragma once

#include <netinet/in.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/error.h"

namespace anychain {

using Mac = std::array<uint8_t, 6>;
std::string mac_str(const Mac& m);                     // "02:00:00:00:00:01"
std::optional<Mac> parse_mac(std::string_view s);      // exactly that form

enum class XdpMode { Native, Generic, Auto };
std::string_view to_string(XdpMode m);                 // "native", "generic", "auto"
Result<XdpMode> parse_xdp_mode(std::string_view s);    // also libxdp's names "drv", "skb"

struct Prefix {
  int family = AF_INET;           // AF_INET or AF_INET6
  in6_addr addr{};                // IPv4 in the first 4 bytes
  uint8_t len = 0;
};
// "10.0.0.0/8", "10.0.0.1" (/32), "2001:db8::/32", "any" or "any4" (0.0.0.0/0), "any6" (::/0)
Result<Prefix> parse_prefix(std::string_view text);

// One classifier rule (the dataplane encodes it into the fast path's ac_policy).
struct PolicyRule {
  Prefix src;                     // family decides the rule's family
  Prefix dst;
  uint8_t proto = 0;              // 0 = any
  uint16_t sport_lo = 0, sport_hi = 65535;
  uint16_t dport_lo = 0, dport_hi = 65535;
  uint32_t spi = 0;
  bool symmetric = false;
  bool md2 = false;
  uint8_t ftc_f = 0;              // an FTC chain (docs/ftc.md 2.1) with this f, 1..4; forces MD2
};

}  // namespace anychain
