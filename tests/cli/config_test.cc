// Config parsing: the example file, bad input with every error at its line (WCMP parameters
// included), round trips, check_interfaces/check_file, atomic save. Built without the fast
// path: the config module is a leaf (tests/unit/module_edges_test.py checks it stays one).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "config/config.h"
#include "config_helpers.h"

namespace cfg = anychain::config;
using namespace std::chrono_literals;
using ::testing::HasSubstr;
using namespace anychain::config::test;

namespace {

const std::string kExample = ANYCHAIN_EXAMPLE_CONFIG;

std::string read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const std::string kMinimal = "node:\n  nsh_endpoint: 10.0.0.1\n";

std::filesystem::path temp_dir() {
  auto d = std::filesystem::temp_directory_path() / ("anychain-config-test-" + std::to_string(getpid()));
  std::filesystem::create_directories(d);
  return d;
}

}  // namespace

TEST(Config, ExampleFileParses) {
  auto c = cfg::load_file(kExample);
  ASSERT_TRUE(c.has_value()) << [&] { std::ostringstream os; cfg::print(os, c.error()); return os.str(); }();
  EXPECT_EQ(c->node.nsh_endpoint, "10.255.0.1");
  EXPECT_EQ(c->node.flow_cache_entries, 65536u);
  EXPECT_EQ(c->node.affinity_entries, uint32_t{AC_AFFINITY_DEFAULT});  // not in the file: the default
  ASSERT_EQ(c->interfaces.size(), 2u);
  EXPECT_EQ(c->interfaces[0].mode, anychain::XdpMode::Native);
  EXPECT_TRUE(c->interfaces[1].classify);
  EXPECT_EQ(c->ospf.local_port, 4000);
  EXPECT_EQ(c->ospf.opaque_type, 200);
  EXPECT_DOUBLE_EQ(c->timers.cost_damping, 0.05);
  EXPECT_EQ(c->wcmp.policy, cfg::WcmpPolicy::Bottleneck);
  EXPECT_EQ(c->wcmp.include_links, std::optional<bool>(true));
  EXPECT_EQ(c->wcmp.hold_down_ms, std::optional<uint32_t>(8000));
  EXPECT_FALSE(c->wcmp.floor.has_value());
  EXPECT_EQ(c->timers.monitor_interval, 1s);
  ASSERT_EQ(c->services.size(), 3u);
  EXPECT_EQ(c->services[2].anycast, "10.100.0.3/32");
  ASSERT_EQ(c->chains.size(), 2u);
  EXPECT_EQ(c->chains[0].services, (std::vector<std::string>{"fw", "ids"}));
  ASSERT_EQ(c->policies.size(), 3u);
  EXPECT_EQ(c->policies[0].proto, 6);
  EXPECT_EQ(c->policies[0].dport_lo, 80);
  EXPECT_EQ(c->policies[0].dport_hi, 80);
  EXPECT_EQ(c->policies[0].symmetric, std::optional<bool>(true));
  EXPECT_EQ(c->policies[1].dport_lo, 1024);
  EXPECT_EQ(c->policies[1].dport_hi, 65535);
  EXPECT_EQ(c->policies[1].md_type, 2);
  EXPECT_FALSE(c->policies[2].symmetric.has_value());
  ASSERT_EQ(c->instances.size(), 2u);
  EXPECT_EQ(c->instances[0].mac, (std::optional<anychain::Mac>(anychain::Mac{2, 0, 0, 0, 1, 1})));
  EXPECT_FALSE(c->instances[1].mac.has_value());
  EXPECT_FALSE(c->instances[1].nsh_aware);
  EXPECT_EQ(c->instances[1].cgroup, "/sys/fs/cgroup/vnf/ids-a");
  EXPECT_EQ(c->instances[0].mark.line, 79);  // "- name: fw-a"
  EXPECT_FALSE(c->node.oam_forward);
  EXPECT_TRUE(c->node.slow_path);
  EXPECT_EQ(c->node.inner_mtu, 1500);
}

TEST(Config, UnknownWcmpPolicyAndParamAreErrorsWithTheirLine) {
  auto d = errors_of(kMinimal +
                     "wcmp:\n"                // 3
                     "  policy: fastest\n"    // 4
                     "  params:\n"            // 5
                     "    min_weight: 0.1\n"  // 6
                     "    hold_down_ms: 100\n");
  auto l = lines(d);
  ASSERT_EQ(l.size(), 2u);
  EXPECT_EQ(l[0].first, 4);
  EXPECT_THAT(l[0].second, HasSubstr("unknown policy 'fastest'"));
  EXPECT_EQ(l[1].first, 6);
  EXPECT_THAT(l[1].second, HasSubstr("wcmp.params: unknown key 'min_weight' (expected one of: include_links, floor, "
                                     "inverse_scale, cost_range, hold_down_ms)"));
}

// Every WCMP parameter value is checked when the file is parsed, at its line:column: the
// daemon maps them without checking again, so --check-config and the daemon agree.
TEST(Config, WcmpParamValuesAreCheckedWithTheirLineAndColumn) {
  auto d = errors_of(kMinimal +
                     "wcmp:\n"                        // 3
                     "  params:\n"                    // 4
                     "    floor: lots\n"              // 5
                     "    include_links: maybe\n"     // 6
                     "    hold_down_ms: -5\n"         // 7
                     "    inverse_scale: 4294967296\n"  // 8 (2^32)
                     "    cost_range: [1]\n"          // 9
                     "    floor: 2\n");               // 10 duplicate
  ASSERT_EQ(d.size(), 6u) << [&] { std::ostringstream os; cfg::print(os, d); return os.str(); }();
  EXPECT_EQ(d[0].str(), "t.yaml:5:12: error: wcmp.params: 'floor' must be an integer, got 'lots'");
  EXPECT_EQ(d[1].str(), "t.yaml:6:20: error: wcmp.params: 'include_links' must be true or false, got 'maybe'");
  EXPECT_EQ(d[2].str(), "t.yaml:7:19: error: wcmp.params: 'hold_down_ms' must be an integer, got '-5'");
  EXPECT_EQ(d[3].str(), "t.yaml:8:20: error: wcmp.params: 'inverse_scale' = 4294967296 out of range 0..4294967295");
  EXPECT_EQ(d[4].str(), "t.yaml:9:17: error: wcmp.params: 'cost_range' must be an integer, got a list");
  EXPECT_EQ(d[5].str(), "t.yaml:10:5: error: wcmp.params: duplicate key 'floor'");

  d = errors_of(kMinimal + "wcmp: {params: [floor]}\n");
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].str(), "t.yaml:3:16: error: wcmp.params: expected a map, got a list");

  auto c = cfg::parse(kMinimal +
                      "wcmp:\n"
                      "  policy: inverse-cost\n"
                      "  params: {include_links: no, floor: 0, inverse_scale: 4294967295, cost_range: 160, "
                      "hold_down_ms: 0}\n");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->wcmp, (cfg::Wcmp{cfg::WcmpPolicy::InverseCost, false, 0u, 4294967295u, 160u, 0u}));
  c = cfg::parse(kMinimal + "wcmp: {params: }\n");  // an empty params key is no params
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->wcmp, cfg::Wcmp{});
}

TEST(Config, WcmpPolicyNames) {
  for (auto [name, policy] : {std::pair{"bottleneck", cfg::WcmpPolicy::Bottleneck},
                              std::pair{"bottleneck-residual", cfg::WcmpPolicy::Bottleneck},
                              std::pair{"inverse-cost", cfg::WcmpPolicy::InverseCost},
                              std::pair{"ecmp", cfg::WcmpPolicy::Ecmp}}) {
    auto c = cfg::parse(kMinimal + "wcmp: {policy: " + name + "}\n");
    ASSERT_TRUE(c.has_value()) << name;
    EXPECT_EQ(c->wcmp.policy, policy) << name;
    // written back under its canonical name, which parses to the same policy
    auto again = cfg::parse(cfg::to_yaml(*c));
    ASSERT_TRUE(again.has_value());
    EXPECT_EQ(again->wcmp.policy, policy);
  }
  EXPECT_EQ(cfg::to_string(cfg::WcmpPolicy::Bottleneck), "bottleneck");
  EXPECT_FALSE(cfg::parse_wcmp_policy("fastest").has_value());
}

TEST(Config, Defaults) {
  auto c = cfg::parse(kMinimal);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->node.pin_root, "/sys/fs/bpf/anychain");
  EXPECT_EQ(c->ospf.address, "127.0.0.1");
  EXPECT_EQ(c->ospf.port, 2607);
  EXPECT_EQ(c->ospf.opaque_type, 200);
  EXPECT_EQ(c->ospf.area, "0.0.0.0");
  EXPECT_EQ(c->timers.spf_delay, 50ms);
  EXPECT_EQ(c->timers.spf_hold, 200ms);
  EXPECT_EQ(c->timers.announce_interval, 2s);
  EXPECT_EQ(c->timers.monitor_interval, 1s);
  EXPECT_DOUBLE_EQ(c->timers.cost_damping, 0.05);
  EXPECT_EQ(c->wcmp, cfg::Wcmp{});  // bottleneck, every parameter the agent's default
  EXPECT_FALSE(c->node.oam_forward) << "RFC 8300 sec. 2.2: an SFF without OAM support SHOULD discard";
  EXPECT_TRUE(c->node.slow_path);
  EXPECT_EQ(c->node.inner_mtu, 1500);
}

// RFC 8300 edges and the slow path: node.oam, node.slow_path, node.inner_mtu, each checked at
// its line and kept through a save.
TEST(Config, OamSlowPathAndInnerMtu) {
  auto c = cfg::parse("node:\n  nsh_endpoint: 10.0.0.1\n  oam: forward\n  slow_path: false\n  inner_mtu: 9000\n");
  ASSERT_TRUE(c.has_value());
  EXPECT_TRUE(c->node.oam_forward);
  EXPECT_FALSE(c->node.slow_path);
  EXPECT_EQ(c->node.inner_mtu, 9000);
  auto again = cfg::parse(cfg::to_yaml(*c));
  ASSERT_TRUE(again.has_value());
  EXPECT_TRUE(again->node.oam_forward);
  EXPECT_FALSE(again->node.slow_path);
  EXPECT_EQ(again->node.inner_mtu, 9000);
  auto d = errors_of("node:\n  nsh_endpoint: 10.0.0.1\n  oam: keep\n  slow_path: sometimes\n  inner_mtu: 40\n");
  auto got = lines(d);
  ASSERT_EQ(got.size(), 3u) << ::testing::PrintToString(got);
  EXPECT_EQ(got[0], (std::pair<int, std::string>{3, "node: oam 'keep' must be drop or forward"}));
  EXPECT_EQ(got[1].first, 4);
  EXPECT_THAT(got[1].second, HasSubstr("'slow_path' must be true or false"));
  EXPECT_EQ(got[2], (std::pair<int, std::string>{5, "node: 'inner_mtu' = 40 out of range 68..65535"}));
}

// ac_affinity's size (issue 15): its own key beside flow_cache_entries, range-checked, kept
// through a save.
TEST(Config, AffinityEntries) {
  auto c = cfg::parse("node:\n  nsh_endpoint: 10.0.0.1\n  flow_cache_entries: 4096\n  affinity_entries: 500000\n");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->node.flow_cache_entries, 4096u);
  EXPECT_EQ(c->node.affinity_entries, 500000u);
  auto again = cfg::parse(cfg::to_yaml(*c));
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->node.affinity_entries, 500000u);
  auto got = lines(errors_of("node:\n  nsh_endpoint: 10.0.0.1\n  affinity_entries: 100\n"));
  ASSERT_EQ(got.size(), 1u) << ::testing::PrintToString(got);
  EXPECT_EQ(got[0], (std::pair<int, std::string>{3, "node: 'affinity_entries' = 100 out of range 1024..16777216"}));
}

TEST(Config, EveryErrorWithItsLine) {
  const std::string yaml =
      "node:\n"                              // 1
      "  nsh_endpoint: 10.0.0.1\n"           // 2
      "  colour: blue\n"                     // 3  unknown key
      "  nsh_ttl: many\n"                    // 4  wrong type
      "services:\n"                          // 5
      "  - name: fw\n"                       // 6
      "    id: 1\n"                          // 7
      "    anycast: 10.100.0.1/33\n"         // 8  bad prefix
      "  - name: ids\n"                      // 9
      "    id: 2\n"                          // 10
      "    anycast: 10.100.0.2/32\n"         // 11
      "chains:\n"                            // 12
      "  - name: a\n"                        // 13
      "    spi: 10\n"                        // 14
      "    services: [ids]\n"                // 15
      "  - name: b\n"                        // 16 duplicate SPI
      "    spi: 10\n"                        // 17
      "    services: [ids, nat]\n"           // 18 (nat unknown: reported at the chain, line 16)
      "policies:\n"                          // 19
      "  - name: p1\n"                       // 20 unknown chain
      "    chain: nope\n"                    // 21
      "    proto: tcp\n"                     // 22
      "  - {name: p2, chain: a, proto: tcp, dport: 90-80}\n"  // 23 bad port range
      "instances:\n"                         // 24
      "  - name: i1\n"                       // 25
      "    id: 7\n"                          // 26
      "    service: ids\n"                   // 27
      "    veth: v1\n"                       // 28
      "    capacity: 1000\n"                 // 29
      "  - name: i2\n"                       // 30 duplicate id
      "    id: 7\n"                          // 31
      "    service: ids\n"                   // 32
      "    veth: v2\n"                       // 33
      "    capacity: 1000\n"                 // 34
      "    mac: 02:00:00:00:00\n";           // 35 bad MAC
  auto d = errors_of(yaml);
  auto got = lines(d);
  auto has = [&](int line, const std::string& text) {
    return std::any_of(got.begin(), got.end(),
                       [&](const auto& e) { return e.first == line && e.second.find(text) != std::string::npos; });
  };
  EXPECT_TRUE(has(3, "unknown key 'colour'"));
  EXPECT_TRUE(has(4, "'nsh_ttl' must be an integer"));
  EXPECT_TRUE(has(8, "bad prefix length"));
  EXPECT_TRUE(has(16, "duplicate SPI 10 (first at line 13)"));
  EXPECT_TRUE(has(16, "unknown service 'nat'"));
  EXPECT_TRUE(has(20, "unknown chain 'nope'"));
  EXPECT_TRUE(has(23, "bad dport '90-80'"));
  EXPECT_TRUE(has(35, "bad MAC"));
  // i2 is rejected for its MAC, so its duplicate id is not checked; i1 alone is fine
  EXPECT_EQ(got.size(), 8u) << ::testing::PrintToString(got);
  // sorted by position, each with file:line:col
  for (size_t i = 1; i < d.size(); ++i) EXPECT_LE(d[i - 1].mark.line, d[i].mark.line);
  EXPECT_EQ(d[0].str(), "t.yaml:3:3: error: node: unknown key 'colour' (expected one of: nsh_endpoint, pin_root, "
                        "flow_cache_entries, affinity_entries, flow_timeout_s, symmetric_hash, nsh_ttl, oam, slow_path, inner_mtu)");
}

TEST(Config, DuplicateInstanceIdsAndNames) {
  auto d = errors_of(kMinimal +
                     "services: [{name: fw, id: 1, anycast: 10.1.0.1}]\n"  // 3
                     "instances:\n"                                          // 4
                     "  - {name: a, id: 5, service: fw, veth: va, capacity: 10}\n"   // 5
                     "  - {name: b, id: 5, service: fw, veth: vb, capacity: 10}\n"   // 6
                     "  - {name: a, id: 6, service: fw, veth: vc, capacity: 10}\n"   // 7
                     "  - {name: c, id: 8, service: dns, veth: va, capacity: 10}\n"); // 8
  auto got = lines(d);
  ASSERT_EQ(got.size(), 4u) << ::testing::PrintToString(got);
  EXPECT_EQ(got[0].first, 6);
  EXPECT_THAT(got[0].second, HasSubstr("duplicate instance id 5 (first at line 5)"));
  EXPECT_EQ(got[1].first, 7);
  EXPECT_THAT(got[1].second, HasSubstr("duplicate instance name 'a'"));
  EXPECT_EQ(got[2].first, 8);
  EXPECT_EQ(got[3].first, 8);
  EXPECT_THAT(got[2].second + got[3].second, HasSubstr("veth 'va' already belongs"));
  EXPECT_THAT(got[2].second + got[3].second, HasSubstr("unknown service 'dns'"));
}

TEST(Config, WrongTypesAndRanges) {
  auto d = errors_of(
      "node: {nsh_endpoint: 10.0.0.300}\n"                             // 1 bad address
      "interfaces: {name: eth0}\n"                                      // 2 map instead of list
      "ospf: {opaque_type: 10, port: 70000, area: 0}\n"                 // 3 three errors
      "timers: {cost_damping: 2, spf_delay_ms: -1}\n"                   // 4
      "services:\n"                                                     // 5
      "  - {name: fw, id: 1024, anycast: 2001:db8::1}\n"               // 6 id range, not IPv4
      "  - [fw]\n"                                                      // 7 not a map
      "chains:\n"                                                       // 8
      "  - {name: c, spi: 16777216, services: fw}\n"                   // 9 spi range, services not a list
      "policies:\n"                                                     // 10
      "  - {name: p, chain: c, proto: gre, symmetric: maybe, md_type: 3, sport: 80}\n");  // 11
  auto got = lines(d);
  std::map<int, int> per_line;
  for (const auto& [l, m] : got) ++per_line[l];
  EXPECT_EQ(per_line[1], 1);
  EXPECT_EQ(per_line[2], 1);
  EXPECT_EQ(per_line[3], 3);
  EXPECT_EQ(per_line[4], 2);
  EXPECT_EQ(per_line[6], 2);
  EXPECT_EQ(per_line[7], 1);
  EXPECT_EQ(per_line[9], 2);
  EXPECT_EQ(per_line[11], 4);  // proto, symmetric, md_type, sport without tcp/udp
  EXPECT_EQ(got.size(), 16u) << ::testing::PrintToString(got);
}

TEST(Config, MissingRequiredAndSyntax) {
  auto d = errors_of("node: {}\nservices: [{name: fw}]\n");
  auto got = lines(d);
  ASSERT_EQ(got.size(), 3u) << ::testing::PrintToString(got);
  EXPECT_THAT(got[0].second, HasSubstr("missing required key 'nsh_endpoint'"));
  EXPECT_EQ(got[1].first, 2);
  EXPECT_THAT(got[1].second + got[2].second, HasSubstr("missing required key 'id'"));
  EXPECT_THAT(got[1].second + got[2].second, HasSubstr("missing required key 'anycast'"));

  d = errors_of("node:\n  nsh_endpoint: [1\n");
  ASSERT_EQ(d.size(), 1u);
  EXPECT_THAT(d[0].message, HasSubstr("YAML syntax"));
  EXPECT_GE(d[0].mark.line, 2);

  d = errors_of("");
  ASSERT_EQ(d.size(), 1u);
  EXPECT_THAT(d[0].message, HasSubstr("empty"));

  d = errors_of(kMinimal + "node:\n  nsh_ttl: 3\n");  // a key twice
  ASSERT_GE(d.size(), 1u);
  EXPECT_THAT(d[0].str(), HasSubstr("duplicate key 'node'"));
}

TEST(Config, RoundTrip) {
  auto a = cfg::load_file(kExample);
  ASSERT_TRUE(a.has_value());
  std::string text = cfg::to_yaml(*a);
  auto b = cfg::parse(text);
  ASSERT_TRUE(b.has_value()) << text;
  EXPECT_EQ(cfg::to_yaml(*b), text);
  EXPECT_EQ(b->node.nsh_endpoint, a->node.nsh_endpoint);
  EXPECT_EQ(b->timers, a->timers);
  EXPECT_EQ(b->wcmp, a->wcmp);
  ASSERT_EQ(b->policies.size(), a->policies.size());
  for (size_t i = 0; i < a->policies.size(); ++i) {
    const auto &p = a->policies[i], &q = b->policies[i];
    EXPECT_EQ(std::tie(p.name, p.chain, p.src, p.dst, p.proto, p.sport_lo, p.sport_hi, p.dport_lo, p.dport_hi,
                       p.symmetric, p.md_type),
              std::tie(q.name, q.chain, q.src, q.dst, q.proto, q.sport_lo, q.sport_hi, q.dport_lo, q.dport_hi,
                       q.symmetric, q.md_type));
  }
  ASSERT_EQ(b->instances.size(), a->instances.size());
  for (size_t i = 0; i < a->instances.size(); ++i) {
    const auto &p = a->instances[i], &q = b->instances[i];
    EXPECT_EQ(std::tie(p.name, p.id, p.service, p.veth, p.mac, p.capacity, p.nsh_aware, p.pid_file, p.cgroup),
              std::tie(q.name, q.id, q.service, q.veth, q.mac, q.capacity, q.nsh_aware, q.pid_file, q.cgroup));
  }
  EXPECT_EQ(b->chains[1].services, a->chains[1].services);
  EXPECT_EQ(b->interfaces[0].mode, a->interfaces[0].mode);
}

TEST(Config, CheckInterfacesAndCheckFile) {
  auto dir = temp_dir();
  std::string path = (dir / "check.yaml").string();
  std::ofstream(path) << kMinimal
                      << "interfaces:\n"              // 3
                         "  - name: lo\n"             // 4 exists everywhere
                         "  - name: nosuchif0\n"      // 5
                         "services: [{name: fw, id: 1, anycast: 10.1.0.1}]\n"
                         "instances:\n"
                         "  - {name: a, id: 5, service: fw, veth: nosuchveth0, capacity: 10}\n";  // 8
  auto d = cfg::check_file(path);
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0].str(), path + ":5:5: error: interface 'nosuchif0' does not exist");
  EXPECT_EQ(d[1].str(), path + ":8:5: error: instance 'a': veth 'nosuchveth0' does not exist");

  // parse errors come first and stop there
  std::ofstream(path) << kMinimal << "bogus: 1\n";
  d = cfg::check_file(path);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].str(), path + ":3:1: error: config: unknown key 'bogus' (expected one of: node, interfaces, ospf, "
                               "timers, wcmp, nf, ftc, state, services, chains, policies, instances)");

  d = cfg::check_file((dir / "missing.yaml").string());
  ASSERT_EQ(d.size(), 1u);
  EXPECT_THAT(d[0].str(), HasSubstr("cannot read"));
  std::filesystem::remove_all(dir);
}

TEST(Config, SaveFileIsAtomicAndKeepsMode) {
  auto dir = temp_dir();
  std::string path = (dir / "saved.yaml").string();
  auto c = cfg::load_file(kExample);
  ASSERT_TRUE(c.has_value());
  std::ofstream(path) << "old\n";
  ASSERT_EQ(chmod(path.c_str(), 0640), 0);
  ASSERT_TRUE(cfg::save_file(*c, path).has_value());
  EXPECT_EQ(read(path), cfg::to_yaml(*c));
  struct stat st{};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
  // no temporary file left behind
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) files += e.is_regular_file();
  EXPECT_EQ(files, 1);
  auto back = cfg::load_file(path);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->instances.size(), 2u);

  auto bad = cfg::save_file(*c, (dir / "no/such/dir/x.yaml").string());
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, ENOENT);
  std::filesystem::remove_all(dir);
}
