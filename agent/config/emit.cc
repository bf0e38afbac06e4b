// Serialisation back to YAML (the CLI's changes are saved through it) and the atomic write.
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>

#include "common/unique_fd.h"
#include "config/config.h"

namespace anychain::config {

std::string proto_name(uint8_t proto) {
  switch (proto) {
    case 0: return "any";
    case 1: return "icmp";
    case 6: return "tcp";
    case 17: return "udp";
    case 58: return "icmpv6";
    default: return std::to_string(proto);
  }
}

std::string port_range(uint16_t lo, uint16_t hi) {
  if (lo == 0 && hi == 65535) return "";
  if (lo == hi) return std::to_string(lo);
  return fmt::format("{}-{}", lo, hi);
}


// the set fields of an ftc: map (a chain's or the top-level defaults)
static void emit_ftc_params(YAML::Emitter& e, const FtcParams& p) {
  if (p.f) e << YAML::Key << "f" << YAML::Value << *p.f;
  if (p.buffer_frames || p.buffer_per_partition) {
    e << YAML::Key << "buffer" << YAML::Value << YAML::BeginMap;
    if (p.buffer_frames) e << YAML::Key << "frames" << YAML::Value << *p.buffer_frames;
    if (p.buffer_per_partition) e << YAML::Key << "per_partition" << YAML::Value << *p.buffer_per_partition;
    e << YAML::EndMap;
  }
  if (p.hold_timeout_ms) e << YAML::Key << "hold_timeout_ms" << YAML::Value << *p.hold_timeout_ms;
  if (p.propagate_after_ms) e << YAML::Key << "propagate_after_ms" << YAML::Value << *p.propagate_after_ms;
}

std::string to_yaml(const Config& c) {
  auto num = [](double d) { return fmt::format("{:.15g}", d); };
  YAML::Emitter e;
  e << YAML::BeginMap;
  e << YAML::Key << "node" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "nsh_endpoint" << YAML::Value << c.node.nsh_endpoint;
  e << YAML::Key << "pin_root" << YAML::Value << c.node.pin_root;
  e << YAML::Key << "flow_cache_entries" << YAML::Value << c.node.flow_cache_entries;
  e << YAML::Key << "affinity_entries" << YAML::Value << c.node.affinity_entries;
  e << YAML::Key << "flow_timeout_s" << YAML::Value << c.node.flow_timeout_s;
  e << YAML::Key << "symmetric_hash" << YAML::Value << c.node.symmetric_hash;
  e << YAML::Key << "nsh_ttl" << YAML::Value << static_cast<unsigned>(c.node.nsh_ttl);
  e << YAML::Key << "oam" << YAML::Value << (c.node.oam_forward ? "forward" : "drop");
  e << YAML::Key << "slow_path" << YAML::Value << c.node.slow_path;
  e << YAML::Key << "inner_mtu" << YAML::Value << c.node.inner_mtu;
  e << YAML::EndMap;

  e << YAML::Key << "interfaces" << YAML::Value << YAML::BeginSeq;
  for (const auto& i : c.interfaces) {
    e << YAML::BeginMap << YAML::Key << "name" << YAML::Value << i.name;
    e << YAML::Key << "mode" << YAML::Value << std::string(to_string(i.mode));
    e << YAML::Key << "classify" << YAML::Value << i.classify << YAML::EndMap;
  }
  e << YAML::EndSeq;

  e << YAML::Key << "ospf" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "address" << YAML::Value << c.ospf.address;
  e << YAML::Key << "port" << YAML::Value << c.ospf.port;
  e << YAML::Key << "local_port" << YAML::Value << c.ospf.local_port;
  e << YAML::Key << "opaque_type" << YAML::Value << static_cast<unsigned>(c.ospf.opaque_type);
  e << YAML::Key << "area" << YAML::Value << c.ospf.area;
  if (!c.ospf.pid_file.empty()) e << YAML::Key << "pid_file" << YAML::Value << c.ospf.pid_file;
  e << YAML::EndMap;

  e << YAML::Key << "timers" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "spf_delay_ms" << YAML::Value << c.timers.spf_delay.count();
  e << YAML::Key << "spf_hold_ms" << YAML::Value << c.timers.spf_hold.count();
  e << YAML::Key << "announce_interval_s" << YAML::Value << c.timers.announce_interval.count();
  e << YAML::Key << "cost_damping" << YAML::Value << num(c.timers.cost_damping);
  e << YAML::Key << "monitor_interval_s" << YAML::Value << c.timers.monitor_interval.count();
  e << YAML::Key << "vnf_stall_s" << YAML::Value << c.timers.vnf_stall.count();
  e << YAML::EndMap;

  e << YAML::Key << "wcmp" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "policy" << YAML::Value << std::string(to_string(c.wcmp.policy));
  e << YAML::Key << "params" << YAML::Value << YAML::BeginMap;
  if (c.wcmp.include_links) e << YAML::Key << "include_links" << YAML::Value << *c.wcmp.include_links;
  for (auto [key, v] : {std::pair{"floor", c.wcmp.floor}, std::pair{"inverse_scale", c.wcmp.inverse_scale},
                        std::pair{"cost_range", c.wcmp.cost_range}, std::pair{"hold_down_ms", c.wcmp.hold_down_ms}})
    if (v) e << YAML::Key << key << YAML::Value << *v;
  e << YAML::EndMap << YAML::EndMap;

  e << YAML::Key << "nf" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "netns_prefix" << YAML::Value << c.nf.netns_prefix;
  e << YAML::Key << "run_dir" << YAML::Value << c.nf.run_dir;
  if (!c.nf.program.empty()) e << YAML::Key << "program" << YAML::Value << c.nf.program;
  e << YAML::EndMap;

  e << YAML::Key << "ftc" << YAML::Value << YAML::BeginMap;
  emit_ftc_params(e, c.ftc.defaults);
  e << YAML::Key << "port" << YAML::Value << c.ftc.port;
  e << YAML::Key << "recovery_hold_ms" << YAML::Value << c.ftc.recovery_hold_ms;
  e << YAML::Key << "replica_records" << YAML::Value << c.ftc.replica_records;
  e << YAML::Key << "reorder_wait_us" << YAML::Value << c.ftc.reorder_wait_us;
  if (!c.ftc.key_file.empty()) e << YAML::Key << "key_file" << YAML::Value << c.ftc.key_file;
  e << YAML::Key << "detect" << YAML::Value << YAML::Flow << YAML::BeginMap << YAML::Key << "interval_ms"
    << YAML::Value << c.ftc.detect_interval_ms << YAML::Key << "misses" << YAML::Value << c.ftc.detect_misses
    << YAML::EndMap;
  e << YAML::EndMap;

  if (c.state) {
    const State& st = *c.state;
    e << YAML::Key << "state" << YAML::Value << YAML::BeginMap;
    e << YAML::Key << "port" << YAML::Value << st.port;
    if (!st.interfaces.empty()) {
      e << YAML::Key << "interfaces" << YAML::Value << YAML::Flow << YAML::BeginSeq;
      for (const auto& i : st.interfaces) e << i;
      e << YAML::EndSeq;
    }
    e << YAML::Key << "keys" << YAML::Value << YAML::BeginSeq;
    for (const auto& k : st.keys)
      e << YAML::Flow << YAML::BeginMap << YAML::Key << "id" << YAML::Value << static_cast<unsigned>(k.id)
        << YAML::Key << "key" << YAML::Value << k.hex << YAML::EndMap;
    e << YAML::EndSeq;
    if (st.send_key) e << YAML::Key << "send_key" << YAML::Value << static_cast<unsigned>(st.send_key);
    e << YAML::Key << "max_skew_s" << YAML::Value << st.max_skew_s;
    e << YAML::Key << "scan_interval_ms" << YAML::Value << st.scan_interval_ms;
    e << YAML::Key << "keepalive_ms" << YAML::Value << st.keepalive_ms;
    e << YAML::Key << "peer_window_kb" << YAML::Value << st.peer_window_kb;
    e << YAML::Key << "window_s" << YAML::Value << st.window_s;
    e << YAML::Key << "node_gone_grace_s" << YAML::Value << st.node_gone_grace_s;
    e << YAML::EndMap;
  }

  e << YAML::Key << "services" << YAML::Value << YAML::BeginSeq;
  for (const auto& s : c.services) {
    e << YAML::BeginMap << YAML::Key << "name" << YAML::Value << s.name;
    e << YAML::Key << "id" << YAML::Value << s.id;
    e << YAML::Key << "anycast" << YAML::Value << s.anycast << YAML::EndMap;
  }
  e << YAML::EndSeq;

  e << YAML::Key << "chains" << YAML::Value << YAML::BeginSeq;
  for (const auto& ch : c.chains) {
    e << YAML::BeginMap << YAML::Key << "name" << YAML::Value << ch.name;
    e << YAML::Key << "spi" << YAML::Value << ch.spi;
    e << YAML::Key << "services" << YAML::Value << YAML::Flow << ch.services;
    if (ch.ftc) {
      e << YAML::Key << "ftc" << YAML::Value << YAML::BeginMap;
      emit_ftc_params(e, *ch.ftc);
      e << YAML::EndMap;
    }
    e << YAML::EndMap;
  }
  e << YAML::EndSeq;

  e << YAML::Key << "policies" << YAML::Value << YAML::BeginSeq;
  for (const auto& p : c.policies) {
    e << YAML::BeginMap << YAML::Key << "name" << YAML::Value << p.name;
    e << YAML::Key << "chain" << YAML::Value << p.chain;
    e << YAML::Key << "src" << YAML::Value << p.src;
    e << YAML::Key << "dst" << YAML::Value << p.dst;
    e << YAML::Key << "proto" << YAML::Value << proto_name(p.proto);
    if (auto s = port_range(p.sport_lo, p.sport_hi); !s.empty()) e << YAML::Key << "sport" << YAML::Value << s;
    if (auto s = port_range(p.dport_lo, p.dport_hi); !s.empty()) e << YAML::Key << "dport" << YAML::Value << s;
    if (p.symmetric) e << YAML::Key << "symmetric" << YAML::Value << *p.symmetric;
    e << YAML::Key << "md_type" << YAML::Value << static_cast<unsigned>(p.md_type) << YAML::EndMap;
  }
  e << YAML::EndSeq;

  e << YAML::Key << "instances" << YAML::Value << YAML::BeginSeq;
  for (const auto& in : c.instances) {
    e << YAML::BeginMap << YAML::Key << "name" << YAML::Value << in.name;
    if (in.standby_for)
      e << YAML::Key << "standby_for" << YAML::Value << *in.standby_for;
    else
      e << YAML::Key << "id" << YAML::Value << in.id;
    e << YAML::Key << "service" << YAML::Value << in.service;
    e << YAML::Key << "veth" << YAML::Value << in.veth;
    if (in.mac) e << YAML::Key << "mac" << YAML::Value << mac_str(*in.mac);
    e << YAML::Key << "capacity" << YAML::Value << in.capacity;
    e << YAML::Key << "nsh_aware" << YAML::Value << in.nsh_aware;
    if (!in.pid_file.empty()) e << YAML::Key << "pid_file" << YAML::Value << in.pid_file;
    if (!in.cgroup.empty()) e << YAML::Key << "cgroup" << YAML::Value << in.cgroup;
    if (in.nf) {
      const NfConfig& nf = *in.nf;
      e << YAML::Key << "nf" << YAML::Value << nf.kind;
      e << YAML::Key << "restart" << YAML::Value << (nf.restart ? "always" : "never");
      if (nf.kind == "nat") {
        e << YAML::Key << "nat" << YAML::Value << YAML::BeginMap;
        e << YAML::Key << "address" << YAML::Value << nf.nat_address;
        e << YAML::Key << "ports" << YAML::Value << fmt::format("{}-{}", nf.nat_port_lo, nf.nat_port_hi);
        if (nf.idle_timeout_s) e << YAML::Key << "idle_timeout_s" << YAML::Value << *nf.idle_timeout_s;
        e << YAML::EndMap;
      } else if (nf.kind == "monitor" && nf.idle_timeout_s) {
        e << YAML::Key << "monitor" << YAML::Value << YAML::BeginMap;
        e << YAML::Key << "idle_timeout_s" << YAML::Value << *nf.idle_timeout_s << YAML::EndMap;
      } else if (nf.kind == "ids") {
        e << YAML::Key << "ids" << YAML::Value << YAML::BeginMap;
        e << YAML::Key << "threshold" << YAML::Value << nf.ids_threshold;
        e << YAML::Key << "action" << YAML::Value << (nf.ids_drop ? "drop" : "pass");
        e << YAML::Key << "window_s" << YAML::Value << nf.window_s;
        e << YAML::Key << "filter" << YAML::Value << fmt::format("{}x{}", nf.ids_filter_hashes, nf.ids_filter_cells);
        e << YAML::Key << "sketch" << YAML::Value << fmt::format("{}x{}", nf.ids_sketch_rows, nf.ids_sketch_width);
        e << YAML::Key << "flagged" << YAML::Value << nf.ids_flagged;
        e << YAML::Key << "flag_expire_s" << YAML::Value << nf.ids_flag_expire_s;
        e << YAML::EndMap;
      } else if (nf.kind == "ratelimit") {
        e << YAML::Key << "ratelimit" << YAML::Value << YAML::BeginMap;
        e << YAML::Key << "limit" << YAML::Value << nf.rl_limit;
        e << YAML::Key << "unit" << YAML::Value << (nf.rl_packets ? "packets" : "bytes");
        e << YAML::Key << "window_s" << YAML::Value << nf.window_s;
        e << YAML::EndMap;
      } else if (nf.kind == "firewall") {
        e << YAML::Key << "firewall" << YAML::Value << YAML::BeginMap;
        e << YAML::Key << "default" << YAML::Value << (nf.fw_default_drop ? "drop" : "pass");
        e << YAML::Key << "rules" << YAML::Value << YAML::BeginSeq;
        for (const auto& r : nf.fw_rules) {
          e << YAML::Flow << YAML::BeginMap << YAML::Key << "action" << YAML::Value << (r.drop ? "drop" : "pass");
          if (r.src != "any") e << YAML::Key << "src" << YAML::Value << r.src;
          if (r.dst != "any") e << YAML::Key << "dst" << YAML::Value << r.dst;
          if (r.proto) e << YAML::Key << "proto" << YAML::Value << proto_name(r.proto);
          if (auto p = port_range(r.sport_lo, r.sport_hi); !p.empty()) e << YAML::Key << "sport" << YAML::Value << p;
          if (auto p = port_range(r.dport_lo, r.dport_hi); !p.empty()) e << YAML::Key << "dport" << YAML::Value << p;
          e << YAML::EndMap;
        }
        e << YAML::EndSeq << YAML::EndMap;
      }
      if (nf.replica_records || nf.reorder_wait_us) {
        e << YAML::Key << "ftc" << YAML::Value << YAML::Flow << YAML::BeginMap;
        if (nf.replica_records) e << YAML::Key << "replica_records" << YAML::Value << *nf.replica_records;
        if (nf.reorder_wait_us) e << YAML::Key << "reorder_wait_us" << YAML::Value << *nf.reorder_wait_us;
        e << YAML::EndMap;
      }
    }
    e << YAML::EndMap;
  }
  e << YAML::EndSeq;
  e << YAML::EndMap;
  return std::string(e.c_str()) + "\n";
}

Result<void> save_file(const Config& c, const std::string& path) {
  namespace fs = std::filesystem;
  std::string text = to_yaml(c);
  fs::path p(path);
  fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
  std::string tmpl = (dir / ("." + p.filename().string() + ".XXXXXX")).string();
  UniqueFd fd(mkstemp(tmpl.data()));
  if (!fd) return fail_errno(fmt::format("create a temporary file next to {}", path));
  auto cleanup = [&] { ::unlink(tmpl.c_str()); };
  struct stat st{};
  mode_t mode = ::stat(path.c_str(), &st) == 0 ? (st.st_mode & 07777) : 0644;
  if (fchmod(fd.get(), mode) != 0) {
    int e = errno;
    cleanup();
    return fail_errno(fmt::format("chmod {}", tmpl), e);
  }
  for (size_t off = 0; off < text.size();) {
    ssize_t n = ::write(fd.get(), text.data() + off, text.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      cleanup();
      return fail_errno(fmt::format("write {}", tmpl), e);
    }
    off += static_cast<size_t>(n);
  }
  if (fsync(fd.get()) != 0) {
    int e = errno;
    cleanup();
    return fail_errno(fmt::format("fsync {}", tmpl), e);
  }
  fd.reset();
  if (::rename(tmpl.c_str(), path.c_str()) != 0) {
    int e = errno;
    cleanup();
    return fail_errno(fmt::format("rename {} to {}", tmpl, path), e);
  }
  UniqueFd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dfd) fsync(dfd.get());
  return {};
}

}  // namespace anychain::config
