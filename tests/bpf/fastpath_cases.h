// Helpers shared by the fast-path fixture tests (fastpath_*_test.cc, one binary): flows, the
// NSH a VNF sees, frames, scoped chains, running on one CPU.
#pragma once

#include <sched.h>

#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "common/cpu.h"
#include "fastpath_fixture.h"

namespace anychain::test {

inline Bytes frame(const Mac& dst, const Mac& src, uint16_t type, const Bytes& payload) {
  Bytes b = eth(dst, src, type);
  append(b, payload);
  return b;
}

inline int prog() { return FastPathEnv::dataplane().prog_fd(); }

struct Flow {
  std::string src, dst;
  L4 l4;
  Bytes ip(uint8_t ttl = 64) const {
    return src.find(':') != std::string::npos ? ipv6(src, dst, l4, ttl) : ipv4(src, dst, l4, ttl);
  }
  uint8_t np() const { return src.find(':') != std::string::npos ? AC_NSH_NP_IPV6 : AC_NSH_NP_IPV4; }
  uint16_t ethertype() const { return src.find(':') != std::string::npos ? ETH_P_IPV6 : ETH_P_IP; }
  uint32_t hash(bool sym = false) const { return flow_hash(src, dst, l4, sym); }
  friend void PrintTo(const Flow& f, std::ostream* os) { *os << f.src << " -> " << f.dst; }
};

inline const Flow kV4{"192.168.1.10", "203.0.113.10", {}};
inline const Flow kV6{"2001:db8:5::10", "2001:db8:99::10", {}};

inline Nsh nsh_for(const Flow& f, uint32_t spi, uint8_t si, uint8_t ttl) {
  Nsh n;
  n.spi = spi;
  n.si = si;
  n.ttl = ttl;
  n.next_proto = f.np();
  n.ctx[0] = f.hash();
  return n;
}

// What the local NSH-aware VNF (behind vnf0) receives for flow f.
inline Bytes nsh_at_vnf0(const Flow& f, uint32_t spi, uint8_t si, uint8_t ttl) {
  Bytes b = eth(kVnf0Peer, kVnf0Host, AC_ETH_P_NSH);
  append(b, nsh(nsh_for(f, spi, si, ttl)));
  append(b, f.ip());
  return b;
}

// An NSH frame arriving from the local NSH-aware VNF on vnf0.
inline Bytes nsh_frame(const Nsh& n, const Bytes& inner = kV4.ip()) {
  Bytes b = eth(kVnf0Host, kVnf0Peer, AC_ETH_P_NSH);
  append(b, nsh(n));
  append(b, inner);
  return b;
}

inline Bytes dst_mac(const RunResult& r) { return Bytes(r.out.begin(), r.out.begin() + 6); }
inline Bytes mac_bytes(const Mac& m) { return Bytes(m.begin(), m.end()); }

// A test's own rule set and path (SPI, SI 255) for the scope; the fixture's come back after.
// restore: what the path was in the fixture (nullopt: it did not exist).
struct ScopedChain {
  ScopedChain(std::vector<dp::PolicyRule> rules, uint32_t spi, uint8_t si, uint32_t service, bool last,
              std::optional<std::pair<uint32_t, bool>> restore = std::nullopt)
      : spi_(spi), si_(si), restore_(restore) {
    auto& d = FastPathEnv::dataplane();
    ok_ = d.set_policies(rules).has_value() && d.set_path(spi, si, service, last).has_value();
  }
  ~ScopedChain() {
    auto& d = FastPathEnv::dataplane();
    (void)d.set_policies(fixture_rules());
    if (restore_) (void)d.set_path(spi_, si_, restore_->first, restore_->second);
    else (void)d.del_path(spi_, si_);
  }
  bool ok_ = false;
  uint32_t spi_;
  uint8_t si_;
  std::optional<std::pair<uint32_t, bool>> restore_;
};

// One rule: everything to f's destination (a host prefix), optionally TCP/80 only, -> spi.
inline std::vector<dp::PolicyRule> rule_for(const Flow& f, uint32_t spi, bool tcp80 = false) {
  std::vector<dp::PolicyRule> r(1);
  r[0].dst = *dp::parse_prefix(f.dst + (f.np() == AC_NSH_NP_IPV6 ? "/128" : "/32"));
  r[0].spi = spi;
  if (tcp80) {
    r[0].proto = IPPROTO_TCP;
    r[0].dport_lo = r[0].dport_hi = 80;
  }
  return r;
}

// Stays on the CPU the test is running on.
class PinCpu : public OnCpu {
 public:
  PinCpu() : OnCpu(sched_getcpu()) {}
};

}  // namespace anychain::test
