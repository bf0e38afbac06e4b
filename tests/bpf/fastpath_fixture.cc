#include "fastpath_fixture.h"

#include <cstdlib>

namespace anychain::test {

static void must(const std::string& cmd) {
  if (sh(cmd) != 0) throw std::runtime_error("setup command failed: " + cmd);
}

static std::string mac_str(const Mac& m) {
  char b[18];
  std::snprintf(b, sizeof b, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
  return b;
}

std::vector<dp::PolicyRule> fixture_rules() {
  std::vector<dp::PolicyRule> rules(6);
  rules[0].dst = *dp::parse_prefix("203.0.113.128/25");  // TCP/80 there -> chain 200 (proxy)
  rules[0].proto = IPPROTO_TCP;
  rules[0].dport_lo = rules[0].dport_hi = 80;
  rules[0].spi = 200;
  rules[1].dst = *dp::parse_prefix("203.0.113.0/24");
  rules[1].spi = 100;
  rules[2].dst = *dp::parse_prefix("2001:db8:99::/64");
  rules[2].src = *dp::parse_prefix("any6");
  rules[2].spi = 100;
  rules[3].dst = *dp::parse_prefix("198.51.100.0/24");  // MD type 2
  rules[3].spi = 100;
  rules[3].md2 = true;
  rules[4].dst = *dp::parse_prefix("198.18.0.0/24");    // unresolved next hop, symmetric hash
  rules[4].spi = 300;
  rules[4].symmetric = true;
  rules[5].dst = *dp::parse_prefix("2001:db8:98::/64");  // MD type 2, IPv6
  rules[5].src = *dp::parse_prefix("any6");
  rules[5].spi = 100;
  rules[5].md2 = true;
  return rules;
}

std::vector<uint32_t> table_of(uint32_t instance) { return std::vector<uint32_t>(AC_WCMP_BUCKETS, instance); }

void FastPathEnv::SetUp() {
  if (auto err = enter_sandbox(); !err.empty()) throw std::runtime_error("sandbox: " + err);
  auto veth = [](const std::string& a, const Mac& ma, const std::string& b, const Mac& mb) {
    must("ip link add " + a + " address " + mac_str(ma) + " type veth peer name " + b + " address " + mac_str(mb));
    must("ip link set " + a + " up && ip link set " + b + " up");
  };
  veth("src0", kSrc0, "src0p", kSrcHost);
  veth("vnf0", kVnf0Host, "vnf0p", kVnf0Peer);
  veth("vnf1", kVnf1Host, "vnf1p", kVnf1Peer);
  veth("core0", kCore0, "core0p", kCore0Peer);
  must("ip addr add 192.0.2.1/32 dev lo");
  must("ip addr add 10.0.0.1/24 dev core0 && ip -6 addr add 2001:db8:1::1/64 dev core0 nodad");
  must("ip neigh replace 10.0.0.2 lladdr " + mac_str(kCore0Peer) + " dev core0 nud permanent");
  must("ip -6 neigh replace 2001:db8:1::2 lladdr " + mac_str(kCore0Peer) + " dev core0 nud permanent");
  must("ip route add 192.0.2.2/32 via 10.0.0.2 && ip route add 192.0.2.3/32 via 10.0.0.3");
  must("ip route add 203.0.113.0/24 via 10.0.0.2 && ip route add 198.18.0.0/24 via 10.0.0.3");
  must("ip -6 route add 2001:db8:99::/64 via 2001:db8:1::2");
  must("sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1");

  auto d = dp::Dataplane::open();
  if (!d) throw std::runtime_error("open dataplane: " + d.error().str());
  dp_ = std::make_unique<dp::Dataplane>(std::move(*d));
  auto& p = *dp_;
  dp::Config cfg;
  inet_pton(AF_INET, kLocalEndpoint, &cfg.local_endpoint);
  auto ok = [](const auto& r, const char* what) {
    if (!r) throw std::runtime_error(std::string(what) + ": " + r.error().str());
  };
  ok(p.set_config(cfg), "config");
  ok(p.set_interface(ifindex("src0"), AC_IF_CLASSIFY, 0, kSrc0), "iface src0");
  ok(p.set_interface(ifindex("vnf1"), AC_IF_VNF, kInstProxy, kVnf1Host), "iface vnf1");
  dp::Instance local{.id = kInstLocal, .local = true, .nsh_aware = true,
                     .ifindex = static_cast<uint32_t>(ifindex("vnf0")), .mac = kVnf0Peer, .if_mac = kVnf0Host};
  ok(p.set_instance(local), "instance local");
  dp::Instance remote{.id = kInstRemote, .local = false};
  inet_pton(AF_INET, kRemoteEndpoint, &remote.endpoint);
  remote.vni = 7;
  ok(p.set_instance(remote), "instance remote");
  dp::Instance proxied{.id = kInstProxy, .local = true, .nsh_aware = false,
                       .ifindex = static_cast<uint32_t>(ifindex("vnf1")), .mac = kVnf1Peer, .if_mac = kVnf1Host};
  ok(p.set_instance(proxied), "instance proxied");
  dp::Instance noneigh{.id = kInstNoNeigh, .local = false};
  inet_pton(AF_INET, kUnresolvedEndpoint, &noneigh.endpoint);
  ok(p.set_instance(noneigh), "instance no-neigh");
  ok(p.set_wcmp_table(kSvcLocal, table_of(kInstLocal)), "wcmp 1");
  ok(p.set_wcmp_table(kSvcRemote, table_of(kInstRemote)), "wcmp 2");
  ok(p.set_wcmp_table(kSvcProxy, table_of(kInstProxy)), "wcmp 3");
  ok(p.set_wcmp_table(kSvcNoNeigh, table_of(kInstNoNeigh)), "wcmp 4");
  // chain 100: local NSH-aware VNF, then a remote instance, then the end
  ok(p.set_path(100, 255, kSvcLocal, false), "path 100:255");
  ok(p.set_path(100, 254, kSvcRemote, false), "path 100:254");
  ok(p.set_path(100, 253, 0, true), "path 100:253");
  // chain 200: proxied VNF, then the end
  ok(p.set_path(200, 255, kSvcProxy, false), "path 200:255");
  ok(p.set_path(200, 254, 0, true), "path 200:254");
  // chain 300: a remote instance whose next hop is unresolved
  ok(p.set_path(300, 255, kSvcNoNeigh, false), "path 300:255");

  ok(p.set_policies(fixture_rules()), "policies");
}

void FastPathEnv::TearDown() { dp_.reset(); }

RunResult run_prog(int prog_fd, const std::string& ifname, const Bytes& frame) {
  RunResult r;
  r.out.resize(frame.size() + 512);
  xdp_md ctx{};
  ctx.ingress_ifindex = static_cast<uint32_t>(FastPathEnv::ifindex(ifname));
  ctx.data_end = static_cast<uint32_t>(frame.size());
  LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame.data(), .data_out = r.out.data(),
              .data_size_in = static_cast<uint32_t>(frame.size()),
              .data_size_out = static_cast<uint32_t>(r.out.size()), .ctx_in = &ctx, .ctx_size_in = sizeof(ctx),
              .repeat = 1);
  int err = bpf_prog_test_run_opts(prog_fd, &o);
  if (err) throw std::runtime_error("bpf_prog_test_run_opts failed: " + std::to_string(err));
  r.verdict = static_cast<int>(o.retval);
  r.out.resize(o.data_size_out);
  return r;
}

Counters::Counters() {
  auto s = FastPathEnv::dataplane().stats();
  if (!s) throw std::runtime_error(s.error().str());
  before_ = *s;
}

uint64_t Counters::delta(uint32_t reason) const {
  auto s = FastPathEnv::dataplane().stats();
  if (!s) throw std::runtime_error(s.error().str());
  return (*s)[reason].packets - before_[reason].packets;
}

}  // namespace anychain::test
