#include "nf/state.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "anychain/crdt.h"
#include "anychain/nf.h"
#include "nf/params.h"

namespace anychain::nf {

using json = nlohmann::json;

std::string_view nf_counter_name(uint32_t slot) {
  switch (slot) {
    case AC_NF_RX: return "rx";
    case AC_NF_TX: return "tx";
    case AC_NF_DROP_BAD_NSH: return "drop_bad_nsh";
    case AC_NF_DROP_BAD_INNER: return "drop_bad_inner";
    case AC_NF_DROP_FILTERED: return "drop_filtered";
    case AC_NF_DROP_FTC: return "drop_ftc";
    case AC_NF_HOLD: return "hold";
    case AC_NF_NOT_IP: return "not_ip";
    case AC_NF_PROPAGATING: return "propagating";
    case AC_NF_FW_PASSED: return "fw_passed";
    case AC_NF_FW_DROPPED: return "fw_dropped";
    case AC_NF_MON_COUNTED: return "mon_counted";
    case AC_NF_MON_NEW_FLOW: return "mon_new_flow";
    case AC_NF_MON_UNCOUNTED: return "mon_uncounted";
    case AC_NF_NAT_NEW: return "nat_new";
    case AC_NF_NAT_OUT: return "nat_out";
    case AC_NF_NAT_IN: return "nat_in";
    case AC_NF_NAT_NO_PORT: return "nat_no_port";
    case AC_NF_NAT_REV_MISS: return "nat_rev_miss";
    case AC_NF_NAT_UNSUPPORTED: return "nat_unsupported";
    case AC_NF_NAT_NOT_IPV4: return "nat_not_ipv4";
    case AC_NF_NAT_STORE_FULL: return "nat_store_full";
    case AC_NF_NAT_PORT_RACE: return "nat_port_race";
    case AC_NF_NAT_IN_SHARED: return "nat_in_shared";
    case AC_NF_NAT_SHARED_FULL: return "nat_shared_full";
    case AC_NF_NAT_OUT_SHARED: return "nat_out_shared";
    case AC_NF_IDS_NEW_PAIR: return "ids_new_pair";
    case AC_NF_IDS_SCAN_FLAGGED: return "ids_scan_flagged";
    case AC_NF_IDS_SCAN_PACKETS: return "ids_scan_packets";
    case AC_NF_IDS_NO_WINDOW: return "ids_no_window";
    case AC_NF_IDS_FLAG_FULL: return "ids_flag_full";
    case AC_NF_IDS_NO_PORTS: return "ids_no_ports";
    case AC_NF_IDS_FULL_ESTIMATE: return "ids_full_estimate";
    case AC_NF_RL_PASSED: return "rl_passed";
    case AC_NF_RL_DROPPED: return "rl_dropped";
    case AC_NF_RL_NO_WINDOW: return "rl_no_window";
    default: return "";
  }
}

std::string_view proc_counter_name(uint32_t slot) {
  switch (slot) {
    case AC_NF_PS_HOLD_QUEUED: return "hold_queued";
    case AC_NF_PS_HOLD_RELEASED: return "hold_released";
    case AC_NF_PS_HOLD_FULL: return "hold_full";
    case AC_NF_PS_HOLD_EXPIRED: return "hold_expired";
    case AC_NF_PS_HOLD_RERUN_FAILED: return "hold_rerun_failed";
    case AC_NF_PS_HOLD_BAD: return "hold_bad";
    case AC_NF_PS_HOLD_RING_DROPPED: return "hold_ring_dropped";
    case AC_NF_PS_HOLD_DEPTH: return "hold_depth";
    case AC_NF_PS_HOLD_PARTITIONS: return "hold_partitions";
    case AC_NF_PS_OVERFLOW_SENT: return "overflow_sent";
    case AC_NF_PS_OVERFLOW_FAILED: return "overflow_failed";
    case AC_NF_PS_HEAD_RECLAIMED: return "head_reclaimed";
    case AC_NF_PS_REPLICA_RECLAIMED: return "replica_reclaimed";
    case AC_NF_PS_CONTROL_LOADS: return "control_loads";
    case AC_NF_PS_CONTROL_ERRORS: return "control_errors";
    case AC_NF_PS_RESYNC_ASKED: return "resync_asked";
    case AC_NF_PS_RESYNC_LIMITED: return "resync_limited";
    case AC_NF_PS_RESYNC_UNSENT: return "resync_unsent";
    case AC_NF_PS_NAT_PORTS_HELD: return "nat_ports_held";
    default: return "";
  }
}

std::string_view ftc_counter_name(uint32_t slot) {
  switch (slot) {
    case AC_FTC_ST_APPLIED: return "ftc_applied";
    case AC_FTC_ST_SATISFIED: return "ftc_satisfied";
    case AC_FTC_ST_GAP: return "ftc_gap";
    case AC_FTC_ST_STALE: return "ftc_stale";
    case AC_FTC_ST_UNKNOWN_MBOX: return "ftc_unknown_mbox";
    case AC_FTC_ST_OWN_LOG: return "ftc_own_log";
    case AC_FTC_ST_BAD_TLV: return "ftc_bad_tlv";
    case AC_FTC_ST_TAIL_STRIPPED: return "ftc_tail_stripped";
    case AC_FTC_ST_COMMITS: return "ftc_commits";
    case AC_FTC_ST_LOG_APPENDED: return "ftc_log_appended";
    case AC_FTC_ST_NOOP_APPENDED: return "ftc_noop_appended";
    case AC_FTC_ST_STUB: return "ftc_stub";
    case AC_FTC_ST_OVERFLOW: return "ftc_overflow";
    case AC_FTC_ST_STORE_FULL: return "ftc_store_full";
    case AC_FTC_ST_REPLICA_FULL: return "ftc_replica_full";
    case AC_FTC_ST_WRITE_REFUSED: return "ftc_write_refused";
    case AC_FTC_ST_NO_CTRL: return "ftc_no_ctrl";
    case AC_FTC_ST_PROPAGATING: return "ftc_propagating";
    case AC_FTC_ST_FILTERED: return "ftc_filtered";
    case AC_FTC_ST_HOLD_UNAVAILABLE: return "ftc_hold_unavailable";
    case AC_FTC_ST_RING_FULL: return "ftc_ring_full";
    default: return "";
  }
}

std::string_view crdt_counter_name(uint32_t slot) {
  switch (slot) {
    case AC_CRDT_ST_LOGGED: return "logged";
    case AC_CRDT_ST_LOST: return "lost";
    case AC_CRDT_ST_INSERT_RACE: return "insert_race";
    case AC_CRDT_ST_FULL: return "full";
    case AC_CRDT_ST_MERGED: return "merged";
    case AC_CRDT_ST_MERGE_NOOP: return "merge_noop";
    case AC_CRDT_ST_MERGE_BAD: return "merge_refused";
    case AC_CRDT_ST_MERGE_STALE: return "merge_stale";
    default: return "";
  }
}

namespace {

std::string ip4(const void* p) {
  char b[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, p, b, sizeof b);
  return b;
}
std::string ip6(const void* p) {
  char b[INET6_ADDRSTRLEN];
  inet_ntop(AF_INET6, p, b, sizeof b);
  return b;
}
uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint64_t be64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = v << 8 | p[i];
  return v;
}
std::string hex(const uint8_t* p, size_t n) {
  std::string s;
  for (size_t i = 0; i < n; ++i) s += fmt::format("{:02x}", p[i]);
  return s;
}

json partition(const ac_st_pkey& k) {
  return {{"spi", k.spi_si >> 8}, {"si", k.spi_si & 0xff}, {"hash", fmt::format("{:#010x}", k.hash)}};
}

// The flow a 13-byte key names: src, dst, proto, sport, dport
json flow4(const uint8_t* k) {
  return {{"proto", proto_text(k[8])}, {"src", ip4(k)}, {"sport", be16(k + 9)}, {"dst", ip4(k + 4)},
          {"dport", be16(k + 11)}};
}

Result<json> counters(const InstanceMaps& m, const char* map, std::string_view (*name)(uint32_t)) {
  json out = json::object();
  if (!m.has(map)) return out;
  Result<std::vector<uint64_t>> c = std::vector<uint64_t>{};
  if (auto i = m.info(map); i && i->type == BPF_MAP_TYPE_ARRAY) {
    // a plain array of __u64 (the process's own counters)
    for (uint32_t k = 0; k < i->max_entries; ++k) {
      uint64_t v = 0;
      if (bpf_map_lookup_elem(m.fd(map), &k, &v)) return fail_errno(fmt::format("read {}", map));
      c->push_back(v);
    }
  } else {
    c = m.counters(map);
  }
  if (!c) return unexpected(c.error());
  for (uint32_t i = 0; i < c->size(); ++i)
    if (auto n = name(i); !n.empty()) out[std::string(n)] = (*c)[i];
  return out;
}

Result<json> nat_state(const InstanceMaps& m, const std::vector<std::pair<ac_st_pkey, ac_st_rec>>& recs) {
  json j;
  ac_nf_nat_cfg cfg{};
  uint32_t k0 = 0;
  if (bpf_map_lookup_elem(m.fd("nf_nat_cfg"), &k0, &cfg)) return fail_errno("read nf_nat_cfg");
  j["address"] = ip4(&cfg.address);
  j["ports"] = fmt::format("{}-{}", cfg.port_lo, cfg.port_hi);
  uint64_t used = 0;
  for (uint32_t w = cfg.port_lo / 64; w <= cfg.port_hi / 64u && w < AC_NF_NAT_POOL_WORDS; ++w) {
    uint64_t v = 0;
    if (bpf_map_lookup_elem(m.fd("nf_nat_ports"), &w, &v)) return fail_errno("read nf_nat_ports");
    for (uint32_t b = 0; b < 64; ++b) {
      uint32_t port = w * 64 + b;
      if (port >= cfg.port_lo && port <= cfg.port_hi && (v >> b & 1)) ++used;
    }
  }
  j["pool"] = {{"size", cfg.port_hi - cfg.port_lo + 1}, {"used", used}};
  json maps = json::array();
  for (const auto& [pk, rec] : recs)
    for (const auto& sl : rec.slot) {
      if (!(sl.flags & AC_ST_USED) || sl.table != AC_NF_TABLE_FLOW || sl.klen != AC_NF_KEY4_LEN) continue;
      json e = flow4(sl.key);
      e["external"] = ip4(sl.val);
      e["external_port"] = be16(sl.val + 4);
      // the reply path: the reverse entry the NAT translates replies with
      ac_nf_nat_rkey rk{};
      std::memcpy(&rk.remote, sl.key + 4, 4);
      std::memcpy(&rk.remote_port, sl.key + 11, 2);
      std::memcpy(&rk.port, sl.val + 4, 2);
      rk.proto = sl.key[8];
      ac_nf_nat_rval rv{};
      e["reply_path"] = bpf_map_lookup_elem(m.fd("nf_nat_rev"), &rk, &rv) == 0;
      e["partition"] = partition(pk);
      maps.push_back(e);
    }
  j["mappings"] = maps;
  // the shared table (docs/state.md 4.3): every instance's mappings as this replica merged them
  json shared = json::array();
  if (m.has("nat_shared")) {
    auto all = m.dump("nat_shared");
    if (!all) return unexpected(all.error());
    for (const auto& [k, v] : *all) {
      if (k.size() != sizeof(ac_nf_nat_rkey) || v.size() != sizeof(ac_register)) continue;
      ac_nf_nat_rkey rk{};
      ac_register r{};
      std::memcpy(&rk, k.data(), sizeof rk);
      std::memcpy(&r, v.data(), sizeof r);
      ac_nf_nat_shared s{};
      std::memcpy(&s, r.v.data, sizeof s);
      shared.push_back({{"proto", proto_text(rk.proto)}, {"remote", ip4(&rk.remote)}, {"remote_port", ntohs(rk.remote_port)},
                        {"external", ip4(&s.external)}, {"external_port", ntohs(s.external_port)},
                        {"inside", ip4(&s.inside)}, {"inside_port", ntohs(s.inside_port)}, {"writer", r.v.writer},
                        {"seen_tai_ns", r.v.seen}});
    }
  }
  j["shared"] = shared;
  return j;
}

Result<json> monitor_state(const InstanceMaps& m, const std::vector<std::pair<ac_st_pkey, ac_st_rec>>& recs) {
  json j;
  auto tot = m.percpu_sum("nf_mon_total", 0);
  if (!tot) return unexpected(tot.error());
  j["total"] = {{"packets", (*tot)[0]}, {"bytes", (*tot)[1]}};
  json flows = json::array();
  for (const auto& [pk, rec] : recs)
    for (const auto& sl : rec.slot) {
      if (!(sl.flags & AC_ST_USED) || sl.table != AC_NF_TABLE_FLOW || sl.vlen != AC_NF_MON_VAL_LEN) continue;
      json e;
      if (sl.klen == AC_NF_KEY4_LEN) {
        e = flow4(sl.key);
      } else {
        ac_nf_flow6 f{};
        if (bpf_map_lookup_elem(m.fd("nf_mon_v6"), sl.key, &f) == 0)
          e = {{"proto", proto_text(f.proto)}, {"src", ip6(f.src)}, {"sport", f.sport}, {"dst", ip6(f.dst)},
               {"dport", f.dport}};
        else
          e = {{"digest", hex(sl.key, sl.klen)}};
      }
      e["packets"] = be64(sl.val);
      e["bytes"] = be64(sl.val + 8);
      e["partition"] = partition(pk);
      flows.push_back(e);
    }
  j["flows"] = flows;
  return j;
}

Result<json> firewall_state(const InstanceMaps& m) {
  json j;
  ac_nf_fw_cfg cfg{};
  uint32_t k0 = 0;
  if (bpf_map_lookup_elem(m.fd("nf_fw_cfg"), &k0, &cfg)) return fail_errno("read nf_fw_cfg");
  j["default"] = cfg.default_action == AC_NF_FW_DROP ? "drop" : "pass";
  json rules = json::array();
  for (uint32_t i = 0; i <= cfg.nrules && i <= AC_NF_FW_RULES; ++i) {
    auto hits = m.percpu_sum("nf_fw_hits", i == cfg.nrules ? AC_NF_FW_RULES : i);
    if (!hits) return unexpected(hits.error());
    json c = {{"packets", (*hits)[0]}, {"bytes", (*hits)[1]}};
    if (i == cfg.nrules) {
      j["default_hits"] = c;
      break;
    }
    ac_nf_fw_rule r{};
    if (bpf_map_lookup_elem(m.fd("nf_fw_rules"), &i, &r)) return fail_errno("read nf_fw_rules");
    c["index"] = i;
    c["rule"] = to_text(decode(r));
    rules.push_back(c);
  }
  j["rules"] = rules;
  return j;
}

// The windows of a windowed NF: the current one and its generation (-1: none set up).
Result<std::pair<ac_crdt_windows, int>> windows(const InstanceMaps& m) {
  ac_crdt_windows w{};
  uint32_t k0 = 0;
  if (bpf_map_lookup_elem(m.fd("ac_crdt_win"), &k0, &w)) return fail_errno("read ac_crdt_win");
  int g = w.cur && w.gen[w.cur & 1] == w.cur ? static_cast<int>(w.cur & 1) : -1;
  return std::pair{w, g};
}

json window_json(const InstanceMaps& m, const ac_crdt_windows& w, int g) {
  uint32_t len = m.published().crdt ? m.published().crdt->window_s : 0;
  json j{{"current", w.cur}, {"generation", g}, {"length_s", len}, {"epoch", ac_crdt_win_epoch(w.cur)}};
  if (len) j["start_unix_s"] = uint64_t{w.cur} * len;
  return j;
}

Result<ac_gcounter> cell(int fd, uint32_t i) {
  ac_gcounter c{};
  if (bpf_map_lookup_elem(fd, &i, &c)) return fail_errno(fmt::format("read cell {}", i));
  return c;
}

Result<json> ids_state(const InstanceMaps& m) {
  json j;
  ac_nf_ids_cfg cfg{};
  uint32_t k0 = 0;
  if (bpf_map_lookup_elem(m.fd("nf_ids_cfg"), &k0, &cfg)) return fail_errno("read nf_ids_cfg");
  j["threshold"] = cfg.threshold;
  j["action"] = cfg.action == AC_NF_IDS_DROP ? "drop" : "pass";
  j["filter"] = {{"hashes", cfg.pairs_hashes}, {"cells", cfg.pairs_mask + 1}};
  j["sketch"] = {{"rows", cfg.ports_rows}, {"width", cfg.ports_mask + 1}};
  auto w = windows(m);
  if (!w) return unexpected(w.error());
  const int g = w->second;
  j["window"] = window_json(m, w->first, g);
  const int ports = g < 0 ? -1 : m.fd(g ? "ids_ports1" : "ids_ports0");
  // the distinct pairs counted in the window, every instance's (a sketch row sums them all)
  uint64_t pairs = 0, own = 0;
  for (uint32_t i = 0; ports >= 0 && i <= cfg.ports_mask; ++i) {
    auto c = cell(ports, i);
    if (!c) return unexpected(c.error());
    pairs += ac_gc_value(&*c);
    own += c->slot[0];
  }
  j["pairs"] = {{"merged", pairs}, {"own", own}};
  // the merged estimate of a source: the smallest of its sketch cells
  auto estimate = [&](const ac_nf_ids_src& s) -> Result<uint64_t> {
    if (ports < 0) return uint64_t{0};
    const uint64_t h = ac_nf_ids_src_hash(&s);
    uint64_t best = ~0ULL;
    for (uint32_t r = 0; r < cfg.ports_rows && r < AC_CRDT_MAX_ROWS; ++r) {
      auto c = cell(ports, ac_cms_cell(h, r, cfg.ports_mask));
      if (!c) return unexpected(c.error());
      best = std::min<uint64_t>(best, ac_gc_value(&*c));
    }
    return best == ~0ULL ? 0 : best;
  };
  auto set = m.dump("ids_flagged");
  if (!set) return unexpected(set.error());
  json flagged = json::array();
  for (const auto& [k, v] : *set) {
    if (k.size() != sizeof(ac_nf_ids_src) || v.size() != sizeof(ac_awset_elem)) continue;
    ac_nf_ids_src src{};
    ac_awset_elem e{};
    std::memcpy(&src, k.data(), sizeof src);
    std::memcpy(&e, v.data(), sizeof e);
    uint32_t adds = 0;
    for (uint32_t a : e.add) adds += a;
    auto est = estimate(src);
    if (!est) return unexpected(est.error());
    flagged.push_back({{"source", src.family == 6 ? ip6(src.addr) : ip4(src.addr)},
                       {"flagged", ac_set_contains(&e) != 0},
                       {"by_this_instance", e.add[0] > e.rm[0]},
                       {"adds", adds},
                       {"ports_in_window", *est}});
  }
  j["flagged"] = flagged;
  return j;
}

Result<json> ratelimit_state(const InstanceMaps& m) {
  json j;
  ac_nf_rl_cfg cfg{};
  uint32_t k0 = 0;
  if (bpf_map_lookup_elem(m.fd("nf_rl_cfg"), &k0, &cfg)) return fail_errno("read nf_rl_cfg");
  j["limit"] = cfg.limit;
  j["unit"] = cfg.unit == AC_NF_RL_PACKETS ? "packets" : "bytes";
  auto w = windows(m);
  if (!w) return unexpected(w.error());
  const int g = w->second;
  j["window"] = window_json(m, w->first, g);
  ac_gcounter c{};
  if (g >= 0) {
    auto r = cell(m.fd(g ? "rl_count1" : "rl_count0"), 0);
    if (!r) return unexpected(r.error());
    c = *r;
  }
  j["count"] = {{"merged", ac_gc_value(&c)}, {"own", c.slot[0]}, {"others", c.others}};
  j["over_limit"] = ac_gc_value(&c) >= cfg.limit;
  return j;
}

}  // namespace

Result<json> decode_state(const InstanceMaps& m) {
  const Published& p = m.published();
  json j{{"name", p.name}, {"kind", std::string(to_string(p.kind))}, {"instance_id", p.instance_id},
         {"pid", p.pid}, {"incarnation", p.incarnation}, {"prog_id", p.prog_id}};
  auto nc = counters(m, "nf_stats", nf_counter_name);
  if (!nc) return unexpected(nc.error());
  j["counters"] = *nc;
  std::vector<std::pair<ac_st_pkey, ac_st_rec>> recs;
  if (m.has("nf_head")) {
    auto r = m.head_records();
    if (!r) return unexpected(r.error());
    recs = std::move(*r);
  }
  auto fc = counters(m, "nf_ftc_stats", ftc_counter_name);
  if (!fc) return unexpected(fc.error());
  j["ftc"] = {{"records", recs.size()}, {"counters", *fc}};
  // the replica store: the partitions of the middleboxes this hop replicates (docs/ftc.md 3.1)
  json reps = json::array();
  if (m.has("nf_replica")) {
    auto rr = m.replica_records();
    if (!rr) return unexpected(rr.error());
    for (const auto& [k, rec] : *rr) {
      if (!(rec.flags & AC_ST_REC_VALID)) continue;  // created empty, never applied
      json e{{"middlebox", k.id}, {"head_si", k.spi_si & 0xff}, {"spi", k.spi_si >> 8},
             {"hash", fmt::format("{:#010x}", k.hash)}, {"seq", rec.seq}, {"incarnation", rec.inc},
             {"held", rec.held}};
      json slots = json::array();
      for (const auto& sl : rec.slot)
        if (sl.flags & AC_ST_USED)
          slots.push_back({{"table", sl.table}, {"key", hex(sl.key, sl.klen)}, {"value", hex(sl.val, sl.vlen)}});
      e["slots"] = slots;
      reps.push_back(e);
    }
  }
  j["ftc"]["replica_records"] = reps.size();
  j["ftc"]["replicas"] = reps;
  auto pc = counters(m, "nf_proc_stats", proc_counter_name);
  if (!pc) return unexpected(pc.error());
  j["process"] = *pc;
  if (m.has("nf_ftc_cfg")) {
    ac_nf_ftc_cfg c{};
    uint32_t k0 = 0;
    if (bpf_map_lookup_elem(m.fd("nf_ftc_cfg"), &k0, &c)) return fail_errno("read nf_ftc_cfg");
    j["ftc"]["incarnation"] = c.inc;
    j["ftc"]["stateful"] = (c.flags & AC_NF_STATEFUL) != 0;
  }
  if (m.has("nf_peers")) {
    // the FTC instances whose logs this hop accepts (id -> incarnation), from the control file
    json peers = json::object();
    auto d = m.dump("nf_peers");
    if (!d) return unexpected(d.error());
    for (const auto& [k, v] : *d) {
      uint32_t id = 0, val = 0;
      std::memcpy(&id, k.data(), 4);
      std::memcpy(&val, v.data(), 4);
      if (val) peers[std::to_string(id)] = val - 1;
    }
    j["ftc"]["peers"] = peers;
  }
  if (m.has("ac_crdt_stats")) {  // shared state: the objects' change log and merges
    auto cc = counters(m, "ac_crdt_stats", crdt_counter_name);
    if (!cc) return unexpected(cc.error());
    j["crdt"] = {{"counters", *cc}};
  }
  Result<json> kind = json::object();
  switch (p.kind) {
    case Kind::Nat: kind = nat_state(m, recs); break;
    case Kind::Monitor: kind = monitor_state(m, recs); break;
    case Kind::Firewall: kind = firewall_state(m); break;
    case Kind::Replica: break;
    case Kind::Ids: kind = ids_state(m); break;
    case Kind::Ratelimit: kind = ratelimit_state(m); break;
  }
  if (!kind) return unexpected(wrap(kind.error(), fmt::format("instance '{}'", p.name)));
  j[std::string(to_string(p.kind))] = *kind;
  return j;
}

}  // namespace anychain::nf
