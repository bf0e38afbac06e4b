#include "fastpath_fixture.h"

#include <cstdlib>

namespace anychain::test {

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
  build_fixture_node();

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
  // every interface the program runs on, as attach() describes them: their MACs, and roles
  ok(p.set_interface(ifindex("src0"), AC_IF_CLASSIFY, 0, kSrc0), "iface src0");
  ok(p.set_interface(ifindex("vnf1"), AC_IF_VNF, kInstProxy, kVnf1Host), "iface vnf1");
  ok(p.set_interface(ifindex("vnf0"), 0, 0, kVnf0Host), "iface vnf0");
  ok(p.set_interface(ifindex("core0"), 0, 0, kCore0), "iface core0");
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
