// Config of FTC (docs/config.md "ftc", docs/ftc.md): the top-level ftc: section, a chain's ftc:
// (true or a map), the defaults applied, every error at its line: f out of 1..4, fewer than f + 1
// FTC hops, an FTC chain's policy without MD type 2, unknown keys.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "config/config.h"
#include "config_helpers.h"

namespace cfg = anychain::config;
using namespace anychain::config::test;
using ::testing::HasSubstr;

namespace {

const std::string kFtcBase =
    "node:\n"                                        // 1
    "  nsh_endpoint: 10.0.0.1\n"                     // 2
    "services:\n"                                    // 3
    "  - {name: fw, id: 1, anycast: 10.100.0.1}\n"   // 4
    "  - {name: mon, id: 2, anycast: 10.100.0.2}\n"  // 5
    "  - {name: nat, id: 3, anycast: 10.100.0.3}\n"; // 6

std::string diag_text(const cfg::Diagnostics& d) {
  std::ostringstream o;
  cfg::print(o, d);
  return o.str();
}

TEST(ConfigFtc, ChainsAndDefaultsParseApplyAndRoundTrip) {
  const std::string yaml = kFtcBase +
                           "ftc:\n"                                              // 7
                           "  f: 2\n"                                            // 8
                           "  buffer: {frames: 1000, per_partition: 10}\n"       // 9
                           "  hold_timeout_ms: 500\n"                            // 10
                           "  port: 4800\n"                                      // 11
                           "  key_file: /etc/anychain/ftc.key\n"                 // 12
                           "  detect: {interval_ms: 50, misses: 4}\n"            // 13
                           "chains:\n"                                           // 14
                           "  - {name: c1, spi: 10, services: [fw, mon, nat], ftc: true}\n"
                           "  - {name: c2, spi: 11, services: [mon, nat], ftc: {f: 1, propagate_after_ms: 5}}\n"
                           "  - {name: c3, spi: 12, services: [nat]}\n"
                           "policies:\n"
                           "  - {name: p1, chain: c1, dst: 10.2.0.0/16, md_type: 2}\n"
                           "  - {name: p2, chain: c3, dst: 10.3.0.0/16}\n";
  auto c = cfg::parse(yaml, "t.yaml");
  ASSERT_TRUE(c.has_value()) << diag_text(c.error());
  EXPECT_EQ(c->ftc.port, 4800);
  EXPECT_EQ(c->ftc.key_file, "/etc/anychain/ftc.key");
  EXPECT_EQ(c->ftc.detect_interval_ms, 50u);
  EXPECT_EQ(c->ftc.detect_misses, 4u);
  auto f1 = c->ftc_of(c->chains[0]);
  ASSERT_TRUE(f1.has_value());
  EXPECT_EQ(f1->f, 2u) << "the top-level default";
  EXPECT_EQ(f1->buffer_frames, 1000u);
  EXPECT_EQ(f1->buffer_per_partition, 10u);
  EXPECT_EQ(f1->hold_timeout_ms, 500u);
  EXPECT_EQ(f1->propagate_after_ms, 1u) << "the built-in default";
  auto f2 = c->ftc_of(c->chains[1]);
  ASSERT_TRUE(f2.has_value());
  EXPECT_EQ(f2->f, 1u) << "the chain's own";
  EXPECT_EQ(f2->propagate_after_ms, 5u);
  EXPECT_FALSE(c->ftc_of(c->chains[2]).has_value()) << "not an FTC chain";
  std::string text = cfg::to_yaml(*c);
  auto b = cfg::parse(text, "again.yaml");
  ASSERT_TRUE(b.has_value()) << diag_text(b.error()) << text;
  EXPECT_EQ(cfg::to_yaml(*b), text);
  EXPECT_EQ(b->ftc, c->ftc);
  EXPECT_EQ(b->chains[1].ftc, c->chains[1].ftc);
  EXPECT_FALSE(b->chains[2].ftc.has_value());
  // without a top-level section: f = 1, port 4796
  auto d = cfg::parse(kFtcBase + "chains:\n  - {name: c1, spi: 10, services: [fw, mon], ftc: true}\n", "d.yaml");
  ASSERT_TRUE(d.has_value()) << diag_text(d.error());
  EXPECT_EQ(d->ftc_of(d->chains[0])->f, 1u);
  EXPECT_EQ(d->ftc.port, cfg::kFtcPortDefault);
  EXPECT_EQ(d->ftc.detect_interval_ms, 100u);
  EXPECT_EQ(d->ftc.detect_misses, 3u);
  // ftc: false is not an FTC chain
  auto e = cfg::parse(kFtcBase + "chains:\n  - {name: c1, spi: 10, services: [fw], ftc: false}\n", "e.yaml");
  ASSERT_TRUE(e.has_value()) << diag_text(e.error());
  EXPECT_FALSE(e->chains[0].ftc.has_value());
}

TEST(ConfigFtc, ErrorsNameTheInputAndItsLine) {
  auto f_range = errors_of(kFtcBase + "chains:\n  - {name: c1, spi: 10, services: [fw, mon, nat], ftc: {f: 5}}\n");
  ASSERT_EQ(f_range.size(), 1u);
  EXPECT_THAT(f_range[0].message, HasSubstr("'f' = 5 out of range 1..4"));
  EXPECT_THAT(f_range[0].message, HasSubstr("chain 'c1'.ftc"));
  EXPECT_EQ(f_range[0].mark.line, 8);

  auto hops = errors_of(kFtcBase + "chains:\n  - {name: c1, spi: 10, services: [fw, mon], ftc: {f: 2}}\n");
  ASSERT_EQ(hops.size(), 1u);
  EXPECT_THAT(hops[0].message, HasSubstr("chain 'c1': FTC with f = 2 needs at least 3 FTC hops"));
  EXPECT_THAT(hops[0].message, HasSubstr("the chain has 2"));
  EXPECT_EQ(hops[0].mark.line, 8);

  auto md = errors_of(kFtcBase +
                      "chains:\n  - {name: c1, spi: 10, services: [fw, mon], ftc: true}\n"
                      "policies:\n  - {name: p1, chain: c1, dst: 10.2.0.0/16}\n");
  ASSERT_EQ(md.size(), 1u);
  EXPECT_THAT(md[0].message, HasSubstr("policy 'p1': chain 'c1' uses FTC"));
  EXPECT_THAT(md[0].message, HasSubstr("set md_type: 2"));
  EXPECT_EQ(md[0].mark.line, 10);

  auto keys = errors_of(kFtcBase + "ftc:\n  replicas: 3\n");
  ASSERT_EQ(keys.size(), 1u);
  EXPECT_THAT(keys[0].message, HasSubstr("replicas"));

  auto buf = errors_of(kFtcBase + "chains:\n  - {name: c1, spi: 10, services: [fw, mon], "
                                  "ftc: {buffer: {frames: 10, per_partition: 20}}}\n");
  ASSERT_EQ(buf.size(), 1u);
  EXPECT_THAT(buf[0].message, HasSubstr("per_partition 20 is more than buffer.frames 10"));

  auto key = errors_of(kFtcBase + "ftc:\n  key_file: ftc.key\n");
  ASSERT_EQ(key.size(), 1u);
  EXPECT_THAT(key[0].message, HasSubstr("must be an absolute path"));

  auto port = errors_of(kFtcBase + "ftc:\n  port: 0\n");
  ASSERT_EQ(port.size(), 1u);
  EXPECT_THAT(port[0].message, HasSubstr("'port' = 0 out of range 1..65535"));

  auto det = errors_of(kFtcBase + "ftc:\n  detect: {interval_ms: 5, misses: 3, grace: 1}\n");
  ASSERT_EQ(det.size(), 2u);
  EXPECT_THAT(det[0].message + det[1].message, HasSubstr("'interval_ms' = 5 out of range 10..10000"));
  EXPECT_THAT(det[0].message + det[1].message, HasSubstr("grace"));

  auto kind = errors_of(kFtcBase + "chains:\n  - {name: c1, spi: 10, services: [fw, mon], ftc: maybe}\n");
  ASSERT_EQ(kind.size(), 1u);
  EXPECT_THAT(kind[0].message, HasSubstr("true or false"));
}

// The node's NF limits (anychain-nf --replica-records, --reorder-wait-us): defaults, values,
// round trip, and each bad value named with its range and line.
TEST(ConfigFtc, ReplicaRecordsAndReorderWait) {
  auto d = cfg::parse(kFtcBase, "d.yaml");
  ASSERT_TRUE(d.has_value()) << diag_text(d.error());
  EXPECT_EQ(d->ftc.replica_records, 262144u) << "65,536 partitions of a head store x f up to 4";
  EXPECT_EQ(d->ftc.reorder_wait_us, 1000u);
  auto c = cfg::parse(kFtcBase + "ftc:\n  replica_records: 65536\n  reorder_wait_us: 250\n", "t.yaml");
  ASSERT_TRUE(c.has_value()) << diag_text(c.error());
  EXPECT_EQ(c->ftc.replica_records, 65536u);
  EXPECT_EQ(c->ftc.reorder_wait_us, 250u);
  std::string text = cfg::to_yaml(*c);
  auto b = cfg::parse(text, "again.yaml");
  ASSERT_TRUE(b.has_value()) << diag_text(b.error()) << text;
  EXPECT_EQ(b->ftc, c->ftc);

  // each bad value alone: one error, on line 8, naming the key, the value and the range
  const std::pair<const char*, const char*> bad[] = {
      {"replica_records: 0", "ftc: 'replica_records' = 0 out of range 1..4194304"},
      {"replica_records: 5000000", "ftc: 'replica_records' = 5000000 out of range 1..4194304"},
      {"replica_records: many", "ftc: 'replica_records' must be an integer, got 'many'"},
      {"reorder_wait_us: 1000000", "ftc: 'reorder_wait_us' = 1000000 out of range 1..999999"},
      {"reorder_wait_us: 0", "ftc: 'reorder_wait_us' = 0 out of range 1..999999"},
  };
  for (const auto& [line, message] : bad) {
    auto e = errors_of(kFtcBase + "ftc:\n  " + line + "\n");
    ASSERT_EQ(e.size(), 1u) << line;
    EXPECT_THAT(e[0].message, HasSubstr(message));
    EXPECT_EQ(e[0].mark.line, 8) << line;
  }
}

}  // namespace

// Standbys (instance standby_for, docs/ftc.md 7.3, docs/config.md): a standby parses, takes the
// id it stands by for and round-trips; a standby for this node's own instance, two standbys for
// one instance on a node, a standby of a service on no FTC chain, one without nf:, an id that
// disagrees and an id out of range are errors that name the entry and its line.
namespace {
const std::string kBase = kFtcBase +
                          "  - {name: web, id: 4, anycast: 10.100.0.4}\n"                   // 7
                          "chains:\n"                                                      // 8
                          "  - {name: c1, spi: 10, services: [fw, mon, nat], ftc: true}\n" // 9
                          "policies:\n"                                                    // 10
                          "  - {name: p, chain: c1, md_type: 2}\n"                         // 11
                          "instances:\n";                                                  // 12

std::string nat_standby(const std::string& name, const std::string& extra) {
  return "  - {name: " + name + ", " + extra +
         ", service: nat, veth: nf-" + name + ", capacity: 1000, nf: nat, nat: {address: 192.0.2.10, ports: 20000-29999}}\n";
}
}  // namespace

TEST(ConfigStandby, ParsesTakesTheIdAndRoundTrips) {
  auto c = cfg::parse(kBase + nat_standby("nat1-sb", "standby_for: 3") +
                      "  - {name: fw2, id: 7, service: fw, veth: nf-fw2, capacity: 1000, nf: firewall}\n");
  ASSERT_TRUE(c) << (c ? "" : c.error()[0].message);
  ASSERT_EQ(c->instances.size(), 2u);
  EXPECT_EQ(c->instances[0].standby_for, 3u);
  EXPECT_EQ(c->instances[0].id, 3u) << "a standby runs as the instance it stands by for";
  EXPECT_FALSE(c->instances[1].standby_for);
  auto back = cfg::parse(cfg::to_yaml(*c));
  ASSERT_TRUE(back) << cfg::to_yaml(*c);
  EXPECT_EQ(back->instances[0].standby_for, 3u);
  EXPECT_EQ(back->instances[0].id, 3u);
  EXPECT_THAT(cfg::to_yaml(*c), HasSubstr("standby_for: 3"));
  // id given and equal: accepted
  EXPECT_TRUE(cfg::parse(kBase + nat_standby("nat1-sb", "id: 3, standby_for: 3")));
}

TEST(ConfigStandby, StandbyForThisNodesOwnInstance) {
  auto d = errors_of(kBase + "  - {name: nat1, id: 3, service: nat, veth: nf-nat1, capacity: 1000, nf: nat, "
                             "nat: {address: 192.0.2.10}}\n" +
                     nat_standby("nat1-sb", "standby_for: 3"));
  ASSERT_EQ(d.size(), 1u) << lines(d).size();
  EXPECT_THAT(d[0].message, HasSubstr("instance 'nat1-sb': standby for instance 3, which is 'nat1' on this node"));
  EXPECT_EQ(d[0].mark.line, 14);
}

TEST(ConfigStandby, TwoStandbysForOneInstanceOnANode) {
  auto d = errors_of(kBase + nat_standby("sb1", "standby_for: 3") + nat_standby("sb2", "standby_for: 3"));
  ASSERT_EQ(d.size(), 1u);
  EXPECT_THAT(d[0].message, HasSubstr("instance 'sb2': a second standby for instance 3 on this node ('sb1' is one)"));
  EXPECT_EQ(d[0].mark.line, 14);
  // standbys for two different instances on one node are fine (each with its instance's own block)
  EXPECT_TRUE(cfg::parse(kBase + nat_standby("sb1", "standby_for: 3") +
                         "  - {name: sb2, standby_for: 5, service: nat, veth: nf-sb2, capacity: 1000, nf: nat, "
                         "nat: {address: 192.0.2.10, ports: 30000-39999}}\n"));
}

TEST(ConfigStandby, StandbyOfANonFtcService) {
  auto d = errors_of(kBase + "  - {name: web-sb, standby_for: 9, service: web, veth: nf-web, capacity: 1000, "
                             "nf: firewall}\n");
  ASSERT_EQ(d.size(), 1u);
  EXPECT_THAT(d[0].message, HasSubstr("instance 'web-sb': standby for instance 9 of service 'web', which is on no "
                                      "FTC chain"));
  EXPECT_EQ(d[0].mark.line, 13);
}

TEST(ConfigStandby, StandbyWithoutNfIdMismatchAndRange) {
  auto nonf = errors_of(kBase + "  - {name: fw-sb, standby_for: 9, service: fw, veth: vfw, capacity: 1000}\n");
  ASSERT_EQ(nonf.size(), 1u);
  EXPECT_THAT(nonf[0].message, HasSubstr("instance 'fw-sb': a standby needs nf:"));
  auto mismatch = errors_of(kBase + nat_standby("sb", "id: 4, standby_for: 3"));
  ASSERT_EQ(mismatch.size(), 1u);
  EXPECT_THAT(mismatch[0].message, HasSubstr("id 4 is not standby_for 3 (leave id out)"));
  auto range = errors_of(kBase + nat_standby("sb", "standby_for: 0"));
  ASSERT_EQ(range.size(), 1u) << "no second error about the id";
  EXPECT_THAT(range[0].message, HasSubstr("'standby_for' = 0 out of range"));
  // without standby_for, id stays required
  auto noid = errors_of(kBase + "  - {name: x, service: fw, veth: vx, capacity: 1000}\n");
  ASSERT_FALSE(noid.empty());
  EXPECT_THAT(noid[0].message, HasSubstr("'id'"));
}

// Reclaiming in the order of docs/ftc.md 6.2: other nodes reclaim their replicas of an FTC NF's
// records after nf::kFtcDefaultPeerIdle (300 s), so an FTC NF's idle timeout is 1..300; off an
// FTC chain any value stays valid.
TEST(ConfigFtc, IdleTimeoutOfAnFtcNfWithinTheReplicasReclaim) {
  auto nat = [](const std::string& name, const std::string& svc, const std::string& idle) {
    return "  - {name: " + name + ", id: 21, service: " + svc + ", veth: nf-" + name +
           ", capacity: 1000, nf: nat, nat: {address: 192.0.2.10, idle_timeout_s: " + idle + "}}\n";
  };
  EXPECT_TRUE(cfg::parse(kBase + nat("nat1", "nat", "300")));
  EXPECT_TRUE(cfg::parse(kBase + nat("nat1", "nat", "1")));
  EXPECT_TRUE(cfg::parse(kBase + nat("web1", "web", "7440"))) << "web is on no FTC chain";
  EXPECT_TRUE(cfg::parse(kBase + nat("web1", "web", "0")));
  for (const char* idle : {"301", "7440", "0"}) {
    auto d = errors_of(kBase + nat("nat1", "nat", idle));
    ASSERT_EQ(d.size(), 1u) << idle;
    EXPECT_THAT(d[0].message, HasSubstr(std::string("instance 'nat1': idle_timeout_s ") + idle +
                                        " on an FTC chain (service 'nat'): must be 1..300"));
    EXPECT_EQ(d[0].mark.line, 13);
  }
  auto mon = errors_of(kBase + "  - {name: mon1, id: 22, service: mon, veth: nf-mon1, capacity: 1000, nf: monitor, "
                               "monitor: {idle_timeout_s: 600}}\n");
  ASSERT_EQ(mon.size(), 1u);
  EXPECT_THAT(mon[0].message, HasSubstr("instance 'mon1': idle_timeout_s 600 on an FTC chain (service 'mon')"));
}

// An instance's own ftc: {replica_records, reorder_wait_us} (docs/config.md "ftc"): parsed into
// its nf:, round-tripped, out of range, on an instance without nf: and on a service of no FTC
// chain refused at the entry's line.
TEST(ConfigFtc, ReplicaRecordsAndReorderWaitPerInstance) {
  auto mon = [](const std::string& name, const std::string& svc, const std::string& ftc) {
    return "  - {name: " + name + ", id: 22, service: " + svc + ", veth: nf-" + name +
           ", capacity: 1000, nf: monitor, ftc: " + ftc + "}\n";
  };
  auto c = cfg::parse(kBase + mon("mon1", "mon", "{replica_records: 65536, reorder_wait_us: 200}") +
                      "  - {name: nat1, id: 23, service: nat, veth: nf-nat1, capacity: 1000, nf: nat, "
                      "nat: {address: 192.0.2.10}, ftc: {reorder_wait_us: 50}}\n" +
                      "  - {name: fw1, id: 24, service: fw, veth: nf-fw1, capacity: 1000, nf: firewall}\n");
  ASSERT_TRUE(c.has_value()) << diag_text(c.error());
  ASSERT_EQ(c->instances.size(), 3u);
  EXPECT_EQ(c->instances[0].nf->replica_records, 65536u);
  EXPECT_EQ(c->instances[0].nf->reorder_wait_us, 200u);
  EXPECT_FALSE(c->instances[1].nf->replica_records) << "unset: the node's ftc: value";
  EXPECT_EQ(c->instances[1].nf->reorder_wait_us, 50u);
  EXPECT_FALSE(c->instances[2].nf->replica_records);
  EXPECT_FALSE(c->instances[2].nf->reorder_wait_us);
  std::string text = cfg::to_yaml(*c);
  auto b = cfg::parse(text, "again.yaml");
  ASSERT_TRUE(b.has_value()) << diag_text(b.error()) << text;
  EXPECT_EQ(b->instances[0].nf->replica_records, 65536u);
  EXPECT_EQ(b->instances[0].nf->reorder_wait_us, 200u);
  EXPECT_FALSE(b->instances[1].nf->replica_records);
  EXPECT_EQ(b->instances[1].nf->reorder_wait_us, 50u);
  EXPECT_FALSE(b->instances[2].nf->reorder_wait_us);

  const std::pair<std::string, const char*> bad[] = {
      {mon("mon1", "mon", "{replica_records: 0}"), "instance 'mon1' ftc: 'replica_records' = 0 out of range 1..4194304"},
      {mon("mon1", "mon", "{reorder_wait_us: 1000000}"),
       "instance 'mon1' ftc: 'reorder_wait_us' = 1000000 out of range 1..999999"},
      {mon("mon1", "mon", "{hold: 1}"), "hold"},
      {mon("web1", "web", "{replica_records: 10}"),
       "instance 'web1': ftc: replica_records/reorder_wait_us on service 'web', which is on no FTC chain"},
      {"  - {name: v1, id: 25, service: mon, veth: v1, capacity: 1000, ftc: {replica_records: 10}}\n",
       "instance 'v1': 'ftc' is only for a built-in network function (nf:)"},
  };
  for (const auto& [entry, message] : bad) {
    auto e = errors_of(kBase + entry);
    ASSERT_EQ(e.size(), 1u) << entry << diag_text(e);
    EXPECT_THAT(e[0].message, HasSubstr(message)) << entry;
    EXPECT_EQ(e[0].mark.line, 13) << entry;
  }
}
