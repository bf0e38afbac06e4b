// Config parsing of the `state:` section (shared state replication, docs/config.md): defaults,
// a round trip, and every kind of bad input reported at its line with the bad value named.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "config/config.h"
#include "config_helpers.h"

namespace cfg = anychain::config;
using namespace anychain::config::test;
using ::testing::HasSubstr;

namespace {

const std::string kKey1(64, 'a');
const std::string kKey2 = "0x" + std::string(96, 'B');

const std::string kBase =
    "node:\n"                          // 1
    "  nsh_endpoint: 10.0.0.1\n"       // 2
    "interfaces:\n"                    // 3
    "  - {name: eth0}\n"               // 4
    "  - {name: eth1}\n";              // 5

std::string messages(const cfg::Diagnostics& d) {
  std::string s;
  for (const auto& e : d) s += e.str() + "\n";
  return s;
}

}  // namespace

TEST(ConfigState, DefaultsAndRoundTrip) {
  auto c = cfg::parse(kBase + "state:\n  keys:\n    - {id: 7, key: " + kKey1 + "}\n", "t.yaml");
  ASSERT_TRUE(c.has_value()) << messages(c.error());
  ASSERT_TRUE(c->state.has_value());
  EXPECT_EQ(c->state->port, 4795);
  EXPECT_TRUE(c->state->interfaces.empty());
  ASSERT_EQ(c->state->keys.size(), 1u);
  EXPECT_EQ(c->state->keys[0].id, 7);
  EXPECT_EQ(c->state->send_id(), 7);  // the only key
  EXPECT_EQ(c->state->max_skew_s, 60u);
  EXPECT_EQ(c->state->scan_interval_ms, 1u);
  EXPECT_EQ(c->state->keepalive_ms, 100u);
  EXPECT_EQ(c->state->peer_window_kb, 256u);
  EXPECT_EQ(c->state->node_gone_grace_s, 30u);

  const std::string full = kBase +
                           "state:\n"
                           "  port: 5000\n"
                           "  interfaces: [eth1]\n"
                           "  keys:\n"
                           "    - {id: 1, key: " + kKey1 + "}\n"
                           "    - {id: 2, key: " + kKey2 + "}\n"
                           "  send_key: 2\n"
                           "  max_skew_s: 0\n"
                           "  scan_interval_ms: 5\n"
                           "  keepalive_ms: 50\n"
                           "  peer_window_kb: 64\n"
                           "  window_s: 30\n"
                           "  node_gone_grace_s: 8\n";
  auto f = cfg::parse(full, "t.yaml");
  ASSERT_TRUE(f.has_value()) << messages(f.error());
  const auto& s = *f->state;
  EXPECT_EQ(s.port, 5000);
  EXPECT_EQ(s.interfaces, std::vector<std::string>{"eth1"});
  ASSERT_EQ(s.keys.size(), 2u);
  EXPECT_EQ(s.keys[1].hex, std::string(96, 'b'));  // 0x dropped, lower case
  EXPECT_EQ(s.send_id(), 2);
  EXPECT_EQ(s.max_skew_s, 0u);
  EXPECT_EQ(s.scan_interval_ms, 5u);
  EXPECT_EQ(s.window_s, 30u);
  EXPECT_EQ(s.node_gone_grace_s, 8u);
  auto back = cfg::parse(cfg::to_yaml(*f), "back.yaml");
  ASSERT_TRUE(back.has_value()) << messages(back.error()) << cfg::to_yaml(*f);
  EXPECT_EQ(back->state, f->state);

  // no state: section, none emitted
  auto none = cfg::parse(kBase);
  ASSERT_TRUE(none.has_value());
  EXPECT_FALSE(none->state.has_value());
  EXPECT_EQ(cfg::to_yaml(*none).find("state:"), std::string::npos);
}

TEST(ConfigState, BadInputNamed) {
  struct Case {
    std::string body;
    int line;
    std::string what;
  };
  const std::vector<Case> cases = {
      {"state:\n  port: 4795\n", 7, "missing required key 'keys'"},
      {"state:\n  keys: []\n", 7, "'keys' must be a list of 1..4 keys"},
      {"state:\n  keys:\n    - {id: 0, key: " + kKey1 + "}\n", 8, "'id' = 0 out of range 1..255"},
      {"state:\n  keys:\n    - {id: 1, key: abcd}\n", 8, "state: key 1: 2 bytes, must be 32..64"},
      {"state:\n  keys:\n    - {id: 1, key: " + std::string(63, 'a') + "}\n", 8, "63 hex digits, an odd number"},
      {"state:\n  keys:\n    - {id: 1, key: " + std::string(63, 'a') + "z}\n", 8, "'z' is not a hex digit"},
      {"state:\n  keys:\n    - {id: 1, key: " + std::string(130, 'a') + "}\n", 8, "65 bytes, must be 32..64"},
      {"state:\n  keys:\n    - {id: 1, key: " + kKey1 + "}\n    - {id: 1, key: " + kKey1 + "}\n", 9,
       "duplicate key id 1 (first at line 8)"},
      {"state:\n  keys:\n    - {id: 1, key: " + kKey1 + "}\n    - {id: 2, key: " + kKey1 + "}\n", 7,
       "2 keys and no send_key"},
      {"state:\n  send_key: 3\n  keys:\n    - {id: 1, key: " + kKey1 + "}\n", 7, "send_key 3 is not one of the keys"},
      {"state:\n  port: 70000\n  keys:\n    - {id: 1, key: " + kKey1 + "}\n", 7, "'port' = 70000 out of range"},
      {"state:\n  port: 4790\n  keys:\n    - {id: 1, key: " + kKey1 + "}\n", 7, "port 4790 is VXLAN-GPE's"},
      {"state:\n  interfaces: [eth9]\n  keys:\n    - {id: 1, key: " + kKey1 + "}\n", 7,
       "interface 'eth9' is not under interfaces:"},
      {"state:\n  interfaces: [eth0, eth0]\n  keys:\n    - {id: 1, key: " + kKey1 + "}\n", 7,
       "interface 'eth0' is listed twice"},
      {"state:\n  scan_interval_ms: 0\n  keys:\n    - {id: 1, key: " + kKey1 + "}\n", 7,
       "'scan_interval_ms' = 0 out of range 1..1000"},
      {"state:\n  key: x\n  keys:\n    - {id: 1, key: " + kKey1 + "}\n", 7, "unknown key 'key'"},
      {"state:\n  keys:\n    - {id: 1, key: " + kKey1 + ", secret: x}\n", 8, "unknown key 'secret'"},
      {"state: 4795\n", 6, "state: expected a map"},
  };
  for (const auto& k : cases) {
    auto d = errors_of(kBase + k.body);
    ASSERT_FALSE(d.empty()) << k.body;
    bool found = false;
    for (const auto& e : d)
      if (e.mark.line == k.line && e.message.find(k.what) != std::string::npos) found = true;
    EXPECT_TRUE(found) << "want line " << k.line << ": " << k.what << "\ngot:\n" << messages(d);
  }
}

// Two NAT instances of one node with the same external address and overlapping port blocks are
// refused at the second one's line, naming both blocks; disjoint blocks, or another address, pass.
TEST(ConfigState, NatPoolsOverlappingOnOneNodeRefused) {
  const std::string base =
      "node:\n"                                        // 1
      "  nsh_endpoint: 10.0.0.1\n"                     // 2
      "services:\n"                                    // 3
      "  - {name: nat, id: 3, anycast: 10.100.0.3}\n"  // 4
      "instances:\n"                                   // 5
      "  - {name: nat1, id: 1, service: nat, veth: n1, capacity: 1, nf: nat,\n"  // 6
      "     nat: {address: 192.0.2.10, ports: 20000-29999}}\n";                  // 7
  auto second = [&](const std::string& nat) {
    return base + "  - {name: nat2, id: 2, service: nat, veth: n2, capacity: 1, nf: nat,\n     nat: {" + nat + "}}\n";
  };
  auto d = errors_of(second("address: 192.0.2.10, ports: 29999-40000"));
  ASSERT_EQ(d.size(), 1u) << messages(d);
  EXPECT_EQ(d[0].mark.line, 8);
  EXPECT_THAT(d[0].message, HasSubstr("instance 'nat2': nat ports 29999-40000 of 192.0.2.10 overlap instance "
                                      "'nat1''s 20000-29999 (line 6)"));
  d = errors_of(second("address: 192.0.2.10"));  // the default pool, 1024-65535, holds nat1's block
  ASSERT_EQ(d.size(), 1u) << messages(d);
  EXPECT_THAT(d[0].message, HasSubstr("nat ports 1024-65535 of 192.0.2.10 overlap"));
  for (const char* ok : {"address: 192.0.2.10, ports: 30000-39999", "address: 192.0.2.11, ports: 20000-29999"}) {
    auto c = cfg::parse(second(ok), "t.yaml");
    EXPECT_TRUE(c.has_value()) << ok << ":\n" << (c ? "" : messages(c.error()));
  }
}
