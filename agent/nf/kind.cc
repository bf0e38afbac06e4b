#include "nf/kind.h"

#include <algorithm>
#include <string>

#include "anychain/ftc.h"
#include "anychain/nf.h"

#include "nf_firewall.skel.h"
#include "nf_ids.skel.h"
#include "nf_monitor.skel.h"
#include "nf_nat.skel.h"
#include "nf_replica.skel.h"
#include "nf_ratelimit.skel.h"

namespace anychain::nf {
namespace {

constexpr KindInfo kKinds[] = {
    {Kind::Nat, "nat", "nf_nat", true, 300, "NAPT44: one external address, a port pool"},
    {Kind::Monitor, "monitor", "nf_monitor", true, 60, "per-flow and total packet and byte counters"},
    {Kind::Firewall, "firewall", "nf_firewall", false, 0, "stateless rules: first match passes or drops"},
    {Kind::Ids, "ids", "nf_ids", false, 0, "port-scan detector: distinct ports per source over every instance (shared state)"},
    {Kind::Ratelimit, "ratelimit", "nf_ratelimit", false, 0, "distributed rate limiter: one windowed limit over every instance (shared state)"},
    {Kind::Replica, "replica", "nf_replica_hop", false, 0, "FTC replica-only hop for chains shorter than f + 1 (no function)"},
};

template <class F>
std::span<const uint8_t> bytes_of(F elf) {
  size_t n = 0;
  const void* p = elf(&n);
  return {static_cast<const uint8_t*>(p), n};
}

}  // namespace

std::span<const KindInfo> kinds() { return kKinds; }

const KindInfo& info(Kind k) {
  for (const auto& i : kKinds)
    if (i.kind == k) return i;
  return kKinds[0];
}

std::string_view to_string(Kind k) { return info(k).name; }

uint32_t ftc_log_tlv_max(Kind k) {
  auto tlv = [](uint32_t klen, uint32_t vlen) { return 4 + ac_ftc_pad4(AC_FTC_LOG_HDR + AC_FTC_WRITE_HDR + klen + vlen); };
  switch (k) {
    case Kind::Monitor: return tlv(std::max(AC_NF_KEY4_LEN, AC_NF_KEY6_LEN), AC_NF_MON_VAL_LEN);
    case Kind::Nat: return tlv(AC_NF_KEY4_LEN, AC_NF_NAT_VAL_LEN);
    case Kind::Firewall:
    case Kind::Ids:
    case Kind::Ratelimit:
    case Kind::Replica: break;
  }
  return 0;
}

std::optional<Kind> parse_kind(std::string_view s) {
  for (const auto& i : kKinds)
    if (i.name == s) return i.kind;
  return std::nullopt;
}

std::string kind_names(bool all) {
  std::string out;
  for (const auto& i : kKinds)
    if (all || !i.program.empty()) out += (out.empty() ? "" : ", ") + std::string(i.name);
  return out;
}

std::span<const uint8_t> object_bytes(Kind k) {
  switch (k) {
    case Kind::Nat: return bytes_of(nf_nat_bpf__elf_bytes);
    case Kind::Monitor: return bytes_of(nf_monitor_bpf__elf_bytes);
    case Kind::Firewall: return bytes_of(nf_firewall_bpf__elf_bytes);
    case Kind::Replica: return bytes_of(nf_replica_bpf__elf_bytes);
    case Kind::Ids: return bytes_of(nf_ids_bpf__elf_bytes);
    case Kind::Ratelimit: return bytes_of(nf_ratelimit_bpf__elf_bytes);
  }
  return {};
}

}  // namespace anychain::nf
