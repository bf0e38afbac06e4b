// What the tests of FTC between agents on the real NF programs share (ftc_recovery_test.cc,
// ftc_resync_test.cc): an NF loaded as anychain-nf loads it (not attached) with its maps opened
// by id, and two agents' FTC channels on loopback (HMAC sessions, ephemeral ports) pumped by hand.
#pragma once

#include <poll.h>

#include "daemon/ftc_recovery_service.h"
#include "ftc/channel.h"
#include "nf_bpf_fixture.h"
#include "state/auth.h"

namespace anychain::test::nfbpf {

struct Loaded {
  std::unique_ptr<nf::Nf> nf;
  std::optional<nf::InstanceMaps> maps;
};

inline Loaded load_nf(const nf::Params& p, const std::string& name) {
  nf::LoadOptions o;
  o.name = name;
  o.attach = false;
  auto r = nf::Nf::load(p, o);
  EXPECT_TRUE(r.has_value()) << r.error().str();
  Loaded l;
  if (!r) return l;
  l.nf = std::move(*r);
  auto m = nf::InstanceMaps::open(l.nf->published());
  EXPECT_TRUE(m.has_value()) << m.error().str();
  if (m) l.maps.emplace(std::move(*m));
  return l;
}

// A replica-only NF `id` that knows the middleboxes `peers` (incarnation 0)
inline Loaded load_replica(uint32_t id, const std::string& name, std::initializer_list<uint32_t> peers) {
  nf::Params rp;
  rp.kind = nf::Kind::Replica;
  rp.instance_id = id;
  Loaded l = load_nf(rp, name);
  if (!l.maps) return l;
  for (uint32_t peer : peers) {
    const uint32_t known = 1;  // incarnation 0 + 1
    EXPECT_EQ(bpf_map_update_elem(l.maps->fd("nf_peers"), &peer, &known, 0), 0);
  }
  return l;
}

// SPI 42, the flow's hash, the control TLV with f = 1 and ingress 10.0.0.1
inline Bytes control_nsh(uint8_t si, uint32_t hash = kHash) {
  ftc::Nsh n;
  n.spi = kSpi;
  n.si = si;
  n.other.push_back(ftc::flow_hash_tlv(hash));
  n.ctrl = ftc::Ctrl{0, 1, 0x0a000001};
  return *ftc::encode_nsh(n);
}

// The NSH of a frame an NF sent back (after its Ethernet header)
inline Bytes nsh_of(const Bytes& frame) {
  const size_t len = (frame[15] & 0x3f) * 4;
  return Bytes(frame.begin() + 14, frame.begin() + 14 + len);
}

inline std::shared_ptr<const state::Keyring> test_ring() {
  auto k = state::Keyring::make({{1, std::vector<uint8_t>(32, 0x5a)}}, 1);
  EXPECT_TRUE(k.has_value());
  return *k;
}

// Two agents' channels, nodes `na` and `nb`; `ports` says where each node listens (a test may add
// a node where nothing listens).
struct Agents {
  std::map<uint32_t, uint16_t> ports;
  std::unique_ptr<ftc::Channel> a, b;
  Agents(uint32_t na, uint32_t nb) {
    a = open(na);
    b = open(nb);
  }
  std::unique_ptr<ftc::Channel> open(uint32_t self) {
    ftc::ChannelOptions o;
    o.self = self;
    o.port = 0;
    o.port_of = [this](uint32_t n) { return ports.at(n); };
    auto c = ftc::Channel::open(o, test_ring());
    EXPECT_TRUE(c.has_value()) << c.error().str();
    if (!c) return nullptr;
    ports[self] = (*c)->local_port();
    return std::move(*c);
  }
  // Both channels' I/O and timers, then `also`, until pred() or 5 s
  bool pump(const std::function<bool()>& pred, const std::function<void()>& also = {}) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!pred() && std::chrono::steady_clock::now() < end) {
      std::vector<pollfd> fds;
      std::vector<ftc::Channel*> owner;
      for (auto* c : {a.get(), b.get()})
        for (auto p : c->poll_fds()) {
          fds.push_back(p);
          owner.push_back(c);
        }
      poll(fds.data(), fds.size(), 5);
      for (size_t i = 0; i < fds.size(); ++i)
        if (fds[i].revents) owner[i]->on_event(fds[i].fd, fds[i].revents);
      a->on_timer();
      b->on_timer();
      if (also) also();
    }
    return pred();
  }
};

}  // namespace anychain::test::nfbpf
