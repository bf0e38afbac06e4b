// anychain-bench-ftc --bench path: the per-packet cost of FTC on the packet's whole path (issue
// 13: "per-packet cost of append / apply / strip against the same chain without FTC", target
// <= 5 %), measured as bench/nf_state_bench.cc --path measures issue 14's objects.
//
// bench/e2e_topo.h's chain of three services, each a built-in NF as anychain-nf loads it
// (nf::Nf::load, attached to the VNF's veth): firewall -> monitor -> NAT, the chain
// docs/performance.md's FTC benches use.
//
//   gen --> r1: classify + NSH push --> fw --> r1 --> monitor --> r1 --> NAT --> r1: chain end --> sink
//
// The same chain twice, the builds swapped between interleaved samples by rewriting r1's one
// classifier rule (Dataplane::set_policies; the NFs, their maps and the paths stay):
//   plain  the rule as a chain without FTC has it (MD type 1): the NFs run without the FTC hop
//          (ftc_no_ctrl), the chain end pops the NSH and routes the packet to the sink;
//   FTC    the rule with ftc_f = 1 (MD type 2, the control TLV naming r1's endpoint, the
//          partition's returned logs from ac_ftc_pending): the monitor appends its log (the
//          flow's counters), the NAT applies and strips it as its tail and appends its own, which
//          reaches the chain's end; there the fast path hands the packet to the egress buffer's
//          AF_XDP socket (ftc::EgressPort on r1's last VNF veth, the agent's code), whose feedback
//          goes to the ingress forwarder (daemon::FtcForwarder, the agent's, writing
//          ac_ftc_pending: r1 is the chain's ingress and egress, as on a one-node chain). The
//          NAT's first log of a flow (the mapping made) is held until the next packets carry it
//          round to the firewall, its tail, which commits it; after that the NAT's logs are
//          no-ops carrying that sequence, already committed. The buffer writes what it knows of
//          the partition (its commit vector, nothing held) into ac_ftc_egress after each packet
//          it reads, as anychaind does, so the chain's end releases those packets itself (pop +
//          route to the sink: bpf/ac_ftc.h ac_ftc_committed, docs/ftc.md 5.1), and the buffer
//          returns no committed log to the forwarder. Pending logs not committed within 1 ms go
//          in propagating packets.
//          This is the steady state of a flow on this chain: every packet pays the monitor's
//          log (appended, applied, stripped), the NAT's no-op and the chain end's check of it.
//          --buffer-only: the buffer writes no ac_ftc_egress entry, so every packet makes the
//          buffer's round trip (AF_XDP read, NSH decode, release: stripped and run through the
//          fast path again as a live frame), as before the chain's end released packets itself.
// The NFs' instance ids and peers are set as the agent's FTC control would (fw 8, monitor 7,
// NAT 9; each lists the other two, incarnation 0). Each build sends its own flows (UDP source
// ports 10000.. without FTC, 20000.. with): a partition only ever sees one build's packets, as a
// flow of a chain does (a head's transactions without FTC move its sequence without a log, which
// the FTC replicas would see as a gap).
//
// Live frames from bench/e2e.bpf.c's generator on --gen-cpu; r1's NAPI (and with it every veth
// hop and NF XDP program: a veth runs its peer's NAPI on the sending CPU) pinned to --router-cpu,
// and the buffer's thread (poll on its socket, 1 ms timer) pinned there too. A sample: the
// generator runs, 0.2 s settle, `seconds` measured, the generator stops, the path drains. The
// figure is the router CPU's time per packet delivered to the sink: the NAPI thread, ksoftirqd of
// the router CPU and the buffer's thread (/proc/<tid>/schedstat), over the sink's count; with
// FTC, the buffer thread's share is given apart (it includes the releases' second pass through
// the fast path and the sink's XDP, which run in its system calls).
//
// --chain N[,N..] (default 3, the chain above): chains of N = 2..5 NFs, the first N of
// firewall -> monitor -> NAT -> monitor -> NAT (as --bench chain orders them), on bench/e2e_topo.h's
// chain-N, each its own NF (the second monitor 17, the second NAT 19, which maps the first NAT's
// output to its own address and ports), every one listing all the others as its FTC peers, one
// topology after the other. The checks below are written for N hops (check_sample derives them):
// each hop is the tail of its predecessor's log, the firewall of the last hop's, returned. With
// a NAT last (N = 3, 5) the chain's end releases a flow's packets itself once its mapping is
// committed; with a monitor last (N = 2, 4) its log is a new write on every packet, so every
// packet takes the buffer's round trip and none may leave at the chain's end (docs/ftc.md 5.1).
// --end-replica appends a replica hop (nf: replica, id 21, docs/ftc.md 5.4) to each chain: the
// tail of the last NF's log, so nothing is returned and every packet leaves at the chain's end.
//
// Every sample is checked over its whole span (generator start to drained), or the bench fails:
// the fast path dropped nothing, every NF returned every frame it got, the sink got exactly the
// packets r1 classified; plain: no NF saw a control TLV; FTC: every data packet had one, the
// monitor and the NAT appended a log per packet, the NAT applied and stripped every monitor log,
// the firewall stripped every returned NAT log it applied or found covered (in the flows' first
// sample: at least one applied and committed), no FTC counter of trouble moved
// (gap, stale, unknown middlebox, bad TLV, overflow, stub, full stores, refused writes), every
// packet was released once, by the chain's end or the buffer (none held at the end, none
// dropped, every release ran), and after the flows' first sample the chain's end released at
// least half of them itself (none with --buffer-only). Over N hops, with FTC: the firewall
// appends nothing, each monitor and NAT one log a packet (a NAT's writes: one per mapping made),
// hop k applies hop k-1's writes, finds its no-ops covered, strips both and commits nothing, the
// firewall commits every returned log it strips, and with a monitor last the chain's end releases
// nothing itself; in both builds each NAT translates every packet and maps each flow once, in the
// build's first sample.
#include "ftc_path.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "anychain/ftc.h"
#include "anychain/maps.h"
#include "anychain/nf.h"
#include "common/netns.h"
#include "common/percpu.h"
#include "daemon/ftc_egress.h"
#include "daemon/ftc_forwarder.h"
#include "dataplane/dataplane.h"
#include "dataplane/reasons.h"
#include "e2e_live.h"
#include "e2e_topo.h"
#include "ftc/egress_port.h"
#include "nf/loader.h"
#include "nf/params.h"

namespace anychain::bench {
namespace {

using nlohmann::json;
namespace dp = anychain::dataplane;

void must(bool ok, const std::string& what) {
  if (!ok) throw std::runtime_error(what);
}

// ---- the NFs ----

struct NfSpec {
  const char* name;   // in the checks' messages
  const char* label;  // in the chain's description
  nf::Params params;
};

// The first n of firewall -> monitor -> NAT -> monitor -> NAT, as --bench chain orders them
// (bench/ftc_bench.cc chain_hop: the second monitor 17, the second NAT 19), each its own NF with
// its own instance id. The second NAT gets packets the first translated (source 192.0.2.10,
// ports 20032..20095): it maps them as any outbound flow (their destination is not its address)
// to an address and a port range of its own, so no two mappings of the chain share a port.
std::vector<NfSpec> chain_nfs(int n, bool end_replica) {
  nf::Params fw;
  fw.kind = nf::Kind::Firewall;
  fw.instance_id = 8;
  auto r = nf::parse_rule("drop proto udp dport 53");  // never matches the generator's port 9
  must(r.has_value(), "firewall rule");
  fw.fw_rules.push_back(*r);
  nf::Params mon;
  mon.kind = nf::Kind::Monitor;
  mon.instance_id = 7;
  mon.idle_timeout_s = 600;
  nf::Params nat;
  nat.kind = nf::Kind::Nat;
  nat.instance_id = 9;
  nat.idle_timeout_s = 600;
  inet_pton(AF_INET, "192.0.2.10", &nat.nat_address);
  nat.nat_port_lo = 20032;
  nat.nat_port_hi = 20095;
  nf::Params mon2 = mon;
  mon2.instance_id = 17;
  nf::Params nat2 = nat;
  nat2.instance_id = 19;
  inet_pton(AF_INET, "192.0.2.11", &nat2.nat_address);
  nat2.nat_port_lo = 20096;
  nat2.nat_port_hi = 20159;
  std::vector<NfSpec> all{{"fw", "fw", fw},
                          {"monitor", "monitor", mon},
                          {"nat", "NAT", nat},
                          {"monitor2", "monitor", mon2},
                          {"nat2", "NAT", nat2}};
  all.resize(static_cast<size_t>(n));
  if (end_replica) {
    // a replica service last (docs/ftc.md 5.4): the tail of the last NF's log, appends none
    nf::Params rep;
    rep.kind = nf::Kind::Replica;
    rep.instance_id = 21;
    all.push_back({"replica", "replica", rep});
  }
  return all;
}

uint64_t percpu_sum(int fd, uint32_t slot) {
  auto n = percpu_u64_sum(fd, slot);  // nullopt for a bad fd too
  if (!n) throw std::runtime_error("read a per-CPU counter");
  return *n;
}

// The kernel's run-time statistics of a program (with BPF_STATS_RUN_TIME enabled): ns and runs
struct ProgTime {
  uint64_t ns = 0, runs = 0;
};
ProgTime prog_time(int fd) {
  bpf_prog_info info{};
  uint32_t len = sizeof info;
  if (bpf_obj_get_info_by_fd(fd, &info, &len)) throw std::runtime_error("read a program's run time");
  return {info.run_time_ns, info.run_cnt};
}
uint32_t prog_id(int fd) {
  bpf_prog_info info{};
  uint32_t len = sizeof info;
  if (bpf_obj_get_info_by_fd(fd, &info, &len)) throw std::runtime_error("read a program's id");
  return info.id;
}
// Summed over programs given by id (the fast path's: attached and the one releases run)
ProgTime prog_time_ids(const std::vector<uint32_t>& ids) {
  ProgTime sum;
  for (uint32_t id : ids) {
    const int fd = bpf_prog_get_fd_by_id(id);
    if (fd < 0) throw std::runtime_error("open program " + std::to_string(id));
    const ProgTime t = prog_time(fd);
    ::close(fd);
    sum.ns += t.ns;
    sum.runs += t.runs;
  }
  return sum;
}

// One NF's counters at one moment
struct NfSnap {
  std::array<uint64_t, AC_NF_STAT_END> st{};
  std::array<uint64_t, AC_FTC_ST_END> ftc{};
};

struct Hop {
  std::string name;
  nf::Kind kind;
  std::unique_ptr<nf::Nf> nf;
  NfSnap snap() const {
    NfSnap s;
    const int st = nf->map_fd("nf_stats"), ftc = nf->map_fd("nf_ftc_stats");
    for (uint32_t i = 0; i < AC_NF_STAT_END; ++i) s.st[i] = percpu_sum(st, i);
    for (uint32_t i = 0; i < AC_FTC_ST_END; ++i) s.ftc[i] = percpu_sum(ftc, i);
    return s;
  }
};

// ---- the egress buffer and the forwarder, as the agent runs them, on their own thread ----

class Buffer {
 public:
  Buffer(dp::Dataplane& d, const std::string& ns, const std::string& ifname, const std::string& inject_if,
         int cpu, bool fast_release) {
    auto cfg = d.config();
    must(cfg.has_value(), "read r1's configuration");
    const uint32_t self = ntohl(cfg->local_endpoint.s_addr);  // what the control TLV names
    thread_ = std::thread([this, &d, ns, ifname, inject_if, cpu, self, fast_release] {
      try {
        pin_thread(0, cpu);
        test::InNetns in(ns);
        ftc::EgressOptions o;
        o.ifname = ifname;
        o.xskmap_fd = d.map_fd("ac_ftc_xsk");
        o.prog_fd = d.prog_fd();
        o.egress_fd = fast_release ? d.map_fd("ac_ftc_egress") : -1;  // as anychaind, or not at all
        auto port = ftc::EgressPort::open(o);
        if (!port) throw std::runtime_error("on " + ifname + ": " + port.error().str());
        std::vector<pollfd> fds;
        for (int fd : (*port)->fds()) fds.push_back({fd, POLLIN, 0});
        {
          std::lock_guard g(mu_);
          port_ = std::move(*port);
          fwd_ = std::make_unique<daemon::FtcForwarder>(d, self, ftc::ForwarderLimits{});
        }
        tid_ = static_cast<int>(::syscall(SYS_gettid));
        while (!stop_) {
          ::poll(fds.data(), fds.size(), 1);
          std::lock_guard g(mu_);
          const uint64_t now = daemon::ftc_now_ns();
          port_->poll(now);
          port_->expire(now);
          for (const auto& fb : port_->take_feedback()) fwd_->feedback(fb);
          for (const auto& r : port_->take_released()) fwd_->released(r.flow, r.cv);
          fwd_->on_timer(inject_if);
        }
      } catch (const std::exception& e) {
        std::lock_guard g(mu_);
        err_ = e.what();
      }
      done_ = true;  // the thread ended (before tid_ was set: its start failed)
    });
    for (auto t = std::chrono::steady_clock::now(); tid_ == 0 && !done_;) {
      if (std::chrono::steady_clock::now() - t > std::chrono::seconds(10))
        throw std::runtime_error("the egress buffer did not start in 10 s");
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    check();
  }
  ~Buffer() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  int tid() const { return tid_; }
  void check() {
    std::lock_guard g(mu_);
    if (!err_.empty()) throw std::runtime_error("the egress buffer: " + err_);
  }
  struct Snap {
    ftc::EgressPort::Stats port;
    json fwd;
  };
  Snap snap() {
    std::lock_guard g(mu_);
    if (!err_.empty()) throw std::runtime_error("the egress buffer: " + err_);
    must(port_ && fwd_, "the egress buffer is not running");
    return {port_->stats(), fwd_->status()};
  }

 private:
  std::mutex mu_;
  std::unique_ptr<ftc::EgressPort> port_;        // under mu_; kept until the thread is joined
  std::unique_ptr<daemon::FtcForwarder> fwd_;
  std::string err_;
  std::atomic<int> tid_{0};
  std::atomic<bool> stop_{false}, done_{false};
  std::thread thread_;
};

// ---- counters of one moment ----

struct Snap {
  std::vector<NfSnap> nfs;
  std::vector<ac_counter> fast;  // r1's ac_stats
  uint64_t sink = 0;
  Buffer::Snap buf;
  std::vector<uint16_t> pending;  // the lengths of r1's ac_ftc_pending entries (returned logs per partition)
};

Snap snap(Topo& t, const std::vector<Hop>& hops, Buffer& b) {
  Snap s;
  for (const Hop& h : hops) s.nfs.push_back(h.snap());
  auto st = t.anychain().at(0).dp->stats();
  must(st.has_value(), "read r1's counters");
  s.fast = *st;
  s.sink = t.receiver().packets();
  s.buf = b.snap();
  const int pfd = t.anychain().at(0).dp->map_fd("ac_ftc_pending");
  ac_ftc_pending_key k{}, next{};
  for (const void* prev = nullptr; pfd >= 0 && bpf_map_get_next_key(pfd, prev, &next) == 0; prev = &k) {
    ac_ftc_pending v{};
    if (bpf_map_lookup_elem(pfd, &next, &v) == 0) s.pending.push_back(v.len);
    k = next;
  }
  return s;
}

// The checks of one sample (docs at the top); throws what does not add up.
// first: the first sample of the build's flows (their state created)
void check_sample(const std::string& what, bool ftc, bool first, bool fast_release, uint64_t flows,
                  const std::vector<Hop>& hops, const Snap& a, const Snap& z) {
  auto fail = [&](const std::string& m) { throw std::runtime_error(what + ": " + m); };
  for (const auto& r : dp::stat_reasons())
    if (r.kind == dp::StatKind::Drop && z.fast[r.slot].packets != a.fast[r.slot].packets)
    {
      std::string pl;
      for (uint16_t n : z.pending) pl += " " + std::to_string(n);
      fail(std::string("the fast path dropped ") + std::to_string(z.fast[r.slot].packets - a.fast[r.slot].packets) +
           " (" + r.name + "; returned logs pending now, bytes per partition:" + (pl.empty() ? " none" : pl) +
           "; the forwarder " + z.buf.fwd.dump() + ")");
    }
  const uint64_t classified = z.fast[AC_NOTE_CLASSIFIED].packets - a.fast[AC_NOTE_CLASSIFIED].packets;
  const uint64_t sink = z.sink - a.sink;
  if (classified == 0) fail("r1 classified nothing");
  if (sink != classified) {
    // where they went: each NF's data packets, the chain end's hand-overs to the buffer, its
    // sockets' reads and releases
    std::string trail;
    for (size_t k = 0; k < hops.size(); ++k)
      trail += ", " + hops[k].name + " " +
               std::to_string((z.nfs[k].st[AC_NF_RX] - z.nfs[k].st[AC_NF_PROPAGATING]) -
                              (a.nfs[k].st[AC_NF_RX] - a.nfs[k].st[AC_NF_PROPAGATING]));
    trail += ", to the buffer " +
             std::to_string(z.fast[AC_FWD_FTC_BUFFER].packets - a.fast[AC_FWD_FTC_BUFFER].packets) +
             ", read by it " + std::to_string(z.buf.port.rx - a.buf.port.rx) + ", released " +
             std::to_string(z.buf.port.released - a.buf.port.released) + ", held " +
             std::to_string(z.buf.port.held_now);
    // what else the buffer did with what it read
    const auto& p = z.buf.port;
    const auto& q = a.buf.port;
    trail += ", consumed " + std::to_string(p.consumed - q.consumed) + ", dropped: bad NSH " +
             std::to_string(p.bad_nsh - q.bad_nsh) + ", not FTC " + std::to_string(p.not_ftc - q.not_ftc) +
             ", full " + std::to_string(p.full - q.full) + ", expired " + std::to_string(p.expired - q.expired) +
             ", fenced " + std::to_string(p.fenced - q.fenced) + ", release failed " +
             std::to_string(p.release_failed - q.release_failed) + "; the chain's end released " +
             std::to_string(z.fast[AC_NOTE_FTC_COMMITTED].packets - a.fast[AC_NOTE_FTC_COMMITTED].packets) +
             "; propagating packets at the NFs:";
    for (size_t k = 0; k < hops.size(); ++k)
      trail += " " + std::to_string(z.nfs[k].st[AC_NF_PROPAGATING] - a.nfs[k].st[AC_NF_PROPAGATING]);
    fail("the sink got " + std::to_string(sink) + " packets of the " + std::to_string(classified) +
         " r1 classified (" + trail.substr(2) + ")");
  }
  for (size_t k = 0; k < hops.size(); ++k) {
    auto st = [&](uint32_t i) { return z.nfs[k].st[i] - a.nfs[k].st[i]; };
    auto fc = [&](uint32_t i) { return z.nfs[k].ftc[i] - a.nfs[k].ftc[i]; };
    const std::string n = hops[k].name + ": ";
    if (st(AC_NF_RX) != st(AC_NF_TX))
      fail(n + "received " + std::to_string(st(AC_NF_RX)) + ", returned " + std::to_string(st(AC_NF_TX)));
    for (uint32_t i : {AC_NF_DROP_BAD_NSH, AC_NF_DROP_BAD_INNER, AC_NF_DROP_FILTERED, AC_NF_DROP_FTC, AC_NF_HOLD,
                       AC_NF_NOT_IP})
      if (st(i)) fail(n + "nf_stats[" + std::to_string(i) + "] moved by " + std::to_string(st(i)));
    const uint64_t data = st(AC_NF_RX) - st(AC_NF_PROPAGATING);
    if (data != classified)
      fail(n + std::to_string(data) + " data packets of the " + std::to_string(classified) + " classified");
    // a NAT translates every packet (the second one the first's output: an outbound flow of
    // its own) and maps each of the build's flows once, in the build's first sample
    if (hops[k].kind == nf::Kind::Nat &&
        (st(AC_NF_NAT_OUT) != data || st(AC_NF_NAT_NEW) != (first ? flows : 0)))
      fail(n + "translated " + std::to_string(st(AC_NF_NAT_OUT)) + " of " + std::to_string(data) +
           " packets, made " + std::to_string(st(AC_NF_NAT_NEW)) + " mappings for " +
           std::to_string(first ? flows : 0) + " new flows");
    for (uint32_t i : {AC_FTC_ST_GAP, AC_FTC_ST_STALE, AC_FTC_ST_UNKNOWN_MBOX, AC_FTC_ST_OWN_LOG, AC_FTC_ST_BAD_TLV,
                       AC_FTC_ST_STUB, AC_FTC_ST_OVERFLOW, AC_FTC_ST_STORE_FULL, AC_FTC_ST_REPLICA_FULL,
                       AC_FTC_ST_WRITE_REFUSED, AC_FTC_ST_FILTERED, AC_FTC_ST_HOLD_UNAVAILABLE, AC_FTC_ST_RING_FULL})
      if (fc(i)) fail(n + "nf_ftc_stats[" + std::to_string(i) + "] moved by " + std::to_string(fc(i)));
    if (!ftc) {
      if (fc(AC_FTC_ST_NO_CTRL) != data) fail(n + "a packet without FTC went through the FTC hop");
      if (fc(AC_FTC_ST_APPLIED) || fc(AC_FTC_ST_LOG_APPENDED) || fc(AC_FTC_ST_NOOP_APPENDED) ||
          fc(AC_FTC_ST_TAIL_STRIPPED) || st(AC_NF_PROPAGATING))
        fail(n + "FTC work without FTC");
    } else if (fc(AC_FTC_ST_NO_CTRL)) {
      fail(n + std::to_string(fc(AC_FTC_ST_NO_CTRL)) + " packets without the control TLV");
    }
  }
  if (!ftc) {
    if (z.buf.port.rx != a.buf.port.rx) fail("the egress buffer got packets of the chain without FTC");
    return;
  }
  // f = 1 (docs/ftc.md 1): a stateful hop's log has one replica, the next FTC hop round the
  // logical ring, which is its tail. So, for hops h0..h(n-1) (h0 the firewall, stateless):
  //  - h0 appends nothing; every monitor and NAT appends one log a packet: the monitor its
  //    counters (a write, every packet), the NAT a write when it maps a flow (the build's first
  //    packet of each flow) and else a no-op (count 0) at the mapping's sequence;
  //  - hk (k >= 1) is the tail of h(k-1)'s log, which reached it along the chain (not WRAPPED):
  //    it applies a write (its replica is at the sequence before it: the packets come in order on
  //    one CPU, so no gap) and finds a no-op covered (ac_ftc_order: SATISFIED), strips either,
  //    and adds no commit entry (only tails of wrapped logs do, docs/ftc.md 2.3). So its applied
  //    count is h(k-1)'s writes, its covered count h(k-1)'s no-ops, its stripped count their sum
  //    (h1, after the firewall: 0, 0, 0);
  //  - h(n-1)'s log has no hop after it: it reaches the chain's end held once, the buffer feeds
  //    it back, the forwarder piggybacks it (WRAPPED) on the partition's packets until the
  //    buffer's RELEASED prunes it, and h0 is its tail: applies it or finds it covered (a pending
  //    log rides on several packets), strips it and adds one commit entry per log stripped.
  //    Whether the chain's end can release a packet itself depends on that last log: a NAT's
  //    no-op at a committed sequence is covered by the buffer's commit vector (n = 3, 5: every
  //    packet but a flow's first few), a monitor's log is a new write on every packet that no
  //    commit can cover before the packet leaves, so every packet takes the buffer's round trip
  //    (n = 2, 4; docs/ftc.md 5.1 item 6) and each sample's packets are released only after h0
  //    applied and committed some of them.
  auto fc = [&](size_t k, uint32_t i) { return z.nfs[k].ftc[i] - a.nfs[k].ftc[i]; };
  auto appended = [&](size_t k) { return fc(k, AC_FTC_ST_LOG_APPENDED) + fc(k, AC_FTC_ST_NOOP_APPENDED); };
  const size_t n = hops.size();
  for (size_t k = 0; k < n; ++k) {
    const std::string& name = hops[k].name;
    if (hops[k].kind == nf::Kind::Firewall || hops[k].kind == nf::Kind::Replica) {
      if (appended(k)) fail(name + ": " + std::to_string(appended(k)) + " logs appended by a stateless hop");
    } else if (appended(k) != classified) {
      fail(name + ": " + std::to_string(appended(k)) + " logs appended, not one a packet");
    }
    if (hops[k].kind == nf::Kind::Monitor && fc(k, AC_FTC_ST_NOOP_APPENDED))
      fail(name + ": " + std::to_string(fc(k, AC_FTC_ST_NOOP_APPENDED)) + " no-op logs (it counts every packet)");
    if (hops[k].kind == nf::Kind::Nat &&
        fc(k, AC_FTC_ST_LOG_APPENDED) != z.nfs[k].st[AC_NF_NAT_NEW] - a.nfs[k].st[AC_NF_NAT_NEW])
      fail(name + ": " + std::to_string(fc(k, AC_FTC_ST_LOG_APPENDED)) + " logs with writes for " +
           std::to_string(z.nfs[k].st[AC_NF_NAT_NEW] - a.nfs[k].st[AC_NF_NAT_NEW]) + " mappings made");
    if (k == 0) continue;
    const uint64_t writes = fc(k - 1, AC_FTC_ST_LOG_APPENDED), noops = fc(k - 1, AC_FTC_ST_NOOP_APPENDED);
    if (fc(k, AC_FTC_ST_APPLIED) != writes || fc(k, AC_FTC_ST_SATISFIED) != noops ||
        fc(k, AC_FTC_ST_TAIL_STRIPPED) != writes + noops)
      fail(name + ": applied " + std::to_string(fc(k, AC_FTC_ST_APPLIED)) + ", found covered " +
           std::to_string(fc(k, AC_FTC_ST_SATISFIED)) + " and stripped " +
           std::to_string(fc(k, AC_FTC_ST_TAIL_STRIPPED)) + " of the " + hops[k - 1].name + "'s " +
           std::to_string(writes) + " logs and " + std::to_string(noops) + " no-ops");
    if (fc(k, AC_FTC_ST_COMMITS))
      fail(name + ": " + std::to_string(fc(k, AC_FTC_ST_COMMITS)) + " commit entries for logs that did not wrap");
  }
  const bool monitor_last = hops.back().kind == nf::Kind::Monitor;
  // a replica last (--end-replica) appends no log: it is the tail of the NF before it, nothing
  // reaches the chain's end uncommitted, nothing is returned, the firewall applies and commits
  // nothing, and the chain's end releases every packet itself
  const bool replica_last = hops.back().kind == nf::Kind::Replica;
  if (replica_last && (fc(0, AC_FTC_ST_APPLIED) || fc(0, AC_FTC_ST_SATISFIED) || fc(0, AC_FTC_ST_COMMITS)))
    fail("fw: applied " + std::to_string(fc(0, AC_FTC_ST_APPLIED)) + ", found covered " +
         std::to_string(fc(0, AC_FTC_ST_SATISFIED)) + " and committed " + std::to_string(fc(0, AC_FTC_ST_COMMITS)) +
         " returned logs of a chain that ends in a replica (none can be returned)");
  if (fc(0, AC_FTC_ST_APPLIED) + fc(0, AC_FTC_ST_SATISFIED) != fc(0, AC_FTC_ST_TAIL_STRIPPED) ||
      fc(0, AC_FTC_ST_COMMITS) != fc(0, AC_FTC_ST_TAIL_STRIPPED) ||
      (!replica_last && (first || monitor_last) && (fc(0, AC_FTC_ST_APPLIED) == 0 || fc(0, AC_FTC_ST_COMMITS) == 0)))
    fail("fw: no returned " + hops.back().name + " log applied, stripped and committed (applied " +
         std::to_string(fc(0, AC_FTC_ST_APPLIED)) + ", already covered " + std::to_string(fc(0, AC_FTC_ST_SATISFIED)) +
         ", stripped " + std::to_string(fc(0, AC_FTC_ST_TAIL_STRIPPED)) + ", commits " +
         std::to_string(fc(0, AC_FTC_ST_COMMITS)) + "; the buffer read " + std::to_string(z.buf.port.rx - a.buf.port.rx) +
         ", released " + std::to_string(z.buf.port.released - a.buf.port.released) + "; the forwarder " +
         z.buf.fwd.dump() + ")");
  const auto& p = z.buf.port;
  const auto& q = a.buf.port;
  // released by the chain's end itself (committed logs, nothing of the partition held) or by
  // the buffer: each packet once
  const uint64_t at_end = z.fast[AC_NOTE_FTC_COMMITTED].packets - a.fast[AC_NOTE_FTC_COMMITTED].packets;
  if (p.released - q.released + at_end != classified)
    fail("the buffer released " + std::to_string(p.released - q.released) + " and the chain's end " +
         std::to_string(at_end) + " of " + std::to_string(classified));
  if (!fast_release && at_end) fail("the chain's end released packets without the buffer's commit vectors");
  if (monitor_last) {
    if (at_end)
      fail("the chain's end released " + std::to_string(at_end) + " packets itself, whose last log (the " +
           hops.back().name + "'s, a new write) no commit could cover yet");
  } else if (replica_last && fast_release && at_end != classified) {
    fail("the chain's end released " + std::to_string(at_end) + " of " + std::to_string(classified) +
         " itself, with a replica last (every log stripped before it)");
  } else if (fast_release && !first && at_end * 2 < classified) {
    // once a flow's mapping is committed, its packets carry only the NAT's no-op of that
    // sequence: the chain's end releases them itself, except the few that still meet a commit
    // entry
    fail("the chain's end released only " + std::to_string(at_end) + " of " + std::to_string(classified) +
         " itself (the buffer " + std::to_string(p.released - q.released) + ", ac_ftc_egress writes " +
         std::to_string(p.egress_writes - q.egress_writes) + ")");
  }
  if (p.held_now || p.bad_nsh != q.bad_nsh || p.not_ftc != q.not_ftc || p.release_failed != q.release_failed ||
      p.full != q.full || p.expired != q.expired || p.fenced != q.fenced)
    fail("the buffer holds " + std::to_string(p.held_now) + " or dropped packets (full " +
         std::to_string(p.full - q.full) + ", expired " + std::to_string(p.expired - q.expired) + ", failed " +
         std::to_string(p.release_failed - q.release_failed) + ")");
  for (const char* k : {"pending_write_failed", "propagate_failed", "foreign_ingress"})
    if (z.buf.fwd.value(k, uint64_t{0}) != a.buf.fwd.value(k, uint64_t{0}))
      fail(std::string("the forwarder: ") + k);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

struct Sample {
  double offered_mpps = 0, mpps = 0;  // generated, delivered
  double ns = 0, buffer_ns = 0;       // router CPU per delivered packet, the buffer thread's share of it
  double at_end = 0;                  // share of the packets the chain's end released itself
  // --xdp-time: the XDP programs' own time per delivered packet, r1's fast path (every pass) and
  // each NF
  double fast_ns = 0;
  std::vector<double> nf_ns;
  uint64_t delivered = 0;
};

// One chain length's figures, for the summary over lengths
struct Row {
  int chain = 0;
  size_t size = 0;
  double ns_plain = 0, ns_ftc = 0, ratio = 0, ratio_min = 0, ratio_max = 0, mpps_plain = 0, mpps_ftc = 0, at_end = 0;
};

// The bench on a chain of n NFs (bench/e2e_topo.h's chain-n, its reflectors replaced by the NFs)
json run_chain_path(const FtcPathOptions& o, int chain_n, std::vector<Row>& rows) {
  Topo t(TopoSpec{Kind::Chain, chain_n + (o.end_replica ? 1 : 0)}, o.router_cpu, AC_FLOW_CACHE_DEFAULT);
  // room for 1514-byte frames with the NSH (up to 252 bytes) on every veth of the chain
  for (const Iface& i : t.all_ifaces()) test::must("ip -n " + i.ns + " link set dev " + i.name + " mtu 1800");
  t.set_mode(Mode::Anychain);
  dp::Dataplane& d = *t.anychain().at(0).dp;
  const uint32_t spi = t.flow_keys().at(0).at(0).first;

  // the NFs on the VNFs' veths, in place of the bench's reflector
  std::vector<Hop> hops;
  std::vector<NfSpec> specs = chain_nfs(chain_n, o.end_replica);
  for (size_t k = 0; k < specs.size(); ++k) {
    const Iface v = t.steps().at(k).next;
    t.vnfs().at(k)->detach_all();
    test::InNetns in(v.ns);
    nf::LoadOptions lo;
    lo.name = std::string("bench-") + specs[k].name;
    lo.iface = v.name;
    auto n = nf::Nf::load(specs[k].params, lo);
    must(n.has_value(), "load " + lo.name + ": " + (n ? std::string() : n.error().str()));
    nf::FtcControl c;
    c.f = 1;
    for (size_t j = 0; j < specs.size(); ++j)
      if (j != k) c.peers.push_back({static_cast<uint16_t>(specs[j].params.instance_id), 0, 600});
    must((*n)->apply_control(c).has_value(), "FTC control of " + lo.name);
    hops.push_back({specs[k].name, specs[k].params.kind, std::move(*n)});
  }
  // the egress buffer on r1's interface from the last NF; propagating packets enter on r-in
  const Iface last = t.steps().back().in;
  Buffer buf(d, last.ns, last.name, t.router_in().name, o.router_cpu, o.fast_release);

  // the one classifier rule, with or without FTC (e2e_topo's destinations)
  auto rule = [&](bool ftc) {
    std::vector<dp::PolicyRule> rules(1);
    rules[0].dst = *dp::parse_prefix("198.19.0.0/24");
    rules[0].proto = IPPROTO_UDP;
    rules[0].spi = spi;
    rules[0].ftc_f = ftc ? 1 : 0;
    auto r = d.set_policies(rules);
    must(r.has_value(), "set r1's policy: " + (r ? std::string() : r.error().str()));
  };

  // --xdp-time: the programs' run time counted while this is open (every program's, machine-wide:
  // two clock reads a run, in both builds' figures)
  int stats_fd = -1;
  std::vector<uint32_t> fast_ids;
  if (o.xdp_time) {
    stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
    if (stats_fd < 0) throw std::runtime_error("enable BPF run-time statistics");
    fast_ids = t.router_prog_ids();
    if (std::find(fast_ids.begin(), fast_ids.end(), prog_id(d.prog_fd())) == fast_ids.end())
      fast_ids.push_back(prog_id(d.prog_fd()));
  }
  struct CloseFd {
    int fd;
    ~CloseFd() {
      if (fd >= 0) ::close(fd);
    }
  } close_stats{stats_fd};

  bool first[2] = {true, true};
  auto sample = [&](bool ftc, size_t size) {
    rule(ftc);
    const std::string what = std::string(ftc ? "FTC" : "plain") + ", " + std::to_string(size) + " B";
    const Snap a = snap(t, hops, buf);
    Sample s;
    {
      // each build its own flows: a partition's state never sees the other build's packets (a
      // head's transactions without FTC move its sequence without a log: the FTC replicas
      // would see a gap)
      LiveFrames gen(t, o.gen_cpu, size, o.flows, ftc ? 20000 : 10000, o.pps);
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      std::vector<int> tasks = t.router_tasks();
      tasks.push_back(buf.tid());
      ProgTime f0;
      std::vector<ProgTime> n0;
      if (o.xdp_time) {
        f0 = prog_time_ids(fast_ids);
        for (const Hop& h : hops) n0.push_back(prog_time(h.nf->prog_fd()));
      }
      const uint64_t g0 = gen.generated(), r0 = t.receiver().packets(), c0 = cpu_ns(tasks), b0 = cpu_ns({buf.tid()});
      const auto t0 = std::chrono::steady_clock::now();
      std::this_thread::sleep_for(std::chrono::duration<double>(o.seconds));
      const uint64_t g1 = gen.generated(), r1 = t.receiver().packets(), c1 = cpu_ns(tasks), b1 = cpu_ns({buf.tid()});
      const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (o.xdp_time && r1 > r0) {
        const double n = static_cast<double>(r1 - r0);
        s.fast_ns = static_cast<double>(prog_time_ids(fast_ids).ns - f0.ns) / n;
        for (size_t k = 0; k < hops.size(); ++k)
          s.nf_ns.push_back(static_cast<double>(prog_time(hops[k].nf->prog_fd()).ns - n0[k].ns) / n);
      }
      gen.stop();
      if (r1 == r0) throw std::runtime_error(what + ": nothing reached the sink");
      s.delivered = r1 - r0;
      s.mpps = static_cast<double>(s.delivered) / dt / 1e6;
      s.offered_mpps = static_cast<double>(g1 - g0) / dt / 1e6;
      s.ns = static_cast<double>(c1 - c0) / static_cast<double>(s.delivered);
      s.buffer_ns = static_cast<double>(b1 - b0) / static_cast<double>(s.delivered);
    }
    // drained: the last packets through, the buffer's last held ones released (a propagating
    // packet after 1 ms commits them)
    Snap z;
    for (auto t0 = std::chrono::steady_clock::now();;) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      z = snap(t, hops, buf);
      const uint64_t cl = z.fast[AC_NOTE_CLASSIFIED].packets - a.fast[AC_NOTE_CLASSIFIED].packets;
      if ((z.sink - a.sink == cl && z.buf.port.held_now == 0) ||
          std::chrono::steady_clock::now() - t0 > std::chrono::seconds(3))
        break;
    }
    check_sample(what, ftc, first[ftc], o.fast_release, o.flows, hops, a, z);
    const uint64_t cl = z.fast[AC_NOTE_CLASSIFIED].packets - a.fast[AC_NOTE_CLASSIFIED].packets;
    s.at_end = static_cast<double>(z.fast[AC_NOTE_FTC_COMMITTED].packets - a.fast[AC_NOTE_FTC_COMMITTED].packets) /
               static_cast<double>(cl);
    first[ftc] = false;
    return s;
  };

  json out = json::array();
  std::string path;
  for (const NfSpec& sp : specs) path += std::string(sp.label) + " -> ";
  std::printf("FTC on the whole path: gen -> r1 (classify + NSH) -> %sr1 (chain end) -> sink,\n"
              "f = 1 against the same chain without FTC; router CPU (NAPI, ksoftirqd, FTC buffer thread) per "
              "delivered packet,\n%d interleaved sample pairs of %.1f s, %u flow(s), offered %s%s\n",
              path.c_str(), o.reps, o.seconds, o.flows, o.pps ? (std::to_string(o.pps) + " packets/s").c_str() : "flat out",
              o.fast_release ? "" : "; --buffer-only: every FTC packet through the egress buffer");
  for (size_t size : o.sizes) {
    std::vector<double> g_plain, g_ftc, m_plain, m_ftc, ns_plain, ns_ftc, ns_buf, ratio, at_end;
    // --xdp-time: [0] the fast path, [1..3] the NFs, [4] their sum; per build
    std::vector<std::vector<double>> x_plain(hops.size() + 2), x_ftc(hops.size() + 2);
    for (int r = 0; r < o.reps; ++r) {
      const Sample p = sample(false, size), f = sample(true, size);
      g_plain.push_back(p.offered_mpps);
      g_ftc.push_back(f.offered_mpps);
      m_plain.push_back(p.mpps);
      m_ftc.push_back(f.mpps);
      ns_plain.push_back(p.ns);
      ns_ftc.push_back(f.ns);
      ns_buf.push_back(f.buffer_ns);
      at_end.push_back(f.at_end);
      ratio.push_back(f.ns / p.ns);
      if (o.xdp_time)
        for (auto [x, smp] : {std::pair{&x_plain, &p}, std::pair{&x_ftc, &f}}) {
          double sum = smp->fast_ns;
          (*x)[0].push_back(smp->fast_ns);
          for (size_t k = 0; k < hops.size(); ++k) {
            (*x)[k + 1].push_back(smp->nf_ns[k]);
            sum += smp->nf_ns[k];
          }
          (*x)[hops.size() + 1].push_back(sum);
        }
    }
    const double q = median(ratio);
    std::printf("%4zu B frames: plain %.0f ns/pkt (%.3f of %.3f Mpps generated), FTC %.0f ns/pkt (%.3f of %.3f Mpps; "
                "of it the buffer thread %.0f; released at the chain's end %.1f %%)\n  ratio FTC/plain %.3f (%+.1f %%) "
                "[%.3f..%.3f over %d pairs]\n",
                size, median(ns_plain), median(m_plain), median(g_plain), median(ns_ftc), median(m_ftc),
                median(g_ftc), median(ns_buf), median(at_end) * 100, q, (q - 1) * 100,
                *std::min_element(ratio.begin(), ratio.end()),
                *std::max_element(ratio.begin(), ratio.end()), o.reps);
    json xdp;
    if (o.xdp_time) {
      std::printf("  XDP programs' own time per delivered packet (ns), plain / FTC / ratio:");
      for (size_t k = 0; k < hops.size() + 2; ++k) {
        const std::string n = k == 0 ? "fast path (r1, every pass)" : k <= hops.size() ? hops[k - 1].name : "sum";
        const double a = median(x_plain[k]), b = median(x_ftc[k]);
        std::printf("%s %s %.0f / %.0f / %.3f", k ? "," : "", n.c_str(), a, b, b / a);
        xdp[n] = {{"ns_plain", a}, {"ns_ftc", b}, {"ratio", b / a}};
      }
      std::printf("\n");
    }
    std::fflush(stdout);
    rows.push_back({chain_n, size, median(ns_plain), median(ns_ftc), q, *std::min_element(ratio.begin(), ratio.end()),
                    *std::max_element(ratio.begin(), ratio.end()), median(m_plain), median(m_ftc), median(at_end)});
    json names = json::array();
    for (const Hop& h : hops) names.push_back(h.name);
    out.push_back({{"case", "path"}, {"chain_length", chain_n}, {"chain", names}, {"frame_bytes", size}, {"flows", o.flows}, {"offered_pps", o.pps},
                   {"generated_mpps_plain", median(g_plain)}, {"generated_mpps_ftc", median(g_ftc)},
                   {"mpps_plain", median(m_plain)}, {"mpps_ftc", median(m_ftc)},
                   {"cpu_ns_plain", median(ns_plain)}, {"cpu_ns_ftc", median(ns_ftc)},
                   {"cpu_ns_ftc_buffer", median(ns_buf)}, {"released_at_chain_end", median(at_end)}, {"ratio", q},
                   {"ratio_min", *std::min_element(ratio.begin(), ratio.end())},
                   {"ratio_max", *std::max_element(ratio.begin(), ratio.end())},
                   {"xdp_ns", xdp}});
  }
  buf.check();
  rule(false);
  return out;
}

}  // namespace

json run_ftc_path(const FtcPathOptions& o) {
  // the NAT's pool (64 ports) holds both builds' flows
  if (o.flows < 1 || o.flows > 32) throw std::runtime_error("--flows: 1..32");
  if (o.reps < 1 || o.seconds <= 0) throw std::runtime_error("--reps >= 1 and --seconds > 0");
  for (size_t n : o.sizes)
    if (n < 64 || n > 1514) throw std::runtime_error("--sizes: frames of 64..1514 bytes");
  if (o.chains.empty()) throw std::runtime_error("--chain: at least one length");
  for (int n : o.chains)
    if (n < 2 || n > 5) throw std::runtime_error("--chain: lengths of 2..5 NFs");
  json out = json::array();
  std::vector<Row> rows;
  for (size_t i = 0; i < o.chains.size(); ++i) {
    if (i) std::printf("\n");
    for (auto& x : run_chain_path(o, o.chains[i], rows)) out.push_back(std::move(x));
  }
  if (o.chains.size() > 1) {
    std::printf("\nAgainst chain length (router CPU per delivered packet, medians; ratio: median of the pairs' "
                "FTC/plain, min..max):\n%-6s %-6s %10s %10s %22s %14s %14s %9s\n",
                "NFs", "frame", "plain ns", "FTC ns", "ratio (min..max)", "plain kpps", "FTC kpps", "at end");
    for (size_t size : o.sizes)
      for (const Row& r : rows)
        if (r.size == size)
          std::printf("%-6d %-6zu %10.0f %10.0f %8.3f (%.3f..%.3f) %14.1f %14.1f %8.1f%%\n", r.chain, r.size, r.ns_plain,
                      r.ns_ftc, r.ratio, r.ratio_min, r.ratio_max, r.mpps_plain * 1e3, r.mpps_ftc * 1e3,
                      r.at_end * 100);
    std::fflush(stdout);
  }
  return out;
}

}  // namespace anychain::bench
