// Config parsing of the built-in network functions (docs/nf.md): an instance's nf: KIND, its
// restart policy and its kind's own section, the node's nf: section; every error at its line.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "config/config.h"
#include "config_helpers.h"

namespace cfg = anychain::config;
using namespace anychain::config::test;
using ::testing::HasSubstr;

// Built-in network functions (docs/nf.md): nf: KIND on an instance, its restart policy and the
// kind's own section; the nf: section of the node.
const std::string kNfBase =
    "node:\n"                                    // 1
    "  nsh_endpoint: 10.0.0.1\n"                 // 2
    "nf:\n"                                      // 3
    "  netns_prefix: lab-r1-\n"                  // 4
    "  run_dir: /run/lab/r1/nf\n"                // 5
    "services:\n"                                // 6
    "  - {name: fw, id: 1, anycast: 10.100.0.1}\n"   // 7
    "  - {name: mon, id: 2, anycast: 10.100.0.2}\n"  // 8
    "  - {name: nat, id: 3, anycast: 10.100.0.3}\n"  // 9
    "instances:\n";                              // 10

TEST(Config, NfInstancesParseAndRoundTrip) {
  const std::string yaml = kNfBase +
                           "  - name: fw1\n"
                           "    id: 1\n"
                           "    service: fw\n"
                           "    veth: nf-fw1\n"
                           "    capacity: 100000\n"
                           "    nf: firewall\n"
                           "    firewall:\n"
                           "      default: drop\n"
                           "      rules:\n"
                           "        - {action: pass, proto: udp, dport: 9000-9099}\n"
                           "        - {action: drop, src: 10.9.0.0/16}\n"
                           "        - {action: pass, src: fd00::/8, dst: any}\n"
                           "  - {name: mon1, id: 2, service: mon, veth: nf-mon1, capacity: 100000, nf: monitor,\n"
                           "     restart: never, monitor: {idle_timeout_s: 120}}\n"
                           "  - {name: nat1, id: 3, service: nat, veth: nf-nat1, capacity: 100000, nf: nat,\n"
                           "     nat: {address: 192.0.2.10, ports: 20000-29999}}\n";
  auto c = cfg::parse(yaml, "t.yaml");
  ASSERT_TRUE(c.has_value()) << [&] {
    std::ostringstream o;
    cfg::print(o, c.error());
    return o.str();
  }();
  EXPECT_EQ(c->nf.netns_prefix, "lab-r1-");
  EXPECT_EQ(c->nf.run_dir, "/run/lab/r1/nf");
  ASSERT_EQ(c->instances.size(), 3u);
  const auto& fw = *c->instances[0].nf;
  EXPECT_EQ(fw.kind, "firewall");
  EXPECT_TRUE(fw.restart);
  EXPECT_TRUE(fw.fw_default_drop);
  ASSERT_EQ(fw.fw_rules.size(), 3u);
  EXPECT_FALSE(fw.fw_rules[0].drop);
  EXPECT_EQ(fw.fw_rules[0].proto, 17);
  EXPECT_EQ(fw.fw_rules[0].dport_lo, 9000);
  EXPECT_EQ(fw.fw_rules[0].dport_hi, 9099);
  EXPECT_EQ(fw.fw_rules[1].src, "10.9.0.0/16");
  const auto& mon = *c->instances[1].nf;
  EXPECT_FALSE(mon.restart);
  EXPECT_EQ(mon.idle_timeout_s, 120u);
  const auto& nat = *c->instances[2].nf;
  EXPECT_EQ(nat.nat_address, "192.0.2.10");
  EXPECT_EQ(nat.nat_port_lo, 20000);
  EXPECT_EQ(nat.nat_port_hi, 29999);
  EXPECT_FALSE(nat.idle_timeout_s.has_value()) << "unset: the kind's default";
  // the serialiser writes what the parser reads back
  std::string text = cfg::to_yaml(*c);
  auto b = cfg::parse(text);
  ASSERT_TRUE(b.has_value()) << text;
  EXPECT_EQ(cfg::to_yaml(*b), text);
  EXPECT_EQ(b->nf, c->nf);
  EXPECT_EQ(b->instances[0].nf->fw_rules.size(), 3u);
  EXPECT_EQ(b->instances[0].nf->fw_rules[2].src, "fd00::/8");
  EXPECT_EQ(b->instances[2].nf->nat_port_lo, 20000);
  // an nf instance's veth is the daemon's to create: check_interfaces does not ask for it
  EXPECT_TRUE(cfg::check_interfaces(*c).empty());
}

// The shared-state NFs' sections (docs/state.md 4): read, defaults, written back the same.
TEST(Config, IdsAndRatelimitSections) {
  const std::string yaml = kNfBase +
      "  - {name: i1, id: 1, service: fw, veth: vi, capacity: 1, nf: ids,\n"
      "     ids: {threshold: 32, action: drop, window_s: 5, filter: 2x1024, sketch: 3x256, flagged: 100}}\n"
      "  - {name: i2, id: 2, service: fw, veth: vj, capacity: 1, nf: ids}\n"
      "  - {name: r1, id: 3, service: fw, veth: vr, capacity: 1, nf: ratelimit,\n"
      "     ratelimit: {limit: 5000, unit: packets, window_s: 1}}\n";
  auto c = cfg::parse(yaml);
  ASSERT_TRUE(c.has_value()) << ::testing::PrintToString(c.error());
  const cfg::NfConfig& a = *c->instances[0].nf;
  EXPECT_EQ(a.ids_threshold, 32u);
  EXPECT_TRUE(a.ids_drop);
  EXPECT_EQ(a.window_s, 5u);
  EXPECT_EQ(a.ids_filter_hashes, 2u);
  EXPECT_EQ(a.ids_filter_cells, 1024u);
  EXPECT_EQ(a.ids_sketch_rows, 3u);
  EXPECT_EQ(a.ids_sketch_width, 256u);
  EXPECT_EQ(a.ids_flagged, 100u);
  const cfg::NfConfig& d = *c->instances[1].nf;
  EXPECT_EQ(d.ids_threshold, 64u) << "defaults";
  EXPECT_FALSE(d.ids_drop);
  EXPECT_EQ(d.window_s, 10u);
  const cfg::NfConfig& r = *c->instances[2].nf;
  EXPECT_EQ(r.rl_limit, 5000u);
  EXPECT_TRUE(r.rl_packets);
  EXPECT_EQ(r.window_s, 1u);
  std::string text = cfg::to_yaml(*c);
  auto b = cfg::parse(text);
  ASSERT_TRUE(b.has_value()) << text;
  EXPECT_EQ(cfg::to_yaml(*b), text);
  EXPECT_EQ(b->instances[0].nf->ids_sketch_width, 256u);
  EXPECT_EQ(b->instances[2].nf->rl_limit, 5000u);
  auto e = errors_of(kNfBase + "  - {name: r, id: 3, service: fw, veth: vr, capacity: 1, nf: ratelimit}\n");
  EXPECT_EQ(lines(e).size(), 1u) << ::testing::PrintToString(lines(e));
  e = errors_of(kNfBase + "  - {name: r, id: 3, service: fw, veth: vr, capacity: 1, nf: ratelimit,\n"
                          "     ratelimit: {limit: 0, unit: frames}}\n");
  EXPECT_EQ(lines(e).size(), 2u) << ::testing::PrintToString(lines(e));
}

TEST(Config, NfErrorsWithTheirLine) {
  const std::string yaml = kNfBase +
      "  - {name: a, id: 1, service: fw, veth: va, capacity: 1, nf: router}\n"                   // 11 unknown kind
      "  - {name: b, id: 2, service: fw, veth: vb, capacity: 1, nf: ids, ids: {filter: 3x1000}}\n"  // 12 geometry
      "  - {name: c, id: 3, service: fw, veth: vc, capacity: 1, nf: nat}\n"                      // 13 nat: missing
      "  - {name: d, id: 4, service: fw, veth: vd, capacity: 1, nf: monitor, restart: often}\n"  // 14 restart
      "  - {name: e, id: 5, service: fw, veth: ve, capacity: 1, nf: monitor, nat: {address: 1.2.3.4}}\n"  // 15
      "  - {name: f, id: 6, service: fw, veth: vf, capacity: 1, nf: monitor, mac: 02:00:00:00:00:01}\n"   // 16
      "  - {name: g, id: 7, service: fw, veth: vg, capacity: 1, nf: monitor, nsh_aware: false}\n"         // 17
      "  - {name: h, id: 8, service: fw, veth: vh, capacity: 1, restart: always}\n"              // 18 no nf
      "  - {name: i, id: 9, service: fw, veth: vi, capacity: 1, nf: nat, nat: {address: nowhere, ports: 0-10}}\n"  // 19
      "  - {name: j, id: 10, service: fw, veth: vj, capacity: 1, nf: firewall,\n"                 // 20
      "     firewall: {default: reject, rules: [{action: allow}, {action: drop, dport: 53},\n"    // 21
      "                {action: drop, src: 10.0.0.0/8, dst: fd00::/8}]}}\n"                        // 22
      "  - {name: k, id: 11, service: fw, veth: vk, capacity: 1, nf: monitor, monitor: {idle_timeout_s: -1}}\n";  // 23
  auto d = errors_of(yaml);
  auto got = lines(d);
  auto has = [&](int line, const std::string& text) {
    return std::any_of(got.begin(), got.end(),
                       [&](const auto& e) { return e.first == line && e.second.find(text) != std::string::npos; });
  };
  EXPECT_TRUE(has(11, "unknown nf 'router'"));
  EXPECT_TRUE(has(12, "bad filter '3x1000'"));
  EXPECT_TRUE(has(13, "missing required key 'nat'"));
  EXPECT_TRUE(has(14, "bad restart 'often'"));
  EXPECT_TRUE(has(15, "a 'nat' section in an nf: monitor instance"));
  EXPECT_TRUE(has(16, "'mac' is set by anychaind"));
  EXPECT_TRUE(has(17, "is NSH-aware"));
  EXPECT_TRUE(has(18, "'restart' is only for a built-in network function"));
  EXPECT_TRUE(has(19, "address 'nowhere' is not an IPv4 address"));
  EXPECT_TRUE(has(19, "bad ports '0-10'"));
  EXPECT_TRUE(has(21, "bad default 'reject'"));
  EXPECT_TRUE(has(21, "bad action 'allow'"));
  EXPECT_TRUE(has(21, "dport needs proto tcp or udp"));
  EXPECT_TRUE(has(22, "different address families"));
  EXPECT_TRUE(has(23, "'idle_timeout_s' must be an integer"));
  EXPECT_EQ(got.size(), 15u) << ::testing::PrintToString(got);

  // the node's nf: section
  auto n = errors_of("node: {nsh_endpoint: 10.0.0.1}\nnf: {netns_prefix: 'a/b', run_dir: relative, colour: red}\n");
  auto ng = lines(n);
  EXPECT_EQ(ng.size(), 3u) << ::testing::PrintToString(ng);
  // more than 64 rules
  std::string many = kNfBase + "  - {name: m, id: 1, service: fw, veth: vm, capacity: 1, nf: firewall, firewall: {rules: [";
  for (int i = 0; i < 65; ++i) many += std::string(i ? ", " : "") + "{action: drop}";
  many += "]}}\n";
  auto m = lines(errors_of(many));
  ASSERT_EQ(m.size(), 1u);
  EXPECT_THAT(m[0].second, HasSubstr("65 rules, at most 64"));
  // an nf's veth cannot also be an attached interface
  auto v = lines(errors_of(kNfBase + "  - {name: n, id: 1, service: fw, veth: eth9, capacity: 1, nf: monitor}\n"
                                     "interfaces: [{name: eth9}]\n"));
  ASSERT_EQ(v.size(), 1u);
  EXPECT_THAT(v[0].second, HasSubstr("created by anychaind for its nf"));
}
