// The daemon's replication (agent/daemon/replication.*) on real BPF maps: three "instances" of
// the test XDP program (tests/state/crdt_test.bpf.c), each published in a run directory the way
// anychain-nf publishes an NF (ids of its maps and merge program, its replicated objects), each
// replicated by its own node's Replication over UDP on its own loopback address. An increment
// made by one instance's packet path shows in the others' merged cells; a forged message (a key
// nobody holds), a replayed one, a malformed one and one for an instance nobody runs are refused
// and counted where status shows them; a key rotation applied by reconfigure() keeps it going;
// the members from an LSDB topology.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <random>
#include <thread>

#include "common/unique_fd.h"
#include "crdt_test_nf.h"
#include "daemon/replication.h"
#include "nf/published.h"
#include "state/wire.h"

namespace anychain::daemon {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr uint16_t kService = 7;

// One loaded test program, published like an NF instance.
struct TestNf {
  TestNf(const std::filesystem::path& dir, const std::string& name, uint32_t id, uint64_t incarnation) {
    skel = crdt_test_bpf__open_and_load();
    if (!skel) throw std::runtime_error("load crdt_test");
    nf::Published p = state::test::crdt_test_published(skel, name, id, incarnation, getpid());
    path = nf::published_path(dir.string(), name);
    if (auto r = nf::write_published(path, p); !r) throw std::runtime_error(r.error().str());
    this->id = id;
    this->name = name;
  }
  ~TestNf() { crdt_test_bpf__destroy(skel); }
  void add(uint32_t index, uint64_t amount) {
    crdt_test_op o{.code = CT_GC_ADD, .index = index, .amount = amount};
    state::test::crdt_test_run(skel, o);
  }
  // what XDP reads: own slot + the merged others
  uint64_t value(uint32_t index) const { return state::test::crdt_test_gc_value(skel, index); }
  crdt_test_bpf* skel = nullptr;
  std::string path, name;
  uint32_t id = 0;
};

state::KeySpec key(uint8_t id, uint8_t fill) { return {id, std::vector<uint8_t>(32, fill)}; }

class ReplicationDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to load BPF programs";
    dir = std::filesystem::temp_directory_path() / ("anychain-repl-test-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir);
    std::mt19937 rng(std::random_device{}());
    port = static_cast<uint16_t>(20000 + rng() % 20000);
  }
  void TearDown() override { std::filesystem::remove_all(dir); }

  std::unique_ptr<Replication> node(const char* addr, std::vector<state::KeySpec> keys, uint8_t send) {
    Replication::Options o;
    o.spec.port = port;
    o.spec.keys = std::move(keys);
    o.spec.send_key = send;
    inet_pton(AF_INET, addr, &o.endpoint);
    o.join_timeout_us = 3'000'000;
    auto r = Replication::open(std::move(o), clock);
    if (!r) throw std::runtime_error(r.error().str());
    return std::move(*r);
  }
  // run every node's loop until pred() or the deadline
  template <class P>
  bool run(std::vector<Replication*> nodes, P pred, std::chrono::milliseconds limit = 3000ms) {
    auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
      for (auto* n : nodes) {
        n->on_readable();
        n->tick();
      }
      if (pred()) return true;
      std::this_thread::sleep_for(1ms);
    }
    return false;
  }
  // a datagram from nowhere to (addr, port)
  void inject(const char* addr, const state::Bytes& d) {
    UniqueFd fd(socket(AF_INET, SOCK_DGRAM, 0));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    inet_pton(AF_INET, addr, &sa.sin_addr);
    ASSERT_EQ(sendto(fd.get(), d.data(), d.size(), 0, reinterpret_cast<sockaddr*>(&sa), sizeof sa),
              static_cast<ssize_t>(d.size()));
  }

  std::filesystem::path dir;
  uint16_t port = 0;
  state::SystemClock clock;
};

json instance_of(const Replication& r, const std::string& name) {
  auto j = r.instance(name);
  return j ? *j : json{};
}

TEST_F(ReplicationDaemonTest, ThreeNodesReplicateRefuseForgeriesAndRotateKeys) {
  TestNf a(dir, "ids1", 1, 1000), b(dir, "ids2", 2, 2000), c(dir, "ids3", 3, 3000);
  auto na = node("127.0.0.1", {key(1, 0x11)}, 1);
  auto nb = node("127.0.0.2", {key(1, 0x11)}, 1);
  auto nc = node("127.0.0.3", {key(1, 0x11)}, 1);
  std::vector<Replication*> all{na.get(), nb.get(), nc.get()};
  std::map<uint16_t, std::vector<state::Replicator::Member>> members;
  for (auto [id, addr] : {std::pair{1u, "127.0.0.1"}, std::pair{2u, "127.0.0.2"}, std::pair{3u, "127.0.0.3"}}) {
    in_addr ia{};
    inet_pton(AF_INET, addr, &ia);
    members[kService].push_back({id, {ia.s_addr, port}});
  }
  // the first instance is alone: ready at once, before the others appear
  na->set_members({{kService, {members[kService][0]}}});
  na->set_local({{"ids1", 1, kService, a.path}});
  ASSERT_TRUE(na->replicating(1));
  na->tick();
  EXPECT_TRUE(na->ready(1));
  a.add(3, 5);  // state before the others join: they get it from a snapshot
  ASSERT_TRUE(run({na.get()}, [&] { return instance_of(*na, "ids1")["counters"]["version"] > 0; }));

  for (auto* n : all) n->set_members(members);
  nb->set_local({{"ids2", 2, kService, b.path}});
  nc->set_local({{"ids3", 3, kService, c.path}});
  EXPECT_FALSE(nb->ready(2)) << "joining: not to be announced before its snapshot is in";
  ASSERT_TRUE(run(all, [&] { return nb->ready(2) && nc->ready(3); }));
  EXPECT_EQ(instance_of(*nb, "ids2")["ready_how"], "joined from a snapshot");
  EXPECT_EQ(b.value(3), 5u) << "the snapshot carried the earlier increment";
  EXPECT_EQ(c.value(3), 5u);

  // an increment on one packet path shows on the others within a bounded delay
  auto t0 = std::chrono::steady_clock::now();
  b.add(3, 7);
  c.add(9, 1);
  ASSERT_TRUE(run(all, [&] { return a.value(3) == 12 && c.value(3) == 12 && a.value(9) == 1 && b.value(9) == 1; }))
      << a.value(3) << " " << c.value(3) << " " << a.value(9) << " " << b.value(9);
  auto delay = std::chrono::steady_clock::now() - t0;
  EXPECT_LT(delay, 500ms);
  EXPECT_EQ(b.value(3), 12u);

  // status: the transport and the peers with RTT and state
  json st = nb->status();
  ASSERT_EQ(st["transports"].size(), 1u);
  EXPECT_EQ(st["transports"][0]["mode"], "udp");
  EXPECT_EQ(st["transports"][0]["reason"], "no state interfaces");
  ASSERT_EQ(st["instances"].size(), 1u);
  EXPECT_EQ(st["instances"][0]["peers"].size(), 2u);
  for (const auto& p : st["instances"][0]["peers"]) {
    EXPECT_TRUE(p["state"] == "active" || p["state"] == "lagging") << p;  // lagging: RTT on a busy host
    EXPECT_GT(p["srtt_us"].get<uint64_t>(), 0u);
  }

  // forged: a well-formed message signed with a key nobody holds
  const state::Schema& schema = [&]() -> const state::Schema& {
    static state::Schema s = *state::Schema::make({{.id = CT_OBJ_GC, .kind = state::Kind::GCounter, .name = "t_gc", .cells = CT_GC_CELLS},
                                                  {.id = CT_OBJ_GCK, .kind = state::Kind::GCounter, .name = "t_gck", .cells = CT_GCK_KEYS, .key_size = 8},
                                                  {.id = CT_OBJ_PN, .kind = state::Kind::PNCounter, .name = "t_pn", .cells = CT_PN_CELLS},
                                                  {.id = CT_OBJ_CMS, .kind = state::Kind::CountMin, .name = "t_cms", .cells = CT_CMS_ROWS * CT_CMS_WIDTH, .rows = CT_CMS_ROWS},
                                                  {.id = CT_OBJ_CBF, .kind = state::Kind::CountingBloom, .name = "t_cbf", .cells = CT_CBF_CELLS, .rows = CT_CBF_HASHES},
                                                  {.id = CT_OBJ_SET, .kind = state::Kind::AwSet, .name = "t_set", .cells = CT_SET_KEYS, .key_size = 16},
                                                  {.id = CT_OBJ_REG, .kind = state::Kind::RegMap, .name = "t_reg", .cells = CT_REG_KEYS, .key_size = 16}});
    return s;
  }();
  state::Message m;
  m.h.type = state::MsgType::Delta;
  m.h.service = kService;
  m.h.schema = schema.digest();
  m.h.sender = {9, 9000};
  m.h.receiver = 2;
  m.h.seq = 1;
  m.h.wall_us = clock.wall_us();
  m.h.tx_us = clock.mono_us();
  m.from = 0;
  m.to = 1;
  m.origins = {{9, 9000}};
  state::WireRecord rec;
  rec.object = CT_OBJ_GC;
  rec.origin = 0;
  rec.key = state::Key::index(3);
  rec.value.a = 1000;
  m.records = {rec};
  auto forger = *state::Keyring::make({key(1, 0x66)}, 1);
  auto forged = state::encode(m, schema, *forger);
  ASSERT_TRUE(forged.has_value());
  inject("127.0.0.2", *forged);
  ASSERT_TRUE(run(all, [&] { return instance_of(*nb, "ids2")["rejected"]["bad_tag"] == 1; }))
      << instance_of(*nb, "ids2")["rejected"].dump();
  EXPECT_EQ(b.value(3), 12u) << "a forged record must not be merged";

  // replayed: a genuine message (the right key, a keepalive of an instance that is not a
  // member) twice: accepted once, the copy refused
  auto genuine = *state::Keyring::make({key(1, 0x11)}, 1);
  m.h.seq = 2;
  m.to = 0;
  m.origins.clear();
  m.records.clear();
  auto real = state::encode(m, schema, *genuine);
  ASSERT_TRUE(real.has_value());
  inject("127.0.0.2", *real);
  inject("127.0.0.2", *real);
  ASSERT_TRUE(run(all, [&] { return instance_of(*nb, "ids2")["rejected"]["replay"] == 1; }))
      << instance_of(*nb, "ids2")["rejected"].dump();
  EXPECT_EQ(instance_of(*nb, "ids2")["counters"]["not_member"], 1) << "authenticated, but not a member";

  // malformed (too short to name a receiver) and misdirected: counted by the dispatcher
  inject("127.0.0.2", state::Bytes(10, 0xab));
  m.h.receiver = 77;
  m.h.seq = 3;
  inject("127.0.0.2", *state::encode(m, schema, *genuine));
  ASSERT_TRUE(run(all, [&] { return nb->dispatch_stats().malformed == 1 && nb->dispatch_stats().no_receiver == 1; }));
  json d = nb->status()["dispatch"];
  EXPECT_EQ(d["malformed"], 1);
  EXPECT_EQ(d["no_receiver"], 1);
  // a wire version from another release: refused as such, not as malformed
  m.h.receiver = 2;
  m.h.seq = 4;
  auto other = *state::encode(m, schema, *genuine);
  other[0] = state::kWireVersion + 1;
  inject("127.0.0.2", other);
  ASSERT_TRUE(run(all, [&] { return nb->dispatch_stats().bad_version == 1; }));
  EXPECT_EQ(nb->status()["dispatch"]["bad_version"], 1);
  EXPECT_EQ(nb->dispatch_stats().malformed, 1u);

  // key rotation without a restart: add key 2 everywhere, send with it, drop key 1
  auto spec_with = [&](std::vector<state::KeySpec> keys, uint8_t send) {
    ReplicationSpec s;
    s.port = port;
    s.keys = std::move(keys);
    s.send_key = send;
    return s;
  };
  for (auto* n : all) ASSERT_TRUE(n->reconfigure(spec_with({key(1, 0x11), key(2, 0x22)}, 1), -1, "").has_value());
  for (auto* n : all) ASSERT_TRUE(n->reconfigure(spec_with({key(1, 0x11), key(2, 0x22)}, 2), -1, "").has_value());
  for (auto* n : all) ASSERT_TRUE(n->reconfigure(spec_with({key(2, 0x22)}, 2), -1, "").has_value());
  a.add(3, 100);
  ASSERT_TRUE(run(all, [&] { return b.value(3) == 112 && c.value(3) == 112; })) << b.value(3) << " " << c.value(3);
  EXPECT_GT(instance_of(*nb, "ids2")["accepted_by_key"]["2"].get<uint64_t>(), 0u);
  EXPECT_EQ(nb->status()["send_key"], 2);

  // an instance removed from the node leaves (drains): the others keep its increments
  nc->set_local({});
  EXPECT_FALSE(nc->replicating(3));
  ASSERT_TRUE(run(all, [&] { return nc->status()["instances"].empty(); }, 5000ms)) << nc->status().dump();
  EXPECT_EQ(a.value(9), 1u);
}

// The expiry hook of the daemon (docs/state.md 3.11): an object published with expire_s is swept
// by the replication tick; a set element added on a's packet path reaches b, then expires (a
// local remove on whichever node swept it first, replicated to the other) about a second after
// its add, and the instance status counts it.
TEST_F(ReplicationDaemonTest, PublishedExpiryRemovesASetElementOnEveryNode) {
  TestNf a(dir, "exp1", 1, 1000), b(dir, "exp2", 2, 2000);
  for (TestNf* t : {&a, &b}) {
    nf::Published p = state::test::crdt_test_published(t->skel, t->name, t->id, t->id * 1000, getpid());
    for (auto& o : p.crdt->objects)
      if (o.map == "t_set") o.expire_s = 1;
    ASSERT_TRUE(nf::write_published(t->path, p).has_value());
  }
  auto na = node("127.0.0.1", {key(1, 0x11)}, 1);
  auto nb = node("127.0.0.2", {key(1, 0x11)}, 1);
  std::map<uint16_t, std::vector<state::Replicator::Member>> members;
  for (auto [id, addr] : {std::pair{1u, "127.0.0.1"}, std::pair{2u, "127.0.0.2"}}) {
    in_addr ia{};
    inet_pton(AF_INET, addr, &ia);
    members[kService].push_back({id, {ia.s_addr, port}});
  }
  na->set_members({{kService, {members[kService][0]}}});
  na->set_local({{"exp1", 1, kService, a.path}});
  na->tick();
  ASSERT_TRUE(na->ready(1));
  na->set_members(members);
  nb->set_members(members);
  nb->set_local({{"exp2", 2, kService, b.path}});
  ASSERT_TRUE(run({na.get(), nb.get()}, [&] { return nb->ready(2); }));
  auto contains = [](TestNf& t) {
    crdt_test_op o{.code = CT_SET_CONTAINS};
    o.key.b[0] = 0x5c;
    state::test::crdt_test_run(t.skel, o);
    return o.result != 0;
  };
  crdt_test_op add{.code = CT_SET_ADD};
  add.key.b[0] = 0x5c;
  state::test::crdt_test_run(a.skel, add);
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(run({na.get(), nb.get()}, [&] { return contains(b); })) << "the add replicated";
  ASSERT_TRUE(run({na.get(), nb.get()}, [&] { return !contains(a) && !contains(b); }, 5000ms))
      << "expired on both";
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 1s) << "not before its expiry time";
  const uint64_t removed = instance_of(*na, "exp1")["expiry"]["set_removed"].get<uint64_t>() +
                           instance_of(*nb, "exp2")["expiry"]["set_removed"].get<uint64_t>();
  EXPECT_GE(removed, 1u);
  EXPECT_LE(removed, 2u) << "at most one remove per node";
  EXPECT_GT(instance_of(*na, "exp1")["expiry"]["sweeps"].get<uint64_t>(), 0u);
  EXPECT_EQ(instance_of(*na, "exp1")["expiry"]["errors"], 0u);
}

TEST(ReplicationMembers, FromTheLsdbTopology) {
  plane::Topology t;
  auto inst = [](uint32_t router, uint32_t id, uint32_t svc_addr, uint32_t ep, uint32_t flags, bool held = false) {
    plane::Instance i;
    i.router = router;
    i.info.service_addr = svc_addr;
    i.info.service_len = 32;
    i.info.instance_id = id;
    i.info.nsh_endpoint = ep;
    i.info.flags = flags;
    i.held = held;
    return i;
  };
  t.instances = {inst(1, 11, 0x0a640001, 0x0a000001, 1), inst(2, 12, 0x0a640001, 0x0a000002, 1),
                 inst(3, 13, 0x0a640001, 0x0a000003, 1 | ospf::kVnfFlagDown),  // dead: not a member
                 inst(4, 14, 0x0a640001, 0x0a000004, 1, true),                  // withdrawn, held
                 inst(1, 21, 0x0a640002, 0x0a000001, 1),                        // another service
                 inst(1, 31, 0x0a6400ff, 0x0a000001, 1)};                       // not ours
  auto m = members_from_topology(t, {{1, 0x0a640001, 32}, {2, 0x0a640002, 32}, {3, 0x0a640003, 32}}, 4795);
  ASSERT_EQ(m.size(), 3u);
  ASSERT_EQ(m[1].size(), 2u);
  EXPECT_EQ(m[1][0].id, 11u);
  EXPECT_EQ(m[1][0].addr.addr, htonl(0x0a000001));
  EXPECT_EQ(m[1][0].addr.port, 4795);
  EXPECT_EQ(m[1][1].id, 12u);
  ASSERT_EQ(m[2].size(), 1u);
  EXPECT_EQ(m[2][0].id, 21u);
  EXPECT_TRUE(m[3].empty()) << "a service with no instance left has no members";
}

// A dead node's VNF LSAs stay in the LSDB (its neighbours drop their links to it; nobody is left
// to withdraw them): its instances are listed lost, the others are members (docs/state.md 3.13).
TEST(ReplicationMembers, InstancesOfAnUnreachableRouterAreLost) {
  plane::Topology t;
  auto inst = [](uint32_t router, uint32_t id, uint32_t ep) {
    plane::Instance i;
    i.router = router;
    i.info.service_addr = 0x0a640001;
    i.info.service_len = 32;
    i.info.instance_id = id;
    i.info.nsh_endpoint = ep;
    i.info.flags = 1;
    return i;
  };
  t.instances = {inst(1, 11, 0x0a000001), inst(2, 12, 0x0a000002), inst(3, 13, 0x0a000003)};
  auto m = members_from_topology(t, {{1, 0x0a640001, 32}}, 4795, [](uint32_t router) { return router != 3; });
  ASSERT_EQ(m[1].size(), 3u);
  EXPECT_FALSE(m[1][0].lost);
  EXPECT_FALSE(m[1][1].lost);
  EXPECT_EQ(m[1][2].id, 13u);
  EXPECT_TRUE(m[1][2].lost) << "router 3 is not reached by SPF";
  for (const auto& x : members_from_topology(t, {{1, 0x0a640001, 32}}, 4795)[1])
    EXPECT_FALSE(x.lost) << "without reachability every router is reached";
}

}  // namespace
}  // namespace anychain::daemon
