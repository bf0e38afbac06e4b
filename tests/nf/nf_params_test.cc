// What anychain-nf runs with (agent/nf/params.h, docs/nf.md): the firewall rule's text form and
// its encoding for the program (both ways), the proto and port forms, each kind's checks, the
// command line the supervisor builds, and the published file's JSON.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <tuple>

#include "anychain/maps.h"
#include "nf/ftc_control.h"
#include "nf/loader.h"
#include "nf/params.h"
#include "nf/published.h"

namespace {

namespace nf = anychain::nf;

TEST(NfParams, RuleTextRoundTripsThroughTheProgramEncoding) {
  for (const char* text : {"drop", "pass src 10.1.0.0/16", "drop dst 192.0.2.1/32 proto udp dport 53",
                           "pass src fd00::/8 dst fd00:1::/64 proto tcp sport 1-1023 dport 443",
                           "drop src any4", "pass src any6 proto icmpv6", "drop proto 47", "pass proto icmp"}) {
    auto r = nf::parse_rule(text);
    ASSERT_TRUE(r.has_value()) << text << ": " << r.error().message;
    EXPECT_EQ(nf::to_text(*r), text);
    EXPECT_EQ(nf::to_text(nf::decode(nf::encode(*r))), text);
    EXPECT_TRUE(nf::decode(nf::encode(*r)) == *r) << text;
  }
  // "any" is either family; words in any order; accept is pass
  auto r = nf::parse_rule("accept dport 80 proto tcp src any");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(nf::to_text(*r), "pass proto tcp dport 80");
  EXPECT_EQ(nf::encode(*r).family, 0);
  // a family without an address: written on src whichever side it was given on
  EXPECT_TRUE(*nf::parse_rule("pass dst any6") == *nf::parse_rule("pass src any6"));
}

TEST(NfParams, RuleEncodingMasks) {
  auto r = nf::parse_rule("drop src 10.1.2.3/12 dst 2001:db8::/33");
  EXPECT_FALSE(r.has_value()) << "families differ";
  r = nf::parse_rule("drop src 10.1.2.3/12 proto udp sport 5-6");
  ASSERT_TRUE(r.has_value());
  ac_nf_fw_rule e = nf::encode(*r);
  EXPECT_EQ(e.family, 4);
  EXPECT_EQ(ntohl(e.src[0]), 0x0a000000u) << "the prefix masked";
  EXPECT_EQ(ntohl(e.src_mask[0]), 0xfff00000u);
  EXPECT_EQ(e.src_mask[1], 0u);
  EXPECT_EQ(e.dst_mask[0], 0u);
  EXPECT_EQ(e.action, AC_NF_FW_DROP);
  EXPECT_EQ(e.proto, 17);
  EXPECT_EQ(e.sport_lo, 5);
  EXPECT_EQ(e.sport_hi, 6);
  EXPECT_EQ(e.dport_hi, 65535);
  r = nf::parse_rule("pass dst 2001:db8:ff00::/40");
  ASSERT_TRUE(r.has_value());
  e = nf::encode(*r);
  EXPECT_EQ(e.family, 6);
  EXPECT_EQ(ntohl(e.dst_mask[0]), 0xffffffffu);
  EXPECT_EQ(ntohl(e.dst_mask[1]), 0xff000000u);
  EXPECT_EQ(ntohl(e.dst[1]), 0xff000000u & 0xff000000u);
}

TEST(NfParams, BadRulesAreRefusedWithTheReason) {
  struct Case {
    const char* text;
    const char* why;
  } cases[] = {
      {"", "empty"},
      {"reject", "the action must be pass or drop"},
      {"drop src", "'src' needs a value"},
      {"drop src 10.0.0.0/33", "prefix"},
      {"drop proto xyz", "bad protocol 'xyz'"},
      {"drop proto 256", "bad protocol"},
      {"drop dport 53", "sport and dport need proto tcp or udp"},
      {"drop proto tcp dport 90-80", "bad port range '90-80'"},
      {"drop proto tcp dport 1 dport 2", "'dport' given twice"},
      {"drop colour red", "unknown word 'colour'"},
  };
  for (const auto& c : cases) {
    auto r = nf::parse_rule(c.text);
    ASSERT_FALSE(r.has_value()) << c.text;
    EXPECT_NE(r.error().message.find(c.why), std::string::npos) << c.text << ": " << r.error().message;
  }
}

TEST(NfParams, ValidateAndTheCommandLine) {
  nf::Params p;
  p.kind = nf::Kind::Nat;
  p.instance_id = 3;
  EXPECT_FALSE(nf::validate(p).has_value()) << "a NAT needs its address";
  inet_pton(AF_INET, "192.0.2.10", &p.nat_address);
  p.nat_port_lo = 2000;
  p.nat_port_hi = 1000;
  EXPECT_FALSE(nf::validate(p).has_value()) << "lo > hi";
  p.nat_port_lo = 1000;
  p.nat_port_hi = 2000;
  p.idle_timeout_s = 300;
  ASSERT_TRUE(nf::validate(p).has_value());
  EXPECT_EQ(nf::to_args(p), (std::vector<std::string>{"--kind", "nat", "--instance-id", "3", "--idle-timeout", "300",
                                                       "--nat-address", "192.0.2.10", "--nat-ports", "1000-2000",
                                                       "--replica-records", "262144", "--reorder-wait-us", "1000"}));
  nf::Params f;
  f.kind = nf::Kind::Firewall;
  f.instance_id = 1;
  f.fw_rules.push_back(*nf::parse_rule("drop proto udp dport 53"));
  EXPECT_EQ(nf::to_args(f), (std::vector<std::string>{"--kind", "firewall", "--instance-id", "1", "--idle-timeout", "0",
                                                       "--default", "pass", "--rule", "drop proto udp dport 53",
                                                       "--replica-records", "262144", "--reorder-wait-us", "1000"}));
  f.fw_rules.resize(AC_NF_FW_RULES + 1, f.fw_rules[0]);
  EXPECT_FALSE(nf::validate(f).has_value()) << "65 rules";
  nf::Params m;
  m.kind = nf::Kind::Monitor;
  m.instance_id = 0;
  EXPECT_FALSE(nf::validate(m).has_value()) << "instance id 0";
  m.instance_id = AC_MAX_INSTANCES;
  EXPECT_FALSE(nf::validate(m).has_value());
  m.instance_id = 1;
  // the FTC limits (the config's ftc: replica_records, reorder_wait_us): the bad value named
  for (auto [records, wait, bad] : {std::tuple{0u, 1000u, "replica records 0"},
                                    std::tuple{nf::kReplicaRecordsMax + 1, 1000u, "replica records 4194305"},
                                    std::tuple{4096u, 0u, "reorder wait 0 us"},
                                    std::tuple{4096u, 1'000'000u, "reorder wait 1000000 us"}}) {
    m.replica_records = records;
    m.reorder_wait_us = wait;
    auto v = nf::validate(m);
    ASSERT_FALSE(v.has_value()) << bad;
    EXPECT_NE(v.error().message.find(bad), std::string::npos) << v.error().message;
    EXPECT_FALSE(nf::validate_ftc(m).has_value());
  }
  m.replica_records = nf::kReplicaRecordsMax;
  m.reorder_wait_us = 250;
  ASSERT_TRUE(nf::validate(m).has_value());
  EXPECT_EQ(nf::to_args(m), (std::vector<std::string>{"--kind", "monitor", "--instance-id", "1", "--idle-timeout", "0",
                                                       "--replica-records", "4194304", "--reorder-wait-us", "250"}));
  m.replica_records = nf::kReplicaRecordsDefault;
  m.reorder_wait_us = nf::kReorderWaitUsDefault;
  m.fw_rules.push_back(*nf::parse_rule("drop"));
  EXPECT_FALSE(nf::validate(m).has_value()) << "rules for a monitor";
  nf::Params ids;
  ids.kind = nf::Kind::Ids;
  ids.instance_id = 1;
  EXPECT_TRUE(nf::validate(ids).has_value()) << "the defaults";
  nf::Params rl;
  rl.kind = nf::Kind::Ratelimit;
  rl.instance_id = 1;
  auto v = nf::validate(rl);
  ASSERT_FALSE(v.has_value()) << "a rate limiter needs its limit";
  EXPECT_EQ(v.error().code, EINVAL);
  EXPECT_FALSE(nf::object_bytes(nf::Kind::Ids).empty());
  EXPECT_FALSE(nf::object_bytes(nf::Kind::Ratelimit).empty());
  EXPECT_FALSE(nf::object_bytes(nf::Kind::Nat).empty());
  EXPECT_EQ(nf::kind_names(), "nat, monitor, firewall, ids, ratelimit, replica");
  nf::Params rep;
  rep.kind = nf::Kind::Replica;
  rep.instance_id = 21;
  EXPECT_TRUE(nf::validate(rep).has_value());
  EXPECT_FALSE(nf::object_bytes(nf::Kind::Replica).empty());
  EXPECT_EQ(nf::info(nf::Kind::Replica).program, "nf_replica_hop");
  EXPECT_FALSE(nf::info(nf::Kind::Replica).stateful);
}

// The FTC control file (docs/nf.md, "FTC control"): a round trip, defaults, and every bad value
// refused with the key that is at fault.
TEST(NfParams, FtcControlRoundTripAndBadFiles) {
  nf::FtcControl c;
  c.f = 2;
  c.incarnation = 5;
  c.peers = {{7, 1, 60}, {9, 0, 0}};
  c.successors = {9, 12};
  auto back = nf::ftc_control_from_json(nf::to_json(c));
  ASSERT_TRUE(back.has_value()) << back.error().str();
  EXPECT_EQ(*back, c);
  auto dflt = nf::ftc_control_from_json(nlohmann::json::parse(R"({"peers": [{"id": 3}]})"));
  ASSERT_TRUE(dflt.has_value());
  EXPECT_EQ(dflt->f, 1);
  EXPECT_EQ(dflt->incarnation, 0);
  EXPECT_EQ(dflt->peers[0].idle_timeout_s, nf::kFtcDefaultPeerIdle);
  auto refused = [](const char* text) {
    auto r = nf::ftc_control_from_json(nlohmann::json::parse(text));
    return r ? std::string("accepted") : r.error().message;
  };
  EXPECT_THAT(refused(R"({"f": 5})"), ::testing::HasSubstr("f: 5 is out of range 1..4"));
  EXPECT_THAT(refused(R"({"incarnation": 256})"), ::testing::HasSubstr("incarnation: 256"));
  EXPECT_THAT(refused(R"({"peers": [{"id": 0}]})"), ::testing::HasSubstr("peers[0].id: 0 is out of range"));
  EXPECT_THAT(refused(R"({"peers": [{"id": 16384}]})"), ::testing::HasSubstr("peers[0].id"));
  EXPECT_THAT(refused(R"({"peers": [{"id": 4}, {"id": 4}]})"), ::testing::HasSubstr("peers[1].id: 4 listed twice"));
  EXPECT_THAT(refused(R"({"peers": [{"id": 4, "inc": 1}]})"), ::testing::HasSubstr("unknown key 'inc'"));
  EXPECT_THAT(refused(R"({"peers": [{"id": -4}]})"), ::testing::HasSubstr("peers[0].id: a number"));
  EXPECT_THAT(refused(R"({"successors": [1, "x"]})"), ::testing::HasSubstr("successors[1]"));
  EXPECT_THAT(refused(R"({"version": 2})"), ::testing::HasSubstr("version"));
  EXPECT_THAT(refused(R"({"colour": "red"})"), ::testing::HasSubstr("unknown key 'colour'"));
  EXPECT_THAT(refused(R"([1])"), ::testing::HasSubstr("not a JSON object"));
  const std::string path = ::testing::TempDir() + "/ftc-control-test/x.json";
  ASSERT_TRUE(nf::write_ftc_control(path, c).has_value());
  auto r = nf::read_ftc_control(path);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*r, c);
  std::filesystem::remove_all(::testing::TempDir() + "/ftc-control-test");
  EXPECT_FALSE(nf::read_ftc_control("/nonexistent/x.json").has_value());
  EXPECT_EQ(nf::ftc_control_path("/run/anychain/nf", "nat1"), "/run/anychain/nf/ftc/nat1.json");
}

TEST(NfParams, PublishedJsonRoundTripAndBadFiles) {
  nf::Published p;
  p.name = "nat1";
  p.kind = nf::Kind::Nat;
  p.instance_id = 3;
  p.pid = 42;
  p.incarnation = 1'700'000'000'123'456'789ULL;
  p.iface = "eth0";
  p.ifindex = 2;
  p.program = "nf_nat";
  p.prog_id = 10;
  p.link_id = 4;
  p.maps = {{"nf_head", 11}, {"nf_stats", 12}};
  p.progs = {{"nf_nat", 10}};
  auto back = nf::published_from_json(nf::to_json(p));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(nf::to_json(*back), nf::to_json(p));
  EXPECT_TRUE(nf::to_json(p)["crdt"].is_null());
  p.crdt.emplace();
  p.crdt->merge_prog_id = 20;
  p.crdt->ctl_map_id = 21;
  p.crdt->changes_map_id = 22;
  p.crdt->stats_map_id = 23;
  p.crdt->win_map_id = 24;
  p.crdt->window_s = 10;
  p.crdt->objects.push_back({3, "count-min", "ids_ports0", 16384, 0, 4, 0, 25});
  p.crdt->objects.push_back({5, "add-wins-set", "ids_flagged", 4096, 20, 0, -1, 26});
  back = nf::published_from_json(nf::to_json(p));
  ASSERT_TRUE(back && back->crdt);
  EXPECT_EQ(back->crdt->changes_map_id, 22u);
  EXPECT_EQ(back->crdt->win_map_id, 24u);
  EXPECT_EQ(back->crdt->window_s, 10u);
  EXPECT_EQ(back->crdt->objects, p.crdt->objects);
  EXPECT_EQ(nf::to_json(*back), nf::to_json(p));
  EXPECT_EQ(nf::to_json(p)["crdt"]["objects"][1]["generation"], -1);
  nlohmann::json j = nf::to_json(p);
  j.erase("prog_id");
  EXPECT_FALSE(nf::published_from_json(j).has_value());
  j = nf::to_json(p);
  j["kind"] = "router";
  EXPECT_FALSE(nf::published_from_json(j).has_value());
  EXPECT_FALSE(nf::read_published("/nonexistent/x.json").has_value());
}


// anychain-nf's warning about a full FTC store: the first refusal, then at most once a period while
// refusals continue (with the running count and the option that sizes the store), silent while
// the counters stand still.
TEST(StoreFullWatch, WarnsAtTheFirstRefusalThenAtMostOncePerPeriod) {
  using namespace std::chrono;
  nf::StoreFullWatch w(65536, 4, minutes(1));
  const auto t0 = steady_clock::time_point{} + hours(1);
  EXPECT_FALSE(w.update(0, 0, t0)) << "nothing refused";
  auto m = w.update(0, 2, t0 + seconds(1));
  ASSERT_TRUE(m);
  EXPECT_THAT(*m, ::testing::HasSubstr("replica store full: 2 logs"));
  EXPECT_THAT(*m, ::testing::HasSubstr("it holds 4 records"));
  EXPECT_THAT(*m, ::testing::HasSubstr("ftc.replica_records"));
  EXPECT_FALSE(w.update(0, 9, t0 + seconds(30))) << "not again within the period";
  m = w.update(0, 9, t0 + seconds(90));
  ASSERT_TRUE(m) << "refusals went on: once more after the period";
  EXPECT_THAT(*m, ::testing::HasSubstr("9 logs of predecessors refused so far (7 new"));
}

TEST(StoreFullWatch, NamesBothStoresAndStaysQuietWhenNothingMoves) {
  using namespace std::chrono;
  nf::StoreFullWatch w(1024, 4096, minutes(1));
  const auto t0 = steady_clock::time_point{} + hours(1);
  auto m = w.update(3, 0, t0);
  ASSERT_TRUE(m);
  EXPECT_THAT(*m, ::testing::HasSubstr("head store full: 3 transactions"));
  EXPECT_THAT(*m, ::testing::HasSubstr("1024 partitions"));
  EXPECT_FALSE(w.update(3, 0, t0 + minutes(5))) << "nothing new refused";
  m = w.update(5, 1, t0 + minutes(6));
  ASSERT_TRUE(m);
  EXPECT_THAT(*m, ::testing::HasSubstr("replica store full: 1 logs"));
  EXPECT_THAT(*m, ::testing::HasSubstr("head store full: 5 transactions refused so far (2 new"));
}

}  // namespace
