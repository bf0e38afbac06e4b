// Config of standbys (instance standby_for, docs/ftc.md 7.3, docs/config.md): a standby parses,
// takes the id it stands by for and round-trips; a standby for this node's own instance, two
// standbys for one instance on a node, a standby of a service on no FTC chain, one without nf:,
// an id that disagrees and an id out of range are errors that name the entry and its line.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "config/config.h"
#include "config_helpers.h"

namespace cfg = anychain::config;
using namespace anychain::config::test;
using ::testing::HasSubstr;

namespace {

const std::string kBase =
    "node:\n"                                                                  // 1
    "  nsh_endpoint: 10.0.0.1\n"                                               // 2
    "services:\n"                                                              // 3
    "  - {name: fw, id: 1, anycast: 10.100.0.1}\n"                             // 4
    "  - {name: mon, id: 2, anycast: 10.100.0.2}\n"                            // 5
    "  - {name: nat, id: 3, anycast: 10.100.0.3}\n"                            // 6
    "  - {name: web, id: 4, anycast: 10.100.0.4}\n"                            // 7
    "chains:\n"                                                                // 8
    "  - {name: c1, spi: 10, services: [fw, mon, nat], ftc: true}\n"           // 9
    "policies:\n"                                                              // 10
    "  - {name: p, chain: c1, md_type: 2}\n"                                   // 11
    "instances:\n";                                                            // 12

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
  // standbys for two different instances on one node are fine
  EXPECT_TRUE(cfg::parse(kBase + nat_standby("sb1", "standby_for: 3") + nat_standby("sb2", "standby_for: 5")));
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
