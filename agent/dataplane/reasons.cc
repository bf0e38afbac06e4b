#include "dataplane/reasons.h"

#include <array>

namespace anychain::dataplane {
namespace {

constexpr StatReason V(uint32_t s, const char* n) { return {s, n, StatKind::Verdict}; }
constexpr StatReason D(uint32_t s, const char* n) { return {s, n, StatKind::Drop}; }
constexpr StatReason N(uint32_t s, const char* n) { return {s, n, StatKind::Note}; }

// The names are the operator's interface (stats, JSON, docs): never rename one.
constexpr std::array kReasons = {
    V(AC_PASS_NOT_OURS, "pass_not_ours"),
    V(AC_PASS_NO_CONFIG, "pass_no_config"),
    V(AC_FWD_LOCAL_NSH, "fwd_local_nsh"),
    V(AC_FWD_LOCAL_PROXY, "fwd_local_proxy"),
    V(AC_FWD_REMOTE, "fwd_remote"),
    V(AC_FWD_LAST_HOP, "fwd_last_hop"),
    V(AC_PASS_NO_NEIGH, "pass_no_neigh"),
    V(AC_PASS_LAST_HOP, "pass_last_hop"),
    V(AC_PASS_PROXY_MISS, "pass_proxy_miss"),
    V(AC_PASS_NO_IFACE, "pass_no_iface"),
    V(AC_PASS_OTHER_HOST, "pass_other_host"),
    V(AC_PASS_MULTICAST, "pass_multicast"),
    V(AC_PASS_GPE_FRAGMENT, "pass_gpe_fragment"),
    V(AC_FWD_SLOW_PATH, "fwd_slow_path"),
    V(AC_FWD_STATE_XSK, "fwd_state_xsk"),
    V(AC_PASS_STATE_NO_XSK, "pass_state_no_xsk"),
    V(AC_FWD_FTC_BUFFER, "fwd_ftc_buffer"),
    D(AC_DROP_TRUNCATED, "drop_truncated"),
    D(AC_DROP_NSH_TRUNCATED, "drop_nsh_truncated"),
    D(AC_DROP_NSH_VERSION, "drop_nsh_version"),
    D(AC_DROP_NSH_MD_TYPE, "drop_nsh_md_type"),
    D(AC_DROP_NSH_TLV, "drop_nsh_tlv"),
    D(AC_DROP_NSH_NEXT_PROTO, "drop_nsh_next_proto"),
    D(AC_DROP_TTL, "drop_ttl"),
    D(AC_DROP_SI_ZERO, "drop_si_zero"),
    D(AC_DROP_NO_PATH, "drop_no_path"),
    D(AC_DROP_NO_INSTANCE, "drop_no_instance"),
    D(AC_DROP_GPE_NEXT_PROTO, "drop_gpe_next_proto"),
    D(AC_DROP_GPE_FLAGS, "drop_gpe_flags"),
    D(AC_DROP_NO_ROOM, "drop_no_room"),
    D(AC_DROP_FIB, "drop_fib"),
    D(AC_DROP_TOO_BIG, "drop_too_big"),
    D(AC_DROP_OAM, "drop_oam"),
    D(AC_DROP_INSTANCE_GONE, "drop_instance_gone"),
    D(AC_DROP_FTC_RECOVERING, "drop_ftc_recovering"),
    D(AC_DROP_FTC_NO_BUFFER, "drop_ftc_no_buffer"),
    D(AC_DROP_FTC_PROXY, "drop_ftc_proxy"),
    N(AC_NOTE_CLASSIFIED, "classified"),
    N(AC_NOTE_GPE_DECAP, "gpe_decap"),
    N(AC_NOTE_PROXY_RETURN, "proxy_return"),
    N(AC_NOTE_CACHE_HIT, "cache_hit"),
    N(AC_NOTE_CACHE_MISS, "cache_miss"),
    N(AC_NOTE_CACHE_STALE, "cache_stale"),
    N(AC_NOTE_FROM_SLOW_PATH, "from_slow_path"),
    N(AC_NOTE_AFFINITY_HIT, "affinity_hit"),
    N(AC_NOTE_AFFINITY_NEW, "affinity_new"),
    N(AC_NOTE_AFFINITY_LOST_RACE, "affinity_lost_race"),
    N(AC_NOTE_FTC_COMMITTED, "ftc_released_committed"),
    N(AC_NOTE_FTC_PENDING_NO_ROOM, "ftc_pending_no_room"),
};

// one name per enumerator, in slot order, each in its kind's range
constexpr bool complete() {
  uint32_t expect[] = {AC_STAT_VERDICT_BASE, AC_STAT_DROP_BASE, AC_STAT_NOTE_BASE};
  const uint32_t end[] = {AC_VERDICT_END, AC_DROP_END, AC_NOTE_END};
  for (const auto& r : kReasons) {
    auto k = static_cast<int>(r.kind);
    if (r.slot != expect[k]++) return false;
  }
  for (int k = 0; k < 3; ++k)
    if (expect[k] != end[k]) return false;
  return true;
}
static_assert(complete(), "every ac_stats reason needs exactly one name, in enum order");

}  // namespace

std::span<const StatReason> stat_reasons() { return kReasons; }

const char* reason_name(uint32_t slot) {
  for (const auto& r : kReasons)
    if (r.slot == slot) return r.name;
  return "unknown";
}

const char* kind_name(StatKind k) {
  switch (k) {
    case StatKind::Verdict: return "verdict";
    case StatKind::Drop: return "drop";
    case StatKind::Note: return "note";
  }
  return "?";
}

}  // namespace anychain::dataplane
