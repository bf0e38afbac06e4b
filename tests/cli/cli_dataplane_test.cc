// `anychain flows/stats --json` and direct attach/detach against a real, sandboxed fast path
// (private netns + bpffs, tests/bpf/fastpath_fixture): frames run through the program fill the
// flow cache and counters, then the CLI runs as a subprocess with --pin-root and its JSON is
// checked against what the dataplane library reads. Needs root.
#include <bpf/bpf.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <linux/if_ether.h>
#include <net/if.h>

#include <algorithm>
#include <map>

#include "bpf/fastpath_fixture.h"
#include "dataplane/reasons.h"
#include "test_support.h"

using namespace anychain::test;
using ::testing::HasSubstr;
using json = nlohmann::json;

namespace {

const std::string kPinRoot = AC_PIN_ROOT;  // where FastPathEnv's dataplane pins, inside the sandbox

CliResult cli(std::vector<std::string> args) {
  args.insert(args.end(), {"--socket", "/nonexistent/anychaind.sock"});  // never a host daemon
  return run_cli(ANYCHAIN_CLI_BIN, args);
}

// Classify n UDP flows (distinct source ports) to chain 100 on src0; returns their hashes.
std::vector<uint32_t> send_flows(int n, uint16_t base_port) {
  std::vector<uint32_t> hashes;
  for (int i = 0; i < n; ++i) {
    L4 l4;
    l4.sport = static_cast<uint16_t>(base_port + i);
    Bytes f = eth(kSrc0, kSrcHost, ETH_P_IP);
    append(f, ipv4("192.168.1.10", "203.0.113.10", l4));
    auto r = run_prog(FastPathEnv::dataplane().prog_fd(), "src0", f);
    EXPECT_EQ(r.verdict, XDP_REDIRECT);
    hashes.push_back(flow_hash("192.168.1.10", "203.0.113.10", l4));
  }
  return hashes;
}

// The JSON section of each kind of counter slot.
const char* section_of(anychain::dataplane::StatKind k) {
  switch (k) {
    case anychain::dataplane::StatKind::Verdict: return "verdicts";
    case anychain::dataplane::StatKind::Drop: return "drops";
    case anychain::dataplane::StatKind::Note: return "notes";
  }
  return "?";
}

// The JSON entry of one ac_stats slot (entries are listed by kind, not indexed by slot).
const json& reason(const json& stats, uint32_t slot) {
  for (const char* key : {"verdicts", "drops", "notes"})
    for (const auto& e : stats[key])
      if (e["id"].get<uint32_t>() == slot) return e;
  throw std::runtime_error("no reason with id " + std::to_string(slot));
}

TEST(CliDataplane, FlowsJson) {
  ASSERT_TRUE(FastPathEnv::dataplane().flush_flows().has_value());
  auto hashes = send_flows(5, 20000);
  auto r = cli({"flows", "--json", "--pin-root", kPinRoot});
  ASSERT_EQ(r.rc, 0) << r.err;
  json j = json::parse(r.out);
  ASSERT_TRUE(j.is_array());
  std::set<std::string> want, got;
  for (uint32_t h : hashes) {
    char b[16];
    std::snprintf(b, sizeof b, "0x%08x", h);
    want.insert(b);
  }
  for (const auto& e : j) {
    EXPECT_EQ(e["spi"], 100);
    EXPECT_EQ(e["si"], 255);
    EXPECT_EQ(e["instance"], kInstLocal);
    EXPECT_GE(e["generation"].get<uint32_t>(), 1u);
    EXPECT_GE(e["age_s"].get<double>(), 0.0);
    EXPECT_LT(e["age_s"].get<double>(), 60.0);
    EXPECT_EQ(e["cpus"], 1);
    got.insert(e["hash"].get<std::string>());
  }
  EXPECT_EQ(got, want);

  // the same entries as the library decodes
  auto lib = FastPathEnv::dataplane().flows();
  ASSERT_TRUE(lib.has_value());
  EXPECT_EQ(lib->size(), j.size());

  r = cli({"flows", "--json", "--pin-root", kPinRoot, "--limit", "2"});
  ASSERT_EQ(r.rc, 0);
  EXPECT_EQ(json::parse(r.out).size(), 2u);
  r = cli({"flows", "--json", "--pin-root", kPinRoot, "--spi", "200"});
  ASSERT_EQ(r.rc, 0);
  EXPECT_EQ(json::parse(r.out).size(), 0u);
  r = cli({"flows", "--pin-root", kPinRoot, "--spi", "100"});
  ASSERT_EQ(r.rc, 0);
  EXPECT_THAT(r.out, HasSubstr("SPI  SI   HASH        INSTANCE  GEN  AGE"));
  EXPECT_THAT(r.out, HasSubstr("5 flows\n"));
}

TEST(CliDataplane, StatsJson) {
  send_flows(3, 21000);
  auto lib = FastPathEnv::dataplane().stats();
  ASSERT_TRUE(lib.has_value());
  auto r = cli({"stats", "--json", "--pin-root", kPinRoot});
  ASSERT_EQ(r.rc, 0) << r.err;
  json j = json::parse(r.out);
  // each slot once, in the section of its kind, in the library's order; verdicts and drops sum
  // to the outcomes, notes do not
  auto names = anychain::dataplane::stat_reasons();
  std::map<std::string, size_t> next;
  uint64_t outcomes = 0;
  for (const auto& n : names) {
    const char* key = section_of(n.kind);
    ASSERT_LT(next[key], j[key].size()) << key;
    const json& e = j[key][next[key]++];
    EXPECT_EQ(e["reason"], n.name);
    EXPECT_EQ(e["id"].get<uint32_t>(), n.slot);
    EXPECT_EQ(e["packets"].get<uint64_t>(), (*lib)[n.slot].packets) << n.name;
    EXPECT_EQ(e["bytes"].get<uint64_t>(), (*lib)[n.slot].bytes);
    if (n.kind != anychain::dataplane::StatKind::Note) outcomes += e["packets"].get<uint64_t>();
  }
  for (const char* key : {"verdicts", "drops", "notes"}) EXPECT_EQ(next[key], j[key].size()) << key;
  EXPECT_EQ(j["outcomes"]["packets"].get<uint64_t>(), outcomes);
  EXPECT_GE(reason(j, AC_NOTE_CLASSIFIED)["packets"].get<uint64_t>(), 3u);
  EXPECT_EQ(j.count("reasons"), 0u);
  // per (SPI, SI): every fixture path, counters equal to the library's
  std::set<std::pair<int, int>> paths;
  for (const auto& p : j["paths"]) {
    paths.insert({p["spi"].get<int>(), p["si"].get<int>()});
    auto c = FastPathEnv::dataplane().path_stats(p["spi"].get<uint32_t>(), p["si"].get<uint8_t>());
    ASSERT_TRUE(c.has_value());
    EXPECT_EQ(p["packets"].get<uint64_t>(), c->packets);
    EXPECT_EQ(p["last_hop"].get<bool>(), p["service_id"] == 0);
  }
  EXPECT_EQ(paths, (std::set<std::pair<int, int>>{{100, 255}, {100, 254}, {100, 253}, {200, 255}, {200, 254}, {300, 255}}));
  EXPECT_GE(j["paths"][0]["packets"].get<uint64_t>(), 3u);  // 100:255 sorts first

  r = cli({"stats", "--pin-root", kPinRoot});
  ASSERT_EQ(r.rc, 0);
  EXPECT_THAT(r.out, HasSubstr("classified"));
  EXPECT_THAT(r.out, HasSubstr("fwd_local_nsh"));
  EXPECT_THAT(r.out, ::testing::Not(HasSubstr("drop_gpe_flags")));  // zero: hidden without --all
  EXPECT_THAT(cli({"stats", "--all", "--pin-root", kPinRoot}).out, HasSubstr("drop_gpe_flags"));
}

TEST(CliDataplane, StatsWatchGivesRates) {
  // traffic while the CLI samples: a thread keeps classifying
  std::atomic<bool> stop{false};
  std::thread gen([&] {
    uint16_t port = 30000;
    while (!stop) {
      L4 l4;
      l4.sport = port++;
      Bytes f = eth(kSrc0, kSrcHost, ETH_P_IP);
      append(f, ipv4("192.168.1.10", "203.0.113.10", l4));
      run_prog(FastPathEnv::dataplane().prog_fd(), "src0", f);
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  auto r = cli({"stats", "--json", "--watch", "0.3", "--count", "2", "--pin-root", kPinRoot});
  stop = true;
  gen.join();
  ASSERT_EQ(r.rc, 0) << r.err;
  std::istringstream in(r.out);
  std::vector<json> samples;
  for (std::string line; std::getline(in, line);) samples.push_back(json::parse(line));
  ASSERT_EQ(samples.size(), 2u);
  for (const auto& s : samples) {
    double pps = reason(s, AC_NOTE_CLASSIFIED)["pps"].get<double>();
    EXPECT_GT(pps, 10.0);
    EXPECT_LT(pps, 1e6);
    EXPECT_EQ(reason(s, AC_DROP_TTL)["pps"].get<double>(), 0.0);
    EXPECT_GT(s["paths"][0]["pps"].get<double>(), 10.0);
  }
}

TEST(CliDataplane, MissingPinRootIsARuntimeError) {
  auto r = cli({"flows", "--json", "--pin-root", "/sys/fs/bpf/nothing-here"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_THAT(r.err, HasSubstr("no anychain map pinned at /sys/fs/bpf/nothing-here/ac_stats"));
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(cli({"stats", "--pin-root", "/sys/fs/bpf/nothing-here"}).rc, 1);
}

TEST(CliDataplane, DirectAttachDetachWithoutDaemon) {
  auto r = cli({"attach", "vnf0", "--mode", "generic", "--json", "--pin-root", kPinRoot});
  ASSERT_EQ(r.rc, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["via"], "dataplane");
  EXPECT_EQ(j["ifname"], "vnf0");
  EXPECT_EQ(j["mode"], "generic");
  EXPECT_GT(j["prog_id"].get<uint32_t>(), 0u);
  auto att = anychain::dataplane::Dataplane::attached({"vnf0"});
  ASSERT_TRUE(att.has_value());
  ASSERT_EQ(att->size(), 1u);
  EXPECT_EQ((*att)[0].prog_id, j["prog_id"].get<uint32_t>());

  r = cli({"attach", "vnf0", "--mode", "native", "--pin-root", kPinRoot});  // already there in generic mode
  EXPECT_EQ(r.rc, 1);
  EXPECT_THAT(r.err, HasSubstr("already attached to vnf0 in generic mode"));

  r = cli({"detach", "vnf0"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out, "detached from vnf0\n");
  att = anychain::dataplane::Dataplane::attached({"vnf0"});
  ASSERT_TRUE(att.has_value());
  EXPECT_TRUE(att->empty());
  r = cli({"detach", "vnf0"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_THAT(r.err, HasSubstr("anychain is not attached to vnf0"));

  r = cli({"attach", "nosuch0", "--pin-root", kPinRoot});
  EXPECT_EQ(r.rc, 1);
  EXPECT_THAT(r.err, HasSubstr("interface 'nosuch0' does not exist"));
}

// Without a daemon, --classify goes through the daemon's own attach_interface(): the
// interface gets the classifier role with its MAC in the fast path's interface table.
TEST(CliDataplane, DirectAttachWithClassifyGivesTheInterfaceItsRole) {
  uint32_t idx = if_nametoindex("vnf0");
  ASSERT_NE(idx, 0u);
  int fd = FastPathEnv::dataplane().map_fd(idx < AC_IFACE_DIRECT ? "ac_ifaces" : "ac_ifaces_hi");
  ac_iface before{}, v{};
  ASSERT_EQ(bpf_map_lookup_elem(fd, &idx, &before), 0);
  EXPECT_EQ(before.flags & AC_IF_CLASSIFY, 0u);

  auto r = cli({"attach", "vnf0", "--mode", "generic", "--classify", "--pin-root", kPinRoot});
  ASSERT_EQ(r.rc, 0) << r.err;
  ASSERT_EQ(bpf_map_lookup_elem(fd, &idx, &v), 0);
  EXPECT_EQ(v.flags, AC_IF_CLASSIFY | AC_IF_ATTACHED);
  EXPECT_EQ(v.instance_id, 0u);
  EXPECT_TRUE(std::equal(kVnf0Host.begin(), kVnf0Host.end(), v.mac));
  EXPECT_EQ(cli({"detach", "vnf0"}).rc, 0);
  ASSERT_EQ(bpf_map_update_elem(fd, &idx, &before, BPF_ANY), 0);  // vnf0 is a VNF veth for the other tests
}

TEST(CliDataplane, ClearRefusals) {
  // no native XDP on a bridge
  ASSERT_EQ(sh("ip link add br9 type bridge && ip link set br9 up"), 0);
  auto r = cli({"attach", "br9", "--mode", "native", "--pin-root", kPinRoot});
  EXPECT_EQ(r.rc, 1);
  EXPECT_THAT(r.err, HasSubstr("br9 does not support native XDP; use --mode generic or --mode auto"));
  EXPECT_EQ(r.out, "");
  sh("ip link del br9");

  // not root: direct attach, detach and the pinned maps are refused with what to do
  const uid_t nobody = 65534;
  r = run_cli(ANYCHAIN_CLI_BIN, {"attach", "vnf0", "--socket", "/nonexistent/s.sock"}, nobody);
  EXPECT_EQ(r.rc, 1);
  EXPECT_THAT(r.err, HasSubstr("anychain needs root"));
  r = run_cli(ANYCHAIN_CLI_BIN, {"detach", "vnf0", "--socket", "/nonexistent/s.sock"}, nobody);
  EXPECT_EQ(r.rc, 1);
  EXPECT_THAT(r.err, HasSubstr("anychain needs root"));
  r = run_cli(ANYCHAIN_CLI_BIN, {"flows", "--pin-root", kPinRoot}, nobody);
  EXPECT_EQ(r.rc, 1);
  EXPECT_THAT(r.err, HasSubstr("reading anychain's maps needs root"));
}

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new FastPathEnv);
  return RUN_ALL_TESTS();
}
