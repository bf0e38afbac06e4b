// FTC in XDP (bpf/nf_state.h, docs/ftc.md Section 3) through the test-only NF
// tests/bpf/ftc_test.bpf.c, with BPF_PROG_TEST_RUN: exact bytes for head append, no-op log,
// replica apply (in order, out of order held, duplicates), tail strip and commit, propagating and
// filtered packets, stubs; every drop reason; the same hop in C++ (agent/ftc/hop.h) giving the
// same bytes on random histories; and two CPUs on one partition giving a serialisable history.
// Over 500 lines: one exact-byte fixture per role of the hop (docs/ftc.md Section 3); they
// share the frame builders at the top.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <xdp/xsk.h>

#include <atomic>
#include <chrono>
#include <random>
#include <set>
#include <thread>

#include "common/netns.h"
#include "common/packet.h"
#include "ftc/hop.h"
#include "ftc_test.skel.h"

namespace anychain::test {
namespace {

namespace ftc = anychain::ftc;

constexpr uint32_t kSpi = 42, kHash = 0x11223344, kIngress = 0x0a000001;
constexpr uint32_t kCounter = 0, kRead = 1, kTransfer = 2, kBig = 3;
const Mac kA = {0x02, 0, 0, 0, 0, 0x0a}, kB = {0x02, 0, 0, 0, 0, 0x0b};

struct TestCfg {
  uint32_t mode;
  uint32_t filter;
  uint64_t idle;
};

struct RunResult {
  int verdict = -1;
  Bytes out;
};

class FtcBpf : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (geteuid() != 0) return;
    // a private network namespace for the AF_XDP test's veth pair (and nothing else leaks out)
    sandbox_ = enter_sandbox();
    skel_ = ftc_test_bpf__open_and_load();
  }
  static void TearDownTestSuite() {
    if (skel_) ftc_test_bpf__destroy(skel_);
    skel_ = nullptr;
  }
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (BPF)";
    ASSERT_NE(skel_, nullptr) << "the test NF did not load (see the verifier log above)";
    clear(bpf_map__fd(skel_->maps.nf_head));
    clear(bpf_map__fd(skel_->maps.nf_replica));
    std::vector<uint64_t> zero(libbpf_num_possible_cpus(), 0);
    for (uint32_t i = 0; i < AC_FTC_STAT_SLOTS; ++i)
      ASSERT_EQ(bpf_map_update_elem(bpf_map__fd(skel_->maps.nf_ftc_stats), &i, zero.data(), 0), 0);
    for (uint32_t id = 0; id < 64; ++id) peer(id, false);
    for (uint32_t id : {3u, 5u, 7u, 9u, 11u}) peer(id, true);
    config(9, 0, true);
    mode(kCounter);
  }

  static void clear(int fd) {
    std::vector<uint8_t> key(64), next(64);
    while (bpf_map_get_next_key(fd, nullptr, next.data()) == 0) bpf_map_delete_elem(fd, next.data());
  }
  static void config(uint16_t id, uint8_t inc, bool stateful) {
    ac_nf_ftc_cfg c{};
    c.instance = id;
    c.inc = inc;
    c.flags = stateful ? AC_NF_STATEFUL : 0;
    uint32_t k = 0;
    ASSERT_EQ(bpf_map_update_elem(bpf_map__fd(skel_->maps.nf_ftc_cfg), &k, &c, 0), 0);
  }
  static void mode(uint32_t m, bool filter = false, uint64_t idle = 0) {
    TestCfg t{m, filter ? 1u : 0u, idle};
    uint32_t k = 0;
    ASSERT_EQ(bpf_map_update_elem(bpf_map__fd(skel_->maps.ftc_test), &k, &t, 0), 0);
  }
  static void peer(uint32_t id, bool known) {
    uint32_t v = known ? 1 : 0;
    ASSERT_EQ(bpf_map_update_elem(bpf_map__fd(skel_->maps.nf_peers), &id, &v, 0), 0);
  }
  static uint64_t stat(enum ac_ftc_stat s) {
    std::vector<uint64_t> v(libbpf_num_possible_cpus());
    uint32_t k = s;
    EXPECT_EQ(bpf_map_lookup_elem(bpf_map__fd(skel_->maps.nf_ftc_stats), &k, v.data()), 0);
    uint64_t n = 0;
    for (auto x : v) n += x;
    return n;
  }
  static std::optional<ac_st_rec> head(uint8_t si = 255) {
    ac_st_pkey k{(kSpi << 8) | si, kHash};
    ac_st_rec r{};
    if (bpf_map_lookup_elem_flags(bpf_map__fd(skel_->maps.nf_head), &k, &r, BPF_F_LOCK)) return std::nullopt;
    return r;
  }
  static std::optional<ac_st_rec> replica(uint16_t id, uint8_t si = 255) {
    ac_st_rkey k{id, (kSpi << 8) | si, kHash};
    ac_st_rec r{};
    if (bpf_map_lookup_elem_flags(bpf_map__fd(skel_->maps.nf_replica), &k, &r, BPF_F_LOCK)) return std::nullopt;
    return r;
  }
  // A record installed by the agent (re-request, recovery): BPF_F_LOCK, as docs/ftc.md 4.3 says.
  static int install(const ftc::RecordKey& k, const ftc::Record& r) {
    ac_st_rkey key{k.id, (k.flow.spi << 8) | k.si, k.flow.hash};
    ac_st_rec v{};
    v.seq = r.seq;
    v.inc = r.inc;
    v.held = r.held;
    v.flags = AC_ST_REC_VALID;
    int j = 0;
    for (const auto& [tk, val] : r.kv) {
      if (j >= AC_ST_SLOTS) return -1;
      auto& sl = v.slot[j++];
      sl.table = tk.first;
      sl.flags = AC_ST_USED;
      sl.klen = static_cast<uint8_t>(tk.second.size());
      sl.vlen = static_cast<uint8_t>(val.size());
      std::copy(tk.second.begin(), tk.second.end(), sl.key);
      std::copy(val.begin(), val.end(), sl.val);
    }
    return bpf_map_update_elem(bpf_map__fd(skel_->maps.nf_replica), &key, &v, BPF_F_LOCK);
  }

  static RunResult run(const Bytes& frame) {
    RunResult r;
    r.out.resize(frame.size() + 512);
    LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame.data(), .data_out = r.out.data(),
                .data_size_in = static_cast<uint32_t>(frame.size()),
                .data_size_out = static_cast<uint32_t>(r.out.size()), .repeat = 1);
    int e = bpf_prog_test_run_opts(bpf_program__fd(skel_->progs.ftc_test_nf), &o);
    EXPECT_EQ(e, 0) << "bpf_prog_test_run: " << strerror(-e);
    r.verdict = static_cast<int>(o.retval);
    r.out.resize(o.data_size_out);
    return r;
  }

  static ftc::Nsh base(uint8_t f, uint8_t flags = 0) {
    ftc::Nsh n;
    n.spi = kSpi;
    n.si = 255;
    n.other.push_back(ftc::flow_hash_tlv(kHash));
    n.ctrl = ftc::Ctrl{flags, f, kIngress};
    return n;
  }
  static ftc::Log log_of(uint16_t id, uint32_t seq, uint8_t held = 1, uint8_t count = 1, uint8_t value = 1) {
    ftc::Log l;
    l.mbox = {id, 0, 255};
    l.seq = seq;
    l.held = held;
    l.count = count;
    if (count) l.writes.push_back({1, false, Bytes{'c'}, Bytes{0, 0, 0, value}});
    return l;
  }
  // [Ethernet kA -> kB, NSH][NSH][inner]
  static Bytes frame(const Bytes& nsh, const Bytes& inner = {}) {
    Bytes f = eth(kA, kB, AC_ETH_P_NSH);
    append(f, nsh);
    append(f, inner);
    return f;
  }
  static Bytes frame(const ftc::Nsh& n, const Bytes& inner = {}) {
    auto b = ftc::encode_nsh(n);
    EXPECT_TRUE(b.has_value()) << b.error().message;
    return frame(*b, inner);
  }
  // What the NF returns for an NSH it rebuilt to `nsh`: MACs swapped, SI - 1.
  static Bytes returned(Bytes nsh, const Bytes& inner = {}) {
    nsh[7] -= 1;
    Bytes f = eth(kB, kA, AC_ETH_P_NSH);
    append(f, nsh);
    append(f, inner);
    return f;
  }

  static inline ftc_test_bpf* skel_ = nullptr;
  static inline std::string sandbox_;
};

const Bytes kInner = ipv4("10.1.0.1", "10.2.0.2", L4{});

// docs/ftc.md 3.5: the head runs its transaction and appends its log after the existing TLVs.
TEST_F(FtcBpf, HeadAppendsItsLogExactBytes) {
  config(7, 0, true);
  Bytes in = {0x0f, 0xc7, 0x02, 0x01, 0x00, 0x00, 0x2a, 0xff,                // 7 words, SPI 42, SI 255
              0xff, 0xf6, 0x01, 0x04, 0x11, 0x22, 0x33, 0x44,                // flow hash
              0xff, 0xf6, 0x04, 0x08, 0x00, 0x01, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x01};  // control f = 1
  Bytes out = {0x0f, 0xce, 0x02, 0x01, 0x00, 0x00, 0x2a, 0xfe,               // 14 words, SI 254
               0xff, 0xf6, 0x01, 0x04, 0x11, 0x22, 0x33, 0x44,
               0xff, 0xf6, 0x04, 0x08, 0x00, 0x01, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x01,
               0xff, 0xf6, 0x02, 0x15,                                        // log, 21 bytes
               0x00, 0x01, 0x01, 0x01,                                        // held 1, 1 write, count 1
               0x00, 0x07, 0x00, 0xff,                                        // instance 7, inc 0, SI 255
               0x00, 0x00, 0x00, 0x01,                                        // seq 1
               0x01, 0x00, 0x01, 0x04, 'c', 0x00, 0x00, 0x00, 0x01,           // table 1, "c" = 1
               0x00, 0x00, 0x00};
  auto r = run(frame(in, kInner));
  ASSERT_EQ(r.verdict, XDP_TX);
  Bytes want = eth(kB, kA, AC_ETH_P_NSH);
  append(want, out);
  append(want, kInner);
  EXPECT_EQ(hex(r.out), hex(want));
  EXPECT_EQ(stat(AC_FTC_ST_LOG_APPENDED), 1u);
  auto rec = head();
  ASSERT_TRUE(rec.has_value());
  EXPECT_EQ(rec->seq, 1u);
  EXPECT_EQ(rec->flags & AC_ST_REC_VALID, AC_ST_REC_VALID);
  EXPECT_EQ(rec->slot[0].key[0], 'c');
  EXPECT_EQ(rec->slot[0].val[3], 1);
  // the second packet writes seq 2, value 2
  auto r2 = run(frame(in, kInner));
  auto n2 = ftc::decode_nsh(Bytes(r2.out.begin() + ETH_HLEN, r2.out.end()));
  ASSERT_TRUE(n2.has_value());
  EXPECT_EQ(n2->logs.at(0).seq, 2u);
  EXPECT_EQ(n2->logs.at(0).writes.at(0).value, (Bytes{0, 0, 0, 2}));
}

TEST_F(FtcBpf, NothingWrittenAppendsANoOpLog) {
  config(7, 0, true);
  run(frame(base(1)));  // seq 1
  mode(kRead);
  auto r = run(frame(base(1)));
  ASSERT_EQ(r.verdict, XDP_TX);
  Bytes nsh(r.out.begin() + ETH_HLEN, r.out.end());
  Bytes tail(nsh.end() - 16, nsh.end());
  EXPECT_EQ(tail, (Bytes{0xff, 0xf6, 0x02, 0x0c, 0x00, 0x01, 0x00, 0x00, 0x00, 0x07, 0x00, 0xff, 0, 0, 0, 1}))
      << "a no-op log at the sequence read";
  EXPECT_EQ(nsh[1] & 0x3f, (28 + 16) / 4);
  EXPECT_EQ(stat(AC_FTC_ST_NOOP_APPENDED), 1u);
  EXPECT_EQ(head()->seq, 1u);
}

// A replica applies in order; a log ahead of its record is held (no socket in nf_hold here:
// dropped and counted, the packet and the record untouched); replays are satisfied.
TEST_F(FtcBpf, ReplicaAppliesInOrderAndHoldsAGap) {
  config(9, 0, false);
  auto with = [](ftc::Log l) {
    auto n = base(2);
    n.logs.push_back(l);
    return n;
  };
  Bytes p1 = frame(with(log_of(7, 1, 1, 1, 1)));
  auto r1 = run(p1);
  ASSERT_EQ(r1.verdict, XDP_TX);
  Bytes want = p1;
  want[ETH_HLEN + 28 + 5] = 2;  // held 1 -> 2, nothing else changes
  want[ETH_HLEN + 7] -= 1;
  std::copy(kB.begin(), kB.end(), want.begin());
  std::copy(kA.begin(), kA.end(), want.begin() + 6);
  EXPECT_EQ(hex(r1.out), hex(want));
  auto rec = replica(7);
  ASSERT_TRUE(rec.has_value());
  EXPECT_EQ(rec->seq, 1u);
  EXPECT_EQ(rec->held, 2);
  EXPECT_EQ(rec->slot[0].val[3], 1);
  EXPECT_FALSE(head().has_value()) << "a replica-only hop has no store of its own";

  Bytes p3 = frame(with(log_of(7, 3, 1, 1, 3)));
  auto held = run(p3);
  EXPECT_EQ(held.verdict, XDP_DROP) << "no hold socket in the test: dropped";
  EXPECT_EQ(hex(held.out), hex(p3)) << "a held packet is not modified";
  EXPECT_EQ(stat(AC_FTC_ST_GAP), 1u);
  EXPECT_EQ(stat(AC_FTC_ST_HOLD_UNAVAILABLE), 1u);
  EXPECT_EQ(replica(7)->seq, 1u);

  EXPECT_EQ(run(frame(with(log_of(7, 2, 1, 1, 2)))).verdict, XDP_TX);
  EXPECT_EQ(run(p3).verdict, XDP_TX) << "the held packet re-run once the gap closed";
  EXPECT_EQ(replica(7)->seq, 3u);
  EXPECT_EQ(replica(7)->slot[0].val[3], 3);
  EXPECT_EQ(stat(AC_FTC_ST_APPLIED), 3u);
  // a replayed log changes nothing
  EXPECT_EQ(run(frame(with(log_of(7, 2, 1, 1, 99)))).verdict, XDP_TX);
  EXPECT_EQ(replica(7)->slot[0].val[3], 3);
  EXPECT_EQ(stat(AC_FTC_ST_SATISFIED), 1u);
}

// The tail of a returned log strips it and adds the commit entry, the last TLV.
TEST_F(FtcBpf, TailStripsAndCommitsExactBytes) {
  config(9, 0, true);
  auto n = base(1);
  ftc::Log back = log_of(7, 5, 1, 5, 5);  // transactions 1..5 coalesced by the forwarder
  back.flags = AC_FTC_LOG_WRAPPED;
  n.logs.push_back(back);
  auto r = run(frame(n));
  ASSERT_EQ(r.verdict, XDP_TX);
  Bytes want = {0x0f, 0xd1, 0x02, 0x01, 0x00, 0x00, 0x2a, 0xfe,  // 17 words, SI 254
                0xff, 0xf6, 0x01, 0x04, 0x11, 0x22, 0x33, 0x44,
                0xff, 0xf6, 0x04, 0x08, 0x00, 0x01, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x01,
                0xff, 0xf6, 0x02, 0x15, 0x00, 0x01, 0x01, 0x01, 0x00, 0x09, 0x00, 0xff, 0x00, 0x00, 0x00, 0x01,
                0x01, 0x00, 0x01, 0x04, 'c', 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,  // the hop's own log
                0xff, 0xf6, 0x03, 0x08, 0x00, 0x07, 0x00, 0xff, 0x00, 0x00, 0x00, 0x05};  // commit (7, 5)
  EXPECT_EQ(hex(Bytes(r.out.begin() + ETH_HLEN, r.out.end())), hex(want));
  EXPECT_EQ(stat(AC_FTC_ST_TAIL_STRIPPED), 1u);
  EXPECT_EQ(stat(AC_FTC_ST_COMMITS), 1u);
  EXPECT_EQ(replica(7)->seq, 5u);
}

TEST_F(FtcBpf, PropagatingPacketsSkipTheNf) {
  config(9, 0, true);
  auto n = base(2, AC_FTC_CTRL_PROPAGATING);
  n.logs.push_back(log_of(7, 1));
  auto r = run(frame(n));
  ASSERT_EQ(r.verdict, XDP_TX);
  auto o = ftc::decode_nsh(Bytes(r.out.begin() + ETH_HLEN, r.out.end()));
  ASSERT_TRUE(o.has_value()) << o.error().message;
  ASSERT_EQ(o->logs.size(), 1u) << "no log of this hop";
  EXPECT_EQ(o->logs[0].held, 2);
  EXPECT_TRUE(o->ctrl->propagating());
  EXPECT_FALSE(head().has_value()) << "the NF did not run";
  EXPECT_EQ(replica(7)->seq, 1u);
  EXPECT_EQ(stat(AC_FTC_ST_PROPAGATING), 1u);
}

TEST_F(FtcBpf, AFilteredPacketLeavesPropagatingWithoutItsInnerPacket) {
  config(9, 0, true);
  mode(kCounter, true);
  auto r = run(frame(base(1), kInner));
  ASSERT_EQ(r.verdict, XDP_TX);
  auto o = ftc::decode_nsh(Bytes(r.out.begin() + ETH_HLEN, r.out.end()));
  ASSERT_TRUE(o.has_value()) << o.error().message;
  EXPECT_TRUE(o->ctrl->propagating());
  ASSERT_EQ(o->logs.size(), 1u) << "its transaction is logged";
  EXPECT_EQ(r.out.size(), ETH_HLEN + (r.out[ETH_HLEN + 1] & 0x3fu) * 4) << "the inner packet is gone";
  EXPECT_EQ(stat(AC_FTC_ST_FILTERED), 1u);
}

TEST_F(FtcBpf, ALogOverTheShareLeavesAStubAndGoesToTheRingBuffer) {
  config(9, 0, true);
  mode(kBig);
  std::vector<ac_ftc_overflow> got;
  auto* rb = ring_buffer__new(
      bpf_map__fd(skel_->maps.nf_overflow),
      [](void* ctx, void* data, size_t size) {
        if (size >= sizeof(ac_ftc_overflow))
          static_cast<std::vector<ac_ftc_overflow>*>(ctx)->push_back(*static_cast<ac_ftc_overflow*>(data));
        return 0;
      },
      &got, nullptr);
  ASSERT_NE(rb, nullptr);
  ring_buffer__consume(rb);
  got.clear();
  auto r = run(frame(base(4)));
  ASSERT_EQ(r.verdict, XDP_TX);
  auto o = ftc::decode_nsh(Bytes(r.out.begin() + ETH_HLEN, r.out.end()));
  ASSERT_TRUE(o.has_value()) << o.error().message;
  ASSERT_EQ(o->logs.size(), 1u);
  EXPECT_TRUE(o->logs[0].stub());
  EXPECT_EQ(o->logs[0].seq, 1u);
  EXPECT_EQ(o->logs[0].count, 1);
  EXPECT_EQ(stat(AC_FTC_ST_STUB), 1u);
  ring_buffer__consume(rb);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].spi_si, (kSpi << 8) | 255);
  EXPECT_EQ(got[0].hash, kHash);
  auto full = ftc::decode_log(std::span<const uint8_t>(got[0].log, got[0].len));
  ASSERT_TRUE(full.has_value()) << full.error().message;
  ASSERT_EQ(full->writes.size(), 1u);
  EXPECT_EQ(full->writes[0].value.size(), 29u);
  EXPECT_EQ(full->seq, 1u);
  ring_buffer__free(rb);
}

TEST_F(FtcBpf, BadInputIsDroppedAndCountedByReason) {
  config(9, 0, false);
  auto one = [](ftc::Log l, uint8_t f = 1) {
    auto n = base(f);
    n.logs.push_back(l);
    return n;
  };
  // a log of an instance nf_peers does not list
  EXPECT_EQ(run(frame(one(log_of(40, 1)))).verdict, XDP_DROP);
  EXPECT_EQ(stat(AC_FTC_ST_UNKNOWN_MBOX), 1u);
  // this very instance's log came back
  EXPECT_EQ(run(frame(one(log_of(9, 1)))).verdict, XDP_DROP);
  EXPECT_EQ(stat(AC_FTC_ST_OWN_LOG), 1u);
  // truncated TLV: the log's length byte points past the NSH
  Bytes b = frame(one(log_of(7, 1)));
  b[ETH_HLEN + 28 + 3] = 100;
  EXPECT_EQ(run(b).verdict, XDP_DROP);
  // a log over the size limit (value length 125)
  Bytes big = frame(base(1));
  Bytes tlv = {0xff, 0xf6, 0x02, 125};
  tlv.resize(4 + 128, 0);
  tlv[5] = 1;
  big.insert(big.end(), tlv.begin(), tlv.end());
  big[ETH_HLEN + 1] = static_cast<uint8_t>((big[ETH_HLEN + 1] & 0xc0) | ((big.size() - ETH_HLEN) / 4));
  EXPECT_EQ(run(big).verdict, XDP_DROP);
  // an NSH longer than the frame
  Bytes cut = frame(one(log_of(7, 1)));
  cut.resize(cut.size() - 8);
  EXPECT_EQ(run(cut).verdict, XDP_DROP);
  EXPECT_EQ(stat(AC_FTC_ST_BAD_TLV), 3u);
  // a fenced incarnation: the record knows incarnation 1, a log of 0 comes
  auto ok = run(frame(one([] {
    ftc::Log l = log_of(7, 1, 1, 1, 1);
    l.mbox.inc = 1;
    return l;
  }(), 2)));
  ASSERT_EQ(ok.verdict, XDP_TX);
  EXPECT_EQ(run(frame(one(log_of(7, 2), 2))).verdict, XDP_DROP);
  EXPECT_EQ(stat(AC_FTC_ST_STALE), 1u);
  // MD type 1: not FTC, the NF runs without state
  Nsh md1;
  md1.spi = kSpi;
  auto plain = run(frame(nsh(md1), kInner));
  EXPECT_EQ(plain.verdict, XDP_TX);
  EXPECT_EQ(stat(AC_FTC_ST_NO_CTRL), 1u);
  EXPECT_FALSE(head().has_value());
  EXPECT_EQ(replica(7)->seq, 1u) << "nothing above changed the record";
}

// A record idle longer than the NF's idle time is reset inside the next transaction: the reset is
// logged (the sequence continues), and the counter starts again.
TEST_F(FtcBpf, AnIdleRecordIsResetByALoggedTransaction) {
  config(7, 0, true);
  mode(kCounter, false, 1);  // one jiffy
  run(frame(base(1)));
  run(frame(base(1)));
  EXPECT_EQ(head()->seq, 2u);
  EXPECT_EQ(head()->slot[0].val[3], 2);
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  auto r = run(frame(base(1)));
  auto o = ftc::decode_nsh(Bytes(r.out.begin() + ETH_HLEN, r.out.end()));
  ASSERT_TRUE(o.has_value());
  ASSERT_EQ(o->logs.size(), 1u);
  EXPECT_EQ(o->logs[0].seq, 3u) << "the sequence continues";
  ASSERT_EQ(o->logs[0].writes.size(), 1u) << "the reset and the new count are one write of the key";
  EXPECT_EQ(o->logs[0].writes[0].value, (Bytes{0, 0, 0, 1}));
}

// The same hop in C++ (agent/ftc/hop.cc) and in XDP produce the same bytes, verdicts and records
// over random histories: predecessors' logs (built by C++ upstream stores) reordered, duplicated
// and lost, returned logs, propagating packets, several f.
TEST_F(FtcBpf, MatchesTheCxxHopOnRandomHistories) {
  std::mt19937_64 rng(20240613);
  for (int round = 0; round < 6; ++round) {
    SetUp();
    uint8_t f = static_cast<uint8_t>(1 + round % 4);
    bool stateful = round % 2 == 0;
    config(9, 0, stateful);
    mode(kCounter);
    ftc::Store up7(7, 0), up5(5, 0), mine(9, 0);
    ftc::HopConfig hc{9, stateful, [](uint16_t id) { return id == 3 || id == 5 || id == 7 || id == 11; }};
    auto counter = [stateful](ftc::Transaction* tx) {
      if (!tx) return ftc::NfResult{stateful};  // as the test NF: a stateful hop without a store refuses
      auto v = tx->get(1, Bytes{'c'});
      uint32_t n = v ? (uint32_t{(*v)[0]} << 24 | uint32_t{(*v)[1]} << 16 | uint32_t{(*v)[2]} << 8 | (*v)[3]) : 0;
      ++n;
      (void)tx->put(1, Bytes{'c'}, Bytes{uint8_t(n >> 24), uint8_t(n >> 16), uint8_t(n >> 8), uint8_t(n)});
      return ftc::NfResult{};
    };
    auto upstream = [&](ftc::Store& st, uint8_t si, int kind) {
      return *st.transact({kSpi, kHash}, si, [&](ftc::Transaction& tx) {
        if (kind == 0) return;
        uint8_t k = static_cast<uint8_t>('a' + rng() % 3);
        if (kind == 2 && tx.get(2, Bytes{k}))
          (void)tx.del(2, Bytes{k});
        else
          (void)tx.put(2, Bytes{k}, Bytes(1 + rng() % 12, static_cast<uint8_t>(rng())));
      });
    };
    std::vector<ftc::Nsh> pending;
    int resyncs = 0, compared = 0, forwarded = 0;
    for (int i = 0; i < 120; ++i) {
      ftc::Nsh n = base(f, rng() % 10 == 0 ? AC_FTC_CTRL_PROPAGATING : 0);
      ftc::Log a = upstream(up7, 255, static_cast<int>(rng() % 3));
      ftc::Log b = upstream(up5, 253, static_cast<int>(rng() % 3));
      b.held = static_cast<uint8_t>(1 + rng() % f);
      if (rng() % 3 == 0) b.flags = AC_FTC_LOG_WRAPPED;
      n.logs = {b, a};
      pending.push_back(n);
      // deliver a random pending packet (reordering), sometimes twice, sometimes never
      while (!pending.empty() && rng() % 3 != 0) {
        size_t j = rng() % std::min<size_t>(pending.size(), 3);
        ftc::Nsh p = pending[j];
        if (rng() % 5) pending.erase(pending.begin() + static_cast<long>(j));
        if (rng() % 10 == 0) continue;  // lost
        auto bytes = ftc::encode_nsh(p);
        ASSERT_TRUE(bytes.has_value()) << bytes.error().message;
        auto cx = ftc::run_hop(hc, mine, *bytes, counter);
        auto bp = run(frame(*bytes));
        compared++;
        forwarded += cx.verdict == ftc::Verdict::Forward;
        SCOPED_TRACE(::testing::Message() << "round " << round << " packet " << i);
        switch (cx.verdict) {
          case ftc::Verdict::Forward:
            ASSERT_EQ(bp.verdict, XDP_TX) << cx.detail;
            EXPECT_EQ(hex(bp.out), hex(returned(cx.nsh)));
            break;
          case ftc::Verdict::Hold: {
            EXPECT_EQ(bp.verdict, XDP_DROP) << "held (no socket)";
            // re-request (docs/ftc.md 4.3): the head's record installed on both sides, then
            // the held packet runs again
            ftc::Store& src = cx.gap->id == 7 ? up7 : up5;
            const ftc::Record* h = src.head(*cx.gap);
            if (!h) break;
            ftc::Record rec = *h;
            rec.held = 2;
            if (mine.install_replica(*cx.gap, rec)) {
              ASSERT_EQ(install(*cx.gap, rec), 0);
              resyncs++;
            }
            auto cx2 = ftc::run_hop(hc, mine, *bytes, counter);
            auto bp2 = run(frame(*bytes));
            if (cx2.verdict == ftc::Verdict::Forward) {
              ASSERT_EQ(bp2.verdict, XDP_TX) << cx2.detail;
              EXPECT_EQ(hex(bp2.out), hex(returned(cx2.nsh)));
            } else {
              EXPECT_EQ(bp2.verdict, XDP_DROP) << cx2.detail;
            }
            break;
          }
          case ftc::Verdict::Drop:
            EXPECT_EQ(bp.verdict, XDP_DROP) << cx.detail;
            break;
          case ftc::Verdict::Plain:
            ADD_FAILURE() << "every packet here is FTC";
        }
        if (HasFailure()) return;
      }
    }
    std::printf("round %d (f %d, %s): %d packets compared, %d forwarded, %d re-requests\n", round, f,
                stateful ? "stateful" : "replica-only", compared, forwarded, resyncs);
    EXPECT_GT(forwarded, 20) << "the comparison must exercise the forwarding path";
    // the stores agree
    for (const auto& [key, rec] : mine.replicas()) {
      auto r = replica(key.id, key.si);
      ASSERT_TRUE(r.has_value());
      EXPECT_EQ(r->seq, rec.seq) << "instance " << key.id;
      ftc::Kv kv;
      for (const auto& sl : r->slot)
        if (sl.flags & AC_ST_USED)
          kv[{sl.table, Bytes(sl.key, sl.key + sl.klen)}] = Bytes(sl.val, sl.val + sl.vlen);
      EXPECT_EQ(kv, rec.kv) << "instance " << key.id;
    }
    if (const ftc::Record* h = mine.head({9, 255, {kSpi, kHash}})) {
      ASSERT_TRUE(head().has_value());
      EXPECT_EQ(head()->seq, h->seq);
    }
    EXPECT_FALSE(!stateful && head().has_value());
  }
}

// The hold path as docs/ftc.md 4.2 describes it, on this kernel: a gap packet run as a live
// frame on an interface lands in the AF_XDP socket of nf_hold (the process's queue); once the
// gap is closed, the process re-runs the held frame through the NF with
// BPF_F_TEST_XDP_LIVE_FRAMES, and the NF's XDP_TX sends it out of the interface.
TEST_F(FtcBpf, HeldFramesReachTheProcessSocketAndARerunTransmits) {
  if (!sandbox_.empty()) GTEST_SKIP() << "no sandbox: " << sandbox_;
  sh("ip link del hftA 2>/dev/null");
  must("ip link add hftA type veth peer name hftB");
  // no IPv6 (its MLD reports would be captured too), GRO on the receiver (veth delivers
  // XDP-transmitted frames only to a peer with GRO or an XDP program)
  must("sysctl -qw net.ipv6.conf.hftA.disable_ipv6=1 net.ipv6.conf.hftB.disable_ipv6=1");
  must("ip link set hftA up && ip link set hftB up && ethtool -K hftB gro on >/dev/null");
  int ifa = static_cast<int>(if_nametoindex("hftA")), ifb = static_cast<int>(if_nametoindex("hftB"));
  ASSERT_GT(ifa, 0);
  // the process's socket: copy mode on queue 0 of hftA, inserted into nf_hold
  constexpr uint32_t kFrames = 64, kFrameSize = XSK_UMEM__DEFAULT_FRAME_SIZE;
  void* area = mmap(nullptr, kFrames * kFrameSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(area, MAP_FAILED);
  xsk_umem* umem = nullptr;
  xsk_ring_prod fill, tx;
  xsk_ring_cons comp, rx;
  ASSERT_EQ(xsk_umem__create(&umem, area, kFrames * kFrameSize, &fill, &comp, nullptr), 0);
  xsk_socket_config xc{};
  xc.rx_size = XSK_RING_CONS__DEFAULT_NUM_DESCS;
  xc.tx_size = XSK_RING_PROD__DEFAULT_NUM_DESCS;
  xc.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD;
  xc.bind_flags = XDP_COPY;
  xsk_socket* xsk = nullptr;
  int e = xsk_socket__create(&xsk, "hftA", 0, umem, &rx, &tx, &xc);
  ASSERT_EQ(e, 0) << "xsk_socket__create: " << strerror(-e);
  uint32_t idx = 0;
  ASSERT_EQ(xsk_ring_prod__reserve(&fill, kFrames / 2, &idx), kFrames / 2);
  for (uint32_t i = 0; i < kFrames / 2; ++i) *xsk_ring_prod__fill_addr(&fill, idx + i) = i * kFrameSize;
  xsk_ring_prod__submit(&fill, kFrames / 2);
  ASSERT_EQ(xsk_socket__update_xskmap(xsk, bpf_map__fd(skel_->maps.nf_hold)), 0);
  // a capture on the far end
  int cap = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK, htons(ETH_P_ALL));
  ASSERT_GE(cap, 0);
  sockaddr_ll ll{};
  ll.sll_family = AF_PACKET;
  ll.sll_protocol = htons(ETH_P_ALL);
  ll.sll_ifindex = ifb;
  ASSERT_EQ(bind(cap, reinterpret_cast<sockaddr*>(&ll), sizeof ll), 0);

  config(9, 0, false);
  auto with = [](ftc::Log l) {
    auto n = base(2);
    n.logs.push_back(l);
    return frame(n);
  };
  auto live = [&](const Bytes& f) {
    xdp_md ctx{};
    ctx.data_end = static_cast<uint32_t>(f.size());
    ctx.ingress_ifindex = static_cast<uint32_t>(ifa);
    ctx.rx_queue_index = 0;
    LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = f.data(), .data_size_in = static_cast<uint32_t>(f.size()),
                .ctx_in = &ctx, .ctx_size_in = sizeof ctx, .repeat = 1, .flags = BPF_F_TEST_XDP_LIVE_FRAMES);
    return bpf_prog_test_run_opts(bpf_program__fd(skel_->progs.ftc_test_nf), &o);
  };
  ASSERT_EQ(run(with(log_of(7, 1))).verdict, XDP_TX);
  Bytes gap = with(log_of(7, 3, 1, 1, 3));
  ASSERT_EQ(live(gap), 0);
  EXPECT_EQ(stat(AC_FTC_ST_GAP), 1u);
  EXPECT_EQ(stat(AC_FTC_ST_HOLD_UNAVAILABLE), 0u) << "the socket was there";
  // the held frame, unchanged, in the process's RX ring
  pollfd pf{xsk_socket__fd(xsk), POLLIN, 0};
  ASSERT_EQ(poll(&pf, 1, 1000), 1);
  uint32_t ri = 0;
  ASSERT_EQ(xsk_ring_cons__peek(&rx, 1, &ri), 1u);
  const xdp_desc* d = xsk_ring_cons__rx_desc(&rx, ri);
  Bytes held(static_cast<uint8_t*>(xsk_umem__get_data(area, d->addr)),
             static_cast<uint8_t*>(xsk_umem__get_data(area, d->addr)) + d->len);
  xsk_ring_cons__release(&rx, 1);
  EXPECT_EQ(hex(held), hex(gap));
  // the missing log arrives; the process re-runs the held frame live: it goes out of hftA
  ASSERT_EQ(run(with(log_of(7, 2, 1, 1, 2))).verdict, XDP_TX);
  ASSERT_EQ(live(held), 0);
  EXPECT_EQ(replica(7)->seq, 3u);
  Bytes got;
  for (int i = 0; i < 100 && got.empty(); ++i) {
    Bytes b(2048);
    ssize_t n = recv(cap, b.data(), b.size(), 0);
    if (n < 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    b.resize(static_cast<size_t>(n));
    if (b.size() > ETH_HLEN && get16(b, 12) == AC_ETH_P_NSH) got = b;  // anything else is not ours
  }
  ASSERT_FALSE(got.empty()) << "no NSH frame came out of hftA";
  Bytes want = held;
  want[ETH_HLEN + 28 + 5] = 2;  // held 1 -> 2
  want[ETH_HLEN + 7] -= 1;
  std::copy(kB.begin(), kB.end(), want.begin());
  std::copy(kA.begin(), kA.end(), want.begin() + 6);
  EXPECT_EQ(hex(got), hex(want));
  close(cap);
  xsk_socket__delete(xsk);
  xsk_umem__delete(umem);
  munmap(area, kFrames * kFrameSize);
  sh("ip link del hftA");
}

// Two CPUs run transactions on one partition at once (BPF_PROG_TEST_RUN on pinned threads). Each
// transaction moves 1 from key A to key B and logs both: the history is serialisable iff the
// sequence numbers are 1..2N, each once, and the values logged at seq s are A = 1000000 - s,
// B = s (the serial order by sequence number explains every log).
TEST_F(FtcBpf, TwoCpusOnOnePartitionAreSerialisable) {
  if (libbpf_num_possible_cpus() < 2 || std::thread::hardware_concurrency() < 2) GTEST_SKIP() << "needs two CPUs";
  config(7, 0, true);
  mode(kTransfer);
  constexpr int kPerCpu = 20000;
  Bytes in = frame(base(1));
  std::vector<std::vector<std::pair<uint32_t, std::pair<uint32_t, uint32_t>>>> seen(2);
  std::atomic<int> ready{0};
  auto worker = [&](int cpu) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    if (sched_setaffinity(0, sizeof one, &one) != 0) return;
    ready.fetch_add(1);
    while (ready.load() < 2) {
    }
    Bytes out(in.size() + 512);
    for (int i = 0; i < kPerCpu; ++i) {
      LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = in.data(), .data_out = out.data(),
                  .data_size_in = static_cast<uint32_t>(in.size()), .data_size_out = static_cast<uint32_t>(out.size()),
                  .repeat = 1);
      if (bpf_prog_test_run_opts(bpf_program__fd(skel_->progs.ftc_test_nf), &o) || o.retval != XDP_TX) return;
      auto n = ftc::decode_nsh(Bytes(out.begin() + ETH_HLEN, out.begin() + o.data_size_out));
      if (!n || n->logs.size() != 1) return;
      const auto& l = n->logs[0];
      uint32_t a = 0, b = 0;
      for (const auto& w : l.writes) {
        uint32_t v = uint32_t{w.value[0]} << 24 | uint32_t{w.value[1]} << 16 | uint32_t{w.value[2]} << 8 | w.value[3];
        (w.key == Bytes{'A'} ? a : b) = v;
      }
      seen[cpu].push_back({l.seq, {a, b}});
    }
  };
  std::thread t0(worker, 0), t1(worker, 1);
  t0.join();
  t1.join();
  ASSERT_EQ(seen[0].size(), size_t{kPerCpu}) << "CPU 0's runs failed";
  ASSERT_EQ(seen[1].size(), size_t{kPerCpu}) << "CPU 1's runs failed";
  std::set<uint32_t> seqs;
  int bad = 0;
  size_t interleaved = 0;
  for (int cpu = 0; cpu < 2; ++cpu) {
    uint32_t prev = 0;
    for (const auto& [seq, ab] : seen[cpu]) {
      seqs.insert(seq);
      bad += ab.first != 1000000 - seq || ab.second != seq;
      interleaved += seq != prev + 1;
      prev = seq;
    }
  }
  EXPECT_EQ(seqs.size(), size_t{2 * kPerCpu}) << "a sequence number given twice";
  EXPECT_EQ(*seqs.begin(), 1u);
  EXPECT_EQ(*seqs.rbegin(), uint32_t{2 * kPerCpu});
  EXPECT_EQ(bad, 0) << "logs that no serial order explains";
  EXPECT_EQ(head()->seq, uint32_t{2 * kPerCpu});
  RecordProperty("interleavings", static_cast<int>(interleaved));
  std::printf("interleavings between the two CPUs: %zu\n", interleaved);
}

}  // namespace
}  // namespace anychain::test
