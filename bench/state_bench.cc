// anychain-bench-state: the shared-state replication figures of issue 14 (docs/performance.md,
// "Shared state").
//
//   coalescing  bytes and records one instance sends to a lagging peer and to a fast one, on
//               skewed and uniform update mixes, with coalescing on and off (the replicator's
//               `coalesce` switch), over the in-memory network of tests/state/sim.h with a
//               manual clock: deterministic for a seed, so the figures are exact, not timed.
//   transport   two replicators in two network namespaces over a veth pair, each behind the
//               node's real fast path (which redirects the replication port into its XSKMAP),
//               exchanging a stream of updates as fast as they can: messages per second and
//               CPU time per message (the whole process: both replicators and, for veth, the
//               softirq work done in their context), AF_XDP (copy mode) against the UDP
//               fallback, interleaved repetitions, min/median/max.
//
// Needs root for `transport` (namespaces, XDP, AF_XDP). Every run checks that the replicas
// converged to the values written; a bench that does not converge fails (exit 1).
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <atomic>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <vector>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include "common/netns.h"
#include "common/netns_fastpath.h"
#include "crdt_test.h"
#include "crdt_test.skel.h"
#include "crdt_test_store.h"
#include "dataplane/dataplane.h"
#include "delay_link.h"
#include "sim.h"
#include "state/bpf_store.h"
#include "state/replicator.h"
#include "state/twin_store.h"
#include "state/xsk_transport.h"

namespace po = boost::program_options;
using nlohmann::json;

namespace anychain::state {
namespace {

constexpr uint8_t kCounters = 1;
constexpr uint16_t kPort = 4795;

void must_ok(bool ok, const std::string& what) {
  if (!ok) throw std::runtime_error(what);
}

Schema schema() {
  static const Schema s = *Schema::make({{.id = kCounters, .kind = Kind::GCounter, .name = "per_key",
                                          .cells = 16384, .key_size = 8}});
  return s;
}
Key key8(uint64_t v) { return Key::bytes(&v, 8); }

// ---- coalescing ------------------------------------------------------------------------------

struct Mix {
  std::string name;
  size_t keys;
  double zipf_s;  // 0: uniform
};

struct CoalesceResult {
  uint64_t updates = 0;
  PeerStatus near{}, far{};
};

// Node 1 writes `per_ms` updates a millisecond for `ms` ms; node 2 is on a fast link (200 us),
// node 3 behind a slow one (2 ms, 200 KB/s with a queue: it lags as soon as node 1 sends more
// than the link carries). Then everything settles and both must hold every update.
// per_update: the replicator runs after every single update (the clock advanced 1 ms / per_ms
// each time), so each version holds one change and a peer that keeps up gets one record per
// update: the uncoalesced log a log-shipping design sends, measured with the same code.
CoalesceResult run_coalescing(const Mix& mix, bool coalesce, int per_ms, int ms, uint64_t seed, bool per_update) {
  sim::Net net(seed);
  ReplicatorConfig cfg;
  cfg.coalesce = coalesce;
  std::vector<std::unique_ptr<sim::Node>> nodes;
  for (uint32_t id = 1; id <= 3; ++id) nodes.push_back(std::make_unique<sim::Node>(net, schema(), id, 1000 + id, cfg));
  for (auto& n : nodes) {
    std::vector<Replicator::Member> m;
    for (auto& o : nodes)
      if (o->id != n->id) m.push_back({o->id, o->transport.me()});
    n->rep->set_members(m);
  }
  net.link(1, 3).bytes_per_ms = 200;
  net.link(1, 3).delay_us = 2'000;
  net.link(3, 1).delay_us = 2'000;
  auto step = [&](uint64_t us = 1000) {
    net.clock.advance(us);
    for (auto& n : nodes) n->rep->poll();
  };
  for (int i = 0; i < 100; ++i) step();
  std::mt19937_64 rng(seed);
  std::vector<double> w(mix.keys, 1.0);
  if (mix.zipf_s > 0)
    for (size_t i = 0; i < w.size(); ++i) w[i] = 1.0 / std::pow(static_cast<double>(i + 1), mix.zipf_s);
  std::discrete_distribution<size_t> pick(w.begin(), w.end());
  std::map<uint64_t, uint64_t> want;
  CoalesceResult r;
  for (int t = 0; t < ms; ++t) {
    for (int k = 0; k < per_ms; ++k) {
      uint64_t key = pick(rng);
      nodes[0]->store.gc_add(kCounters, key8(key), 1);
      ++want[key];
      ++r.updates;
      if (per_update) step(1000 / static_cast<uint64_t>(per_ms));
    }
    if (!per_update) step();
  }
  for (int t = 0; t < 60000; ++t) {
    step();
    bool quiet = true;
    for (const PeerStatus& p : nodes[0]->rep->peers()) quiet &= p.acked == nodes[0]->rep->stats().version;
    if (quiet) break;
  }
  for (uint32_t id : {2u, 3u})
    for (auto& [k, v] : want)
      if (nodes[id - 1]->store.gc_value(kCounters, key8(k)) != v)
        throw std::runtime_error("coalescing: node " + std::to_string(id) + " did not converge (" + mix.name + ")");
  for (const PeerStatus& p : nodes[0]->rep->peers()) (p.id == 2 ? r.near : r.far) = p;
  return r;
}

json bench_coalescing(uint64_t seed) {
  const std::vector<Mix> mixes = {{"zipf 1.2 over 200 keys", 200, 1.2},
                                  {"zipf 0.9 over 10,000 keys", 10000, 0.9},
                                  {"uniform over 10,000 keys", 10000, 0}};
  json out = json::array();
  std::printf("coalescing: 50 updates/ms for 2 s at one instance; near peer 200 us, far peer 2 ms at 200 KB/s.\n"
              "log: the replicator run after every update (one record and one message per update, the\n"
              "uncoalesced stream); anychain: run every 1 ms with coalescing on, and off (a lagging peer sent like\n"
              "the others). records saved = bytes saved at equal batching; msg-bytes saved also counts the\n"
              "batching of records into messages.\n");
  std::printf("%-26s %8s %10s | %-4s %9s %10s %8s %9s | %-9s %8s\n", "mix", "updates", "log bytes", "peer", "records",
              "bytes", "rec.saved", "msg-bytes", "recs(off)", "rec.saved");
  for (const Mix& m : mixes) {
    CoalesceResult log = run_coalescing(m, false, 50, 2000, seed, true);
    CoalesceResult on = run_coalescing(m, true, 50, 2000, seed, false);
    CoalesceResult off = run_coalescing(m, false, 50, 2000, seed, false);
    const PeerStatus& base = log.near;
    if (base.records_sent < log.updates)
      throw std::runtime_error("coalescing: the per-update run sent fewer records than updates (" + m.name + ")");
    auto rec_saved = [&](const PeerStatus& p) {
      return 1.0 - static_cast<double>(p.records_sent) / static_cast<double>(on.updates);
    };
    auto msg_saved = [&](const PeerStatus& p) {
      return 1.0 - static_cast<double>(p.bytes_sent) / static_cast<double>(base.bytes_sent);
    };
    for (int far = 0; far < 2; ++far) {
      const PeerStatus& a = far ? on.far : on.near;
      const PeerStatus& b = far ? off.far : off.near;
      std::printf("%-26s %8lu %10lu | %-4s %9lu %10lu %8.1f%% %8.1f%% | %9lu %8.1f%%\n", far ? "" : m.name.c_str(),
                  static_cast<unsigned long>(on.updates), static_cast<unsigned long>(base.bytes_sent),
                  far ? "far" : "near", static_cast<unsigned long>(a.records_sent),
                  static_cast<unsigned long>(a.bytes_sent), 100 * rec_saved(a), 100 * msg_saved(a),
                  static_cast<unsigned long>(b.records_sent), 100 * rec_saved(b));
      out.push_back({{"mix", m.name}, {"peer", far ? "far" : "near"}, {"updates", on.updates},
                     {"log_records", base.records_sent}, {"log_bytes", base.bytes_sent},
                     {"records", a.records_sent}, {"bytes", a.bytes_sent}, {"messages", a.msgs_sent},
                     {"coalesced", a.coalesced}, {"records_saved", rec_saved(a)}, {"message_bytes_saved", msg_saved(a)},
                     {"records_coalesce_off", b.records_sent}, {"records_saved_coalesce_off", rec_saved(b)}});
    }
  }
  return out;
}

// ---- transport -------------------------------------------------------------------------------

// The node's fast path on one interface in its namespace, redirecting the replication port.
double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

struct TransportRun {
  std::string mode;
  double msgs_per_s = 0, cpu_us_per_msg = 0, records_per_s = 0;
};

// Both sides write 32 new keys per loop turn (every update a record of its own: no coalescing
// can shrink the stream) and poll, for `seconds`; then they settle and must hold each other's
// updates.
// raw_size > 0: no replicator; side a sends datagrams of raw_size bytes through its transport
// as fast as side b drains them (at most 64 in flight), which isolates the transports' own cost.
TransportRun run_transport(bool afxdp, double seconds, size_t raw_size) {
  test::VethPair pair("sb", false);
  pair.ns_a.ip("addr add 10.78.0.1/24 dev veth-a");
  pair.ns_b.ip("addr add 10.78.0.2/24 dev veth-b");
  struct Side {
    uint32_t id = 0;
    std::string ns, ifname;
    Endpoint local;
    TwinStore store{schema()};
    std::unique_ptr<test::NetnsFastPath> fp;
    std::unique_ptr<Transport> t;
    std::unique_ptr<Replicator> rep;
    uint64_t written = 0;
  };
  Side a, b;
  a.id = 1, a.ns = pair.ns_a.name(), a.ifname = "veth-a", a.local = *parse_endpoint("10.78.0.1", kPort);
  b.id = 2, b.ns = pair.ns_b.name(), b.ifname = "veth-b", b.local = *parse_endpoint("10.78.0.2", kPort);
  SystemClock clock;
  auto keys = *Keyring::make({{1, std::vector<uint8_t>(32, 0x5a)}}, 1);
  for (Side* s : {&a, &b}) {
    s->fp = std::make_unique<test::NetnsFastPath>(s->ns, s->ifname, s->local.addr, kPort, "/sys/fs/bpf/anychain-bench-state-");
    test::InNetns in(s->ns);
    XskOptions o;
    o.ifname = s->ifname;
    o.local = s->local;
    o.xskmap_fd = afxdp ? s->fp->map_fd("ac_state_xsk") : -1;
    o.slot_stride = AC_XSK_QUEUES;
    auto t = open_transport(o);
    if (!t) throw std::runtime_error("transport: " + t.error().str());
    s->t = std::move(*t);
    std::string mode = s->t->status().mode;
    if (afxdp != (mode.rfind("afxdp", 0) == 0))
      throw std::runtime_error("transport mode " + mode + ": " + s->t->status().reason);
    ReplicatorConfig cfg;
    cfg.me = Identity{.service = 9, .id = s->id, .incarnation = 1000 + s->id};
    s->rep = std::make_unique<Replicator>(cfg, s->store, *s->t, keys, clock);
  }
  if (raw_size) {
    Bytes d(raw_size, 0xa5);
    uint64_t sent = 0, got = 0;
    auto drain = [&] { got += b.t->receive([](ByteView, const Endpoint&) {}, 256); };
    for (int i = 0; i < 64; ++i) (void)a.t->send(b.local, d);  // the neighbour gets resolved
    for (auto t0 = std::chrono::steady_clock::now(); std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(300);) drain();
    got = 0;
    const double c0 = cpu_seconds();
    const auto t0 = std::chrono::steady_clock::now();
    double elapsed = 0;
    while (elapsed < seconds) {
      while (sent - got < 64 && a.t->send(b.local, d)) ++sent;
      drain();
      elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    const double cpu = cpu_seconds() - c0;
    TransportRun out;
    out.mode = a.t->status().mode;
    out.msgs_per_s = static_cast<double>(got) / elapsed;
    out.cpu_us_per_msg = got ? cpu * 1e6 / static_cast<double>(got) : 0;
    if (got < sent / 2) throw std::runtime_error("raw transport: " + std::to_string(sent) + " sent, " + std::to_string(got) + " received");
    for (Side* s : {&a, &b}) {
      test::InNetns in(s->ns);
      s->rep.reset();
      s->t.reset();
    }
    return out;
  }
  a.rep->set_members({{2, b.local}});
  b.rep->set_members({{1, a.local}});
  // neighbours resolved, RTT measured
  for (auto t0 = std::chrono::steady_clock::now(); std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(300);) {
    a.rep->poll();
    b.rep->poll();
  }
  auto msgs = [&] {
    uint64_t n = 0;
    for (Side* s : {&a, &b})
      for (const PeerStatus& p : s->rep->peers()) n += p.msgs_sent;
    return n;
  };
  auto records = [&] {
    uint64_t n = 0;
    for (Side* s : {&a, &b}) n += s->rep->stats().records_applied;
    return n;
  };
  const uint64_t m0 = msgs(), r0 = records();
  const double c0 = cpu_seconds();
  const auto t0 = std::chrono::steady_clock::now();
  double elapsed = 0;
  while (elapsed < seconds) {
    for (Side* s : {&a, &b}) {
      for (int k = 0; k < 32; ++k) s->store.gc_add(kCounters, key8((uint64_t{s->id} << 32) | (s->written++ % 8000)), 1);
      s->rep->poll();
    }
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  const double cpu = cpu_seconds() - c0;
  const uint64_t m = msgs() - m0, r = records() - r0;
  for (auto t1 = std::chrono::steady_clock::now(); std::chrono::steady_clock::now() - t1 < std::chrono::seconds(20);) {
    a.rep->poll();
    b.rep->poll();
    if (a.rep->peers()[0].acked == a.rep->stats().version && b.rep->peers()[0].acked == b.rep->stats().version) break;
  }
  for (Side* s : {&a, &b}) {
    const Side& o = s == &a ? b : a;
    for (uint64_t i = 0; i < std::min<uint64_t>(o.written, 8000); ++i) {
      uint64_t want = o.written / 8000 + (i < o.written % 8000 ? 1 : 0);
      if (s->store.gc_value(kCounters, key8((uint64_t{o.id} << 32) | i)) != want)
        throw std::runtime_error("transport: side " + std::to_string(s->id) + " did not converge");
    }
  }
  TransportRun out;
  out.mode = a.t->status().mode;
  out.msgs_per_s = static_cast<double>(m) / elapsed;
  out.records_per_s = static_cast<double>(r) / elapsed;
  out.cpu_us_per_msg = m ? cpu * 1e6 / static_cast<double>(m) : 0;
  for (Side* s : {&a, &b}) {
    s->rep.reset();
    test::InNetns in(s->ns);
    s->t.reset();
  }
  return out;
}

struct Spread {
  double min, median, max;
};
Spread spread(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return {v.front(), v[v.size() / 2], v.back()};
}

json bench_transport(int reps, double seconds, size_t raw_size) {
  std::map<bool, std::vector<double>> rate, cpu, recs;
  std::string xdp_mode;
  std::printf("transport (%s)\n", raw_size ? ("datagrams of " + std::to_string(raw_size) + " bytes, no replicator").c_str()
                                            : "two replicators exchanging updates");
  for (int r = 0; r < reps; ++r)
    for (bool afxdp : {true, false}) {
      TransportRun t = run_transport(afxdp, seconds, raw_size);
      if (afxdp) xdp_mode = t.mode;
      rate[afxdp].push_back(t.msgs_per_s);
      cpu[afxdp].push_back(t.cpu_us_per_msg);
      recs[afxdp].push_back(t.records_per_s);
      std::printf("  rep %d %-10s %10.0f msg/s %8.2f us CPU/msg", r + 1, t.mode.c_str(), t.msgs_per_s, t.cpu_us_per_msg);
      if (!raw_size) std::printf(" %10.0f records/s", t.records_per_s);
      std::printf("\n");
    }
  json out;
  std::printf("transport: %d interleaved repetitions of %.1f s, min/median/max\n", reps, seconds);
  for (bool afxdp : {true, false}) {
    Spread a = spread(rate[afxdp]), c = spread(cpu[afxdp]), n = spread(recs[afxdp]);
    std::string mode = afxdp ? xdp_mode : "udp";
    std::printf("%-10s msg/s %.0f / %.0f / %.0f   CPU us/msg %.2f / %.2f / %.2f", mode.c_str(), a.min, a.median, a.max,
                c.min, c.median, c.max);
    if (!raw_size) std::printf("   records/s %.0f / %.0f / %.0f", n.min, n.median, n.max);
    std::printf("\n");
    out[mode] = {{"msgs_per_s", {a.min, a.median, a.max}}, {"cpu_us_per_msg", {c.min, c.median, c.max}}};
    if (!raw_size) out[mode]["records_per_s"] = {n.min, n.median, n.max};
  }
  double r = spread(rate[true]).median / spread(rate[false]).median;
  double c = spread(cpu[true]).median / spread(cpu[false]).median;
  std::printf("AF_XDP / UDP: messages per second %.2fx, CPU per message %.2fx (medians)\n", r, c);
  out["ratio_msgs_per_s"] = r;
  out["ratio_cpu_per_msg"] = c;
  return out;
}


// ---- delay -----------------------------------------------------------------------------------

using bench::DelayNet;
using bench::DelayTransport;
using bench::pin_to;

// The packet path (tests/state/crdt_test.bpf.c's update program doing a count-min sketch add,
// the port-scan detector's update) run on CPU 1 in calls of 10,000 repeats for `seconds`, while
// on CPU 0 its replicator (a BpfStore over the program's maps, merging through its merge
// program) exchanges with a second instance across a link of `delay_us` (none: no replication
// at all). The second instance writes 20 updates per ms, so merges land in the maps the packet
// path is updating. Returns packets per second of the program's own time (the kernel's
// duration); after the run both replicas must converge.
double run_delay(std::optional<uint64_t> delay_us, double seconds) {
  crdt_test_bpf* skel = crdt_test_bpf__open_and_load();
  must_ok(skel != nullptr, "load crdt_test");
  BpfStoreMaps m = crdt_test_maps(skel);
  auto bs = BpfStore::open(crdt_test_schema(), m);
  must_ok(bs.has_value(), "BpfStore");
  std::unique_ptr<BpfStore> a_store = std::move(*bs);
  TwinStore b_store(crdt_test_schema());
  DelayNet net;
  net.delay_us = delay_us.value_or(0);
  const Endpoint ea{0x0100000a, kPort}, eb{0x0200000a, kPort};
  DelayTransport ta(net, ea), tb(net, eb);
  SystemClock clock;
  auto keys = *Keyring::make({{1, std::vector<uint8_t>(32, 0x5a)}}, 1);
  ReplicatorConfig ca, cb;
  ca.me = Identity{.service = 9, .id = 1, .incarnation = 1001};
  cb.me = Identity{.service = 9, .id = 2, .incarnation = 1002};
  Replicator ra(ca, *a_store, ta, keys, clock), rb(cb, b_store, tb, keys, clock);
  ra.set_members({{2, eb}});
  rb.set_members({{1, ea}});

  std::atomic<bool> stop{false};
  std::atomic<uint64_t> b_updates{0};
  std::thread repl;
  if (delay_us) {
    repl = std::thread([&] {
      pin_to(0);
      std::mt19937_64 rng(5);
      auto next = std::chrono::steady_clock::now();
      while (!stop.load(std::memory_order_relaxed)) {
        if (std::chrono::steady_clock::now() >= next) {
          for (int i = 0; i < 20; ++i) b_store.cms_add(CT_OBJ_CMS, rng() % 4096, 1);
          b_updates += 20;
          next += std::chrono::milliseconds(1);
        }
        ra.poll();
        rb.poll();
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    });
  }
  pin_to(1);
  crdt_test_op op{};
  op.code = CT_CMS_ADD;
  op.amount = 1;
  uint8_t frame[14 + sizeof op] = {};
  uint8_t out[sizeof frame + 64];
  uint64_t packets = 0, kernel_ns = 0, calls = 0;
  const auto t0 = std::chrono::steady_clock::now();
  double elapsed = 0;
  while (elapsed < seconds) {
    op.hash = ac_mix64(packets);  // another sketch cell every call, as scanned ports would
    std::memcpy(frame + 14, &op, sizeof op);
    LIBBPF_OPTS(bpf_test_run_opts, t, .data_in = frame, .data_out = out, .data_size_in = sizeof frame,
                .data_size_out = sizeof out, .repeat = 10000);
    must_ok(bpf_prog_test_run_opts(bpf_program__fd(skel->progs.crdt_update), &t) == 0 && t.retval == XDP_PASS,
            "crdt_update");
    packets += 10000;
    kernel_ns += t.duration;
    ++calls;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  stop = true;
  if (repl.joinable()) repl.join();
  if (delay_us) {  // settle, then both must hold the same state
    must_ok(bench::settle(ra, rb), "delay " + std::to_string(*delay_us / 1000) + " ms: the replicators did not settle");
    must_ok(sim::canonical(*a_store, ra) == sim::canonical(b_store, rb),
            "delay " + std::to_string(*delay_us / 1000) + " ms: the replicas did not converge");
    must_ok(b_updates > 0 && ra.stats().records_applied > 0 && a_store->stats().merged > 0,
            "no merge landed in the packet path's maps");
  }
  a_store.reset();
  crdt_test_bpf__destroy(skel);
  // The kernel's own time of the program (t.duration: ns per repeat, time the thread was
  // rescheduled left out), so that what other jobs on the machine take from CPU 1 does not count.
  return 1e9 / (static_cast<double>(kernel_ns) / static_cast<double>(calls));
}

json bench_delay(int reps, double seconds) {
  const std::vector<std::optional<uint64_t>> delays = {std::nullopt, 0, 10'000, 50'000, 100'000};
  std::map<int, std::vector<double>> mpps;
  std::printf("delay: packet path (count-min add) on CPU 1, replication on CPU 0 across a delayed link;\n"
              "%d interleaved repetitions of %.1f s\n", reps, seconds);
  for (int r = 0; r < reps; ++r)
    for (size_t i = 0; i < delays.size(); ++i) mpps[static_cast<int>(i)].push_back(run_delay(delays[i], seconds) / 1e6);
  json out = json::array();
  const double base = spread(mpps[0]).median;
  for (size_t i = 0; i < delays.size(); ++i) {
    Spread s = spread(mpps[static_cast<int>(i)]);
    std::string name = delays[i] ? std::to_string(*delays[i] / 1000) + " ms" : "no replication";
    std::printf("%-16s %.2f / %.2f / %.2f Mpps   %.3fx\n", name.c_str(), s.min, s.median, s.max, s.median / base);
    out.push_back({{"delay", name}, {"mpps", {s.min, s.median, s.max}}, {"ratio", s.median / base}});
  }
  return out;
}

}  // namespace
}  // namespace anychain::state

int main(int argc, char** argv) {
  po::options_description opts(
      "anychain-bench-state: shared-state replication figures (docs/performance.md, \"Shared state\").\n"
      "Needs root for the transport benchmark (namespaces, XDP, AF_XDP).\nOptions");
  opts.add_options()("help,h", "this help")(
      "bench", po::value<std::string>()->default_value("coalescing,delay,transport"), "which: coalescing, delay, transport (comma-separated)")(
      "reps", po::value<int>()->default_value(3), "transport: interleaved repetitions per mode")(
      "seconds", po::value<double>()->default_value(3.0), "transport: length of one repetition")(
      "seed", po::value<uint64_t>()->default_value(7), "coalescing: seed of the update mix and the network")(
      "json", po::value<std::string>(), "also write the results as JSON to this file");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, opts), vm);
    po::notify(vm);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "anychain-bench-state: %s\n", e.what());
    return 2;
  }
  if (vm.count("help")) {
    std::cout << opts << "\n";
    return 0;
  }
  const std::string which = vm["bench"].as<std::string>();
  if (vm["reps"].as<int>() < 1 || vm["seconds"].as<double>() <= 0) {
    std::fprintf(stderr, "anychain-bench-state: --reps must be >= 1 and --seconds > 0\n");
    return 2;
  }
  json out;
  try {
    if (which.find("coalescing") != std::string::npos) out["coalescing"] = anychain::state::bench_coalescing(vm["seed"].as<uint64_t>());
    if (which.find("delay") != std::string::npos)
      out["delay"] = anychain::state::bench_delay(vm["reps"].as<int>(), vm["seconds"].as<double>());
    if (which.find("transport") != std::string::npos) {
      if (::geteuid() != 0) {
        std::fprintf(stderr, "anychain-bench-state: the transport benchmark needs root\n");
        return 2;
      }
      for (size_t raw : {size_t{200}, size_t{1400}})
        out["transport_raw_" + std::to_string(raw)] =
            anychain::state::bench_transport(vm["reps"].as<int>(), vm["seconds"].as<double>(), raw);
      out["transport_replicator"] = anychain::state::bench_transport(vm["reps"].as<int>(), vm["seconds"].as<double>(), 0);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "anychain-bench-state: %s\n", e.what());
    return 1;
  }
  if (vm.count("json")) {
    FILE* f = std::fopen(vm["json"].as<std::string>().c_str(), "w");
    if (!f) {
      std::fprintf(stderr, "anychain-bench-state: cannot write %s: %s\n", vm["json"].as<std::string>().c_str(),
                   std::strerror(errno));
      return 1;
    }
    std::fputs(out.dump(2).c_str(), f);
    std::fclose(f);
  }
  return 0;
}
