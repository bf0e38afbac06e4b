// anychaind's FTC channel (agent/daemon/ftc_channel.*, docs/ftc.md 4.4): the key file's format
// and its errors, the keys taken from state: when there is no key file, no channel without a
// key, a message to this node handed to its handler at once, rotation without reopening, and the
// status `anychain status` shows.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "config/config.h"
#include "daemon/from_config.h"
#include "daemon/ftc_channel.h"

namespace anychain::daemon {
namespace {

const std::string kHex32(64, 'a');
const std::string kHex32b(64, 'b');

std::string write_file(const std::string& text) {
  char path[] = "/tmp/fc-keys-XXXXXX";
  int fd = mkstemp(path);
  EXPECT_GE(fd, 0);
  close(fd);
  std::ofstream(path) << text;
  return path;
}

TEST(FtcDaemonChannel, KeyFileFormatAndErrors) {
  auto p = write_file("# the FTC channel's keys\n2 " + kHex32 + "\n\n  1 0x" + kHex32b + "  # old\n");
  auto k = load_ftc_keys(p);
  ASSERT_TRUE(k) << k.error().str();
  ASSERT_EQ(k->first.size(), 2u);
  EXPECT_EQ(k->first[0].id, 2);
  EXPECT_EQ(k->first[1].id, 1);
  EXPECT_EQ(k->second, 2) << "the first key sends";
  EXPECT_EQ(k->first[1].secret, std::vector<uint8_t>(32, 0xbb));
  std::remove(p.c_str());
  p = write_file(kHex32 + "\n");
  k = load_ftc_keys(p);
  ASSERT_TRUE(k);
  EXPECT_EQ(k->first[0].id, 1) << "a lone key is id 1";
  std::remove(p.c_str());
  for (auto [text, why] : {std::pair{std::string("0 ") + kHex32, "is not 1..255"},
                           std::pair{std::string("1 abc"), "odd number"},
                           std::pair{std::string("1 ") + kHex32 + " x", "expected 'ID HEX'"},
                           std::pair{std::string("# nothing\n"), "no key"}}) {
    p = write_file(text);
    auto bad = load_ftc_keys(p);
    ASSERT_FALSE(bad) << text;
    EXPECT_NE(bad.error().str().find(why), std::string::npos) << bad.error().str();
    EXPECT_NE(bad.error().str().find(p), std::string::npos) << "names the file";
    std::remove(p.c_str());
  }
  EXPECT_FALSE(load_ftc_keys("/nonexistent/fc.key"));
}

FtcChannelSpec spec_with(std::vector<state::KeySpec> keys, uint8_t send) {
  FtcChannelSpec s;
  s.self = 0x7f000001;
  s.port = 0;
  s.keys = std::move(keys);
  s.send_key = send;
  return s;
}

TEST(FtcDaemonChannel, NoKeyNoChannel) {
  auto c = FtcChannel::open(spec_with({}, 0));
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().str().find("ftc.key_file or state.keys"), std::string::npos) << c.error().str();
}

TEST(FtcDaemonChannel, LocalDeliveryRotationAndStatus) {
  auto c = FtcChannel::open(spec_with({{1, std::vector<uint8_t>(32, 1)}}, 1));
  ASSERT_TRUE(c) << c.error().str();
  int got = 0;
  (*c)->on(ftc::chan::Type::Released, [&](uint32_t from, const ftc::chan::Body& m) {
    EXPECT_EQ(from, 0x7f000001u);
    EXPECT_EQ(std::get<ftc::chan::Released>(m).flow.spi, 5u);
    ++got;
  });
  ftc::chan::Released r;
  r.flow = {5, 6};
  ASSERT_TRUE((*c)->send(0x7f000001, r));
  EXPECT_EQ(got, 1) << "ingress and egress on one node: no network hop";
  auto st = (*c)->status();
  EXPECT_EQ(st["local"], 1);
  EXPECT_EQ(st["node"], "127.0.0.1");
  EXPECT_EQ(st["detect"]["interval_ms"], 100);
  EXPECT_EQ(st["rejected"]["bad_tag"], 0);
  EXPECT_TRUE(st["peers"].empty());
  // a message to a node that does not listen: queued, a peer with its error
  ASSERT_TRUE((*c)->send(0x7f0000fe, r));
  st = (*c)->status();
  ASSERT_EQ(st["peers"].size(), 1u);
  EXPECT_EQ(st["peers"][0]["node"], "127.0.0.254");
  EXPECT_EQ(st["peers"][0]["queued"], 1);
  EXPECT_EQ(st["peers"][0]["up"], false);
  // rotation: same port (not reopened), new keys
  uint16_t port = st["port"];
  ASSERT_TRUE((*c)->reconfigure(spec_with({{1, std::vector<uint8_t>(32, 1)}, {2, std::vector<uint8_t>(32, 2)}}, 2)));
  EXPECT_EQ((*c)->status()["port"], port);
  EXPECT_FALSE((*c)->reconfigure(spec_with({{1, std::vector<uint8_t>(32, 1)}}, 3))) << "send key not in the ring";
}

TEST(FtcDaemonChannel, SpecFromConfigTakesStateKeysUnlessAKeyFile) {
  const std::string base =
      "node: {nsh_endpoint: 192.0.2.1}\n"
      "services:\n  - {name: mon, id: 1, anycast: 10.100.0.1}\n  - {name: nat, id: 2, anycast: 10.100.0.2}\n"
      "chains:\n  - {name: a, spi: 10, services: [mon, nat], ftc: {propagate_after_ms: 7}}\n"
      "policies:\n  - {name: pa, chain: a, dst: 10.2.0.0/16, md_type: 2}\n";
  auto c = config::parse(base + "state:\n  keys: [{id: 3, key: " + kHex32 + "}]\nftc:\n  detect: {interval_ms: 50, misses: 5}\n",
                         "t.yaml");
  ASSERT_TRUE(c.has_value()) << c.error().size();
  auto s = spec_from_config(*c);
  ASSERT_TRUE(s) << s.error().str();
  ASSERT_TRUE(s->ftc_channel.has_value());
  EXPECT_EQ(s->ftc_channel->self, 0xc0000201u);
  EXPECT_EQ(s->ftc_channel->port, 4796);
  EXPECT_EQ(s->ftc_channel->interval, std::chrono::milliseconds(50));
  EXPECT_EQ(s->ftc_channel->misses, 5u);
  ASSERT_EQ(s->ftc_channel->keys.size(), 1u);
  EXPECT_EQ(s->ftc_channel->keys[0].id, 3);
  EXPECT_EQ(s->ftc_channel->send_key, 3);
  EXPECT_EQ(s->ftc_propagate_after_ns, 7'000'000u);
  auto k = config::parse(base + "ftc:\n  key_file: /etc/anychain/ftc.key\n", "k.yaml");
  ASSERT_TRUE(k.has_value());
  auto ks = spec_from_config(*k);
  ASSERT_TRUE(ks);
  EXPECT_EQ(ks->ftc_channel->key_file, "/etc/anychain/ftc.key");
  EXPECT_TRUE(ks->ftc_channel->keys.empty());
}

}  // namespace
}  // namespace anychain::daemon
