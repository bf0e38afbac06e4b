// anychain-bench-nf-state: the per-packet cost of the shared-state objects inside the real NF
// programs (issue 14: "per-packet cost of an object update in XDP against none", target <= 5 %;
// docs/performance.md "Shared state").
//
//   ratelimit  bpf/nf_ratelimit.bpf.c (bench/nf_state_rl.bpf.c), against the same source built
//              without its object (bench/nf_state_rl_noobj.bpf.c: no window lookup, merged read, atomic add to the
//              own slot or change-log check): every packet is an object update
//   ids        bpf/nf_ids.bpf.c against the same source without its objects: every packet looks
//              up the flagged set, reads the pair filter (k = 3 cells) and, for a new pair, adds
//              to the filter and the sketch (4 rows), and tests the source's estimate against the
//              threshold (its first sketch row, under it: the other rows are not read); the same
//              frame over and over is a known pair after the first run (reads only), so this row
//              is the cost of the objects' reads on every packet
// Both objects are loaded with libbpf and configured alike (a window set up, a scan epoch, no
// limit reached, no source flagged: the pass path), and run with BPF_PROG_TEST_RUN and a large
// repeat count on one NSH frame (MD type 1) holding an inner UDP/IPv4 packet of 64 and 1500
// bytes. BPF_PROG_TEST_RUN restores nothing between runs and the NF lowers the SI on every run:
// both builds put it back first (AC_NF_BENCH_LOOP, one byte), so every iteration takes the same
// path (the MACs it swaps do not matter to it). Repetitions interleave the two builds; the figure is the median
// of the per-repetition ratios. Every run's verdict and the counters are checked (every packet
// passed and, with the object, counted in its own slot); a run that does not add up fails.
// Needs root (BPF). Run it on a quiet machine: chrt -f 50 taskset -c 1 (--delay: chrt -f 50; it
// pins its own threads to CPUs 0 and 1).
//
// --path: the same comparison where a packet really goes. bench/e2e_topo.h's one-service chain
// (gen -> r1: classify + NSH push -> veth -> the NF's XDP -> XDP_TX back -> r1: pop + route ->
// sink) with anychain's fast path on r1 and, on the VNF's veth, the NF as built (bpf/nf_*.bpf.o)
// or built without its objects (bench/nf_state_*_path_noobj.bpf.c: no SI rewind either); live
// frames from bench/e2e.bpf.c's generator on --gen-cpu, the router's NAPI (and with it the NF's,
// a veth runs its peer's NAPI on the sending CPU) pinned to --router-cpu, Mpps counted by the
// sink's XDP. The two builds are swapped on the veth (bpf_xdp_attach) between interleaved
// samples; the ratio is per sample pair, the median reported. Every packet the NF saw must have
// gone back (nf_stats rx == tx) and, with the object, been counted in its own slot.
//
// --delay: the NF's throughput while its objects replicate across a link of 0, 10, 50 and 100 ms
// (issue 14: "flat within 5 %"; this kernel has no netem: bench/delay_link.h holds the datagrams
// in process), against no replication at all. The NF (bench/nf_state_*.bpf.c, configured as
// above: window 1000 held by generation 0, 1001 by generation 1, as anychain-nf's roll leaves
// them) runs in BPF_PROG_TEST_RUN calls of 10,000 repeats of a 64-byte inner UDP packet on CPU 1
// for --seconds, its figure the kernel's own time per packet; the IDS's frame has another
// destination port every call (a new pair), the rate limiter adds every packet. It is attached to
// the sandbox's idle lo (generic XDP) so that the calls do not swap it into the XDP dispatcher
// and out (two RCU grace periods a call). On CPU 0 a replicator over the NF's maps (a BpfStore
// opened by agent/nf/crdt.cc's open_crdt_store from the ids: nf::crdt_objects(), the control,
// change-log, stats and window maps, the merge program) exchanges with a second instance (a
// TwinStore of the same schema whose records carry the window, as a peer in the same window's
// do) that sees 20 packets a ms of the same traffic and does what the NF does with them: the
// IDS, the same source scanning ports of its own (a new pair: the filter's cells and the
// source's sketch cells, the ones the packet path reads on every packet); the rate limiter, one
// packet on the counter the packet path reads and adds to. Repetitions interleave the five
// settings; the figure is the median Mpps and its ratio to the median without replication.
// After every run with replication both replicas must have converged, records have been applied
// both ways and none refused (stale window, bad record: ac_crdt_stats, the stores' counts), and
// the NF's own cells hold what each instance added (its slot 0, the other's merged); else the
// bench fails.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/if_link.h>
#include <arpa/inet.h>
#include <net/if.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <map>
#include <optional>
#include <fstream>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <thread>

#include "anychain/crdt.h"
#include "anychain/ftc.h"
#include "anychain/nf.h"
#include "anychain/nsh.h"
#include "common/netns.h"
#include "common/packet.h"
#include "delay_link.h"
#include "e2e.skel.h"
#include "e2e_live.h"
#include "e2e_maps.h"
#include "e2e_topo.h"
#include "nf/crdt.h"
#include "nf/params.h"
#include "nf/published.h"
#include "sim.h"
#include "state/bpf_store.h"
#include "state/replicator.h"
#include "state/twin_store.h"

namespace po = boost::program_options;
using nlohmann::json;

namespace anychain::bench {
namespace {

using namespace test;
using test::L4;
using test::Mac;
using test::Nsh;

const Mac kHost = {0x02, 0, 0, 0, 0xa0, 0x01}, kNf = {0x02, 0xac, 0x6e, 0x66, 0, 0x07};
constexpr uint32_t kWindow = 1000;  // any window: generation 0 holds it

struct Nf {
  bpf_object* obj = nullptr;
  int prog = -1;
  ~Nf() {
    if (obj) bpf_object__close(obj);
  }
  int fd(const char* map) const {
    bpf_map* m = bpf_object__find_map_by_name(obj, map);
    return m ? bpf_map__fd(m) : -1;
  }
  void put(const char* map, const void* v) const {
    uint32_t k0 = 0;
    if (bpf_map_update_elem(fd(map), &k0, v, 0)) throw std::runtime_error(std::string("write ") + map);
  }
  // a per-CPU counter of nf_stats, summed
  uint64_t stat(uint32_t s) const {
    std::vector<uint64_t> v(static_cast<size_t>(libbpf_num_possible_cpus()));
    if (bpf_map_lookup_elem(fd("nf_stats"), &s, v.data())) throw std::runtime_error("read nf_stats");
    uint64_t n = 0;
    for (uint64_t x : v) n += x;
    return n;
  }
};

void load(Nf& nf, const std::string& path, const std::string& prog, const std::string& kind) {
  nf.obj = bpf_object__open_file(path.c_str(), nullptr);
  if (!nf.obj) throw std::runtime_error("open " + path);
  if (bpf_object__load(nf.obj)) throw std::runtime_error("load " + path + " (the verifier's log is above)");
  bpf_program* p = bpf_object__find_program_by_name(nf.obj, prog.c_str());
  if (!p) throw std::runtime_error(path + ": no program " + prog);
  nf.prog = bpf_program__fd(p);
  ac_nf_ftc_cfg fc{};
  fc.instance = 1;
  nf.put("nf_ftc_cfg", &fc);
  if (kind == "ratelimit") {
    ac_nf_rl_cfg c{};
    c.limit = ~0ULL;  // never reached: the pass path, an add on every packet
    c.unit = AC_NF_RL_PACKETS;
    nf.put("nf_rl_cfg", &c);
  } else {
    ac_nf_ids_cfg c{};
    c.threshold = 1u << 20;  // never reached: no source flagged
    c.action = AC_NF_IDS_PASS;
    c.pairs_mask = 65536 - 1;  // the object's default geometry
    c.pairs_hashes = 3;
    c.ports_mask = 4096 - 1;
    c.ports_rows = 4;
    nf.put("nf_ids_cfg", &c);
  }
  ac_crdt_windows w{};
  w.cur = kWindow;
  w.gen[kWindow & 1] = kWindow;
  w.gen[(kWindow & 1) ^ 1] = kWindow + 1;
  nf.put("ac_crdt_win", &w);
  ac_crdt_ctl ctl{};
  ctl.epoch = 1;  // an agent scans: a changed cell is logged once per epoch
  nf.put("ac_crdt_ctl", &ctl);
}

Bytes frame(size_t inner, uint16_t dport = 9000) {
  Nsh n;
  n.spi = 42;
  n.si = 255;
  n.next_proto = AC_NSH_NP_IPV4;
  n.ctx[0] = 0x11223344;
  Bytes f = eth(kNf, kHost, AC_ETH_P_NSH);
  append(f, nsh(n));
  append(f, ipv4("10.1.0.1", "10.2.0.2", L4{IPPROTO_UDP, 40000, dport, Bytes(inner - 28, 0xab)}));
  return f;
}

// ns per packet over `repeat` runs (the kernel's average)
double run(const Nf& nf, const Bytes& f, uint32_t repeat) {
  Bytes out(f.size() + 256);
  LIBBPF_OPTS(bpf_test_run_opts, t, .data_in = f.data(), .data_out = out.data(),
              .data_size_in = static_cast<uint32_t>(f.size()), .data_size_out = static_cast<uint32_t>(out.size()),
              .repeat = static_cast<int>(repeat));
  if (bpf_prog_test_run_opts(nf.prog, &t)) throw std::runtime_error("BPF_PROG_TEST_RUN failed");
  if (t.retval != XDP_TX) {
    std::string counted;
    for (uint32_t i = 0; i < AC_NF_STAT_END; ++i)
      if (uint64_t n = nf.stat(i)) counted += " [" + std::to_string(i) + "]=" + std::to_string(n);
    throw std::runtime_error("verdict " + std::to_string(t.retval) + ", not XDP_TX; nf_stats:" + counted);
  }
  return static_cast<double>(t.duration);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

json bench(const std::string& kind, const std::string& with, const std::string& without, const std::string& prog,
           const std::vector<size_t>& sizes, int reps, uint32_t repeat) {
  Nf a, b;
  load(a, with, prog, kind);
  load(b, without, prog, kind);
  json out = json::array();
  uint64_t runs = 0;
  for (size_t size : sizes) {
    const Bytes f = frame(size);
    std::vector<double> ns_with, ns_without, ratio;
    run(a, f, 1000);  // warm-up: the first packet creates what later ones find
    run(b, f, 1000);
    runs += 1000;
    for (int r = 0; r < reps; ++r) {
      double x = run(a, f, repeat), y = run(b, f, repeat);
      runs += repeat;
      ns_with.push_back(x);
      ns_without.push_back(y);
      ratio.push_back(x / y);
    }
    const double q = median(ratio);
    std::printf("%-9s inner %4zu B (frame %4zu B): with objects %6.1f ns/pkt, without %6.1f ns/pkt, "
                "ratio %.3f (+%.1f %%) [ratios %.3f..%.3f over %d reps]\n",
                kind.c_str(), size, f.size(), median(ns_with), median(ns_without), q, (q - 1) * 100,
                *std::min_element(ratio.begin(), ratio.end()), *std::max_element(ratio.begin(), ratio.end()), reps);
    out.push_back({{"nf", kind}, {"inner_bytes", size}, {"frame_bytes", f.size()},
                   {"ns_with", median(ns_with)}, {"ns_without", median(ns_without)}, {"ratio", q},
                   {"ratio_min", *std::min_element(ratio.begin(), ratio.end())},
                   {"ratio_max", *std::max_element(ratio.begin(), ratio.end())}});
  }
  // every packet passed through both builds; with the object, every one was counted in it
  for (const Nf* n : {&a, &b}) {
    if (n->stat(AC_NF_RX) != runs || n->stat(AC_NF_TX) != runs)
      throw std::runtime_error(kind + ": packets received/returned do not add up");
  }
  if (kind == "ratelimit") {
    for (const Nf* n : {&a, &b})
      if (n->stat(AC_NF_RL_PASSED) != runs) throw std::runtime_error("ratelimit: passed packets do not add up");
    uint32_t k0 = 0;
    ac_gcounter c{};
    if (bpf_map_lookup_elem(a.fd("rl_count0"), &k0, &c)) throw std::runtime_error("read rl_count0");
    if (c.slot[0] != runs || c.others != 0)
      throw std::runtime_error("ratelimit: the own slot holds " + std::to_string(c.slot[0]) + ", not " +
                               std::to_string(runs));
    if (bpf_map_lookup_elem(b.fd("rl_count0"), &k0, &c) || c.slot[0] != 0)
      throw std::runtime_error("ratelimit: the build without the object counted in it");
  } else {
    if (a.stat(AC_NF_IDS_NEW_PAIR) != 1) throw std::runtime_error("ids: one pair, counted once");
    if (b.stat(AC_NF_IDS_NEW_PAIR) != 0) throw std::runtime_error("ids: the build without objects counted a pair");
    if (a.stat(AC_NF_IDS_FULL_ESTIMATE) != 0)
      throw std::runtime_error("ids: a source under the threshold read more than its first sketch row");
  }
  return out;
}

// ---- --path: the NF on a veth behind the fast path, live frames ----

void attach(const Nf& nf, const Iface& v) {
  InNetns in(v.ns);
  if (int err = bpf_xdp_attach(v.ifindex, nf.prog, XDP_FLAGS_DRV_MODE, nullptr))
    throw std::runtime_error("attach the NF to " + v.name + ": " + std::strerror(-err));
}

json path_bench(const std::string& kind, const std::string& with, const std::string& without, const std::string& prog,
                int reps, double seconds, int gen_cpu, int router_cpu) {
  Topo t(TopoSpec{Kind::Chain, 1}, router_cpu, AC_FLOW_CACHE_DEFAULT);
  t.set_mode(Mode::Anychain);
  const Iface v = t.steps().at(0).next;  // the VNF's veth
  t.vnfs().at(0)->detach_all();
  Nf a, b;
  load(a, with, prog, kind);
  load(b, without, prog, kind);
  LiveFrames gen(t, gen_cpu);
  // one sample: Mpps at the sink, and the router CPU's ns per packet (its NAPI thread and
  // ksoftirqd, which run the fast path, the veth hops and the NF's XDP: the figure that does not
  // depend on how much of the CPU other processes took)
  auto sample = [&](const Nf& nf) {
    attach(nf, v);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the other build's frames gone
    const auto tasks = t.router_tasks();
    const uint64_t r0 = t.receiver().packets(), c0 = cpu_ns(tasks);
    const auto t0 = std::chrono::steady_clock::now();
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    const uint64_t r1 = t.receiver().packets(), c1 = cpu_ns(tasks);
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (r1 == r0) throw std::runtime_error(kind + " on the path: nothing reached the sink");
    return std::pair<double, double>{static_cast<double>(r1 - r0) / dt / 1e6,
                                     static_cast<double>(c1 - c0) / static_cast<double>(r1 - r0)};
  };
  std::vector<double> m_with, m_without, ns_with, ns_without, ratio;
  for (int r = 0; r < reps; ++r) {
    const auto x = sample(a), y = sample(b);
    m_with.push_back(x.first);
    m_without.push_back(y.first);
    ns_with.push_back(x.second);
    ns_without.push_back(y.second);
    ratio.push_back(x.second / y.second);  // router CPU per packet, with the objects over without
  }
  gen.stop();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  {
    InNetns in(v.ns);
    bpf_xdp_detach(v.ifindex, XDP_FLAGS_DRV_MODE, nullptr);
  }
  for (const Nf* n : {&a, &b})
    if (n->stat(AC_NF_RX) == 0 || n->stat(AC_NF_RX) != n->stat(AC_NF_TX))
      throw std::runtime_error(kind + " on the path: the NF's packets received/returned do not add up (rx " +
                               std::to_string(n->stat(AC_NF_RX)) + ", tx " + std::to_string(n->stat(AC_NF_TX)) + ")");
  if (kind == "ratelimit") {
    uint32_t k0 = 0;
    ac_gcounter c{};
    if (bpf_map_lookup_elem(a.fd("rl_count0"), &k0, &c) || c.slot[0] != a.stat(AC_NF_RL_PASSED) || c.slot[0] == 0)
      throw std::runtime_error("ratelimit on the path: the own slot does not hold every packet passed");
  }
  const double q = median(ratio);
  std::printf("%-9s path, 64 B frames: with objects %.0f ns/pkt of the router CPU (%.3f Mpps), without %.0f ns/pkt "
              "(%.3f Mpps); ratio %.3f (+%.1f %%) [%.3f..%.3f over %d reps]\n",
              kind.c_str(), median(ns_with), median(m_with), median(ns_without), median(m_without), q, (q - 1) * 100,
              *std::min_element(ratio.begin(), ratio.end()), *std::max_element(ratio.begin(), ratio.end()), reps);
  return {{"nf", kind}, {"frame_bytes", 64}, {"mpps_with", median(m_with)}, {"mpps_without", median(m_without)},
          {"cpu_ns_with", median(ns_with)}, {"cpu_ns_without", median(ns_without)},
          {"ratio", q}, {"ratio_min", *std::min_element(ratio.begin(), ratio.end())},
          {"ratio_max", *std::max_element(ratio.begin(), ratio.end())}};
}

// ---- --delay: the packet path while its objects replicate across a delayed link ----

// The second instance of the service: a TwinStore of the NF's schema. A windowed object's
// records carry the window the sender read the cell in (BpfStore::epoch(), docs/state.md 4.1)
// and the NF's merge refuses any other (AC_CRDT_APPLY_STALE); the twin keeps no windows, so this
// stamps each windowed object's records with the window its generation holds at the receiver, as
// a peer in the same window does (its clock within the window of ours). Everything else is the
// twin's.
class WindowedTwin final : public state::Store {
 public:
  WindowedTwin(state::Schema s, const std::vector<nf::Published::Crdt::Object>& objs, const ac_crdt_windows& w)
      : twin(std::move(s)) {
    for (const auto& o : objs)
      if (o.generation == 0 || o.generation == 1) epoch_[o.id] = ac_crdt_win_epoch(w.gen[o.generation]);
  }
  state::TwinStore twin;

  const state::Schema& schema() const override { return twin.schema(); }
  Result<void> changes(const state::CellFn& fn) override { return twin.changes(fn); }
  Result<bool> read(uint8_t object, const state::Key& key, state::SlotMask mask, const state::SlotFn& fn) override {
    return twin.read(object, key, mask, fn);
  }
  Result<void> cells(const state::CellFn& fn) override { return twin.cells(fn); }
  Result<void> cells_of(uint8_t object, const state::CellFn& fn) override { return twin.cells_of(object, fn); }
  Result<void> merge(uint8_t object, const state::Key& key, uint8_t slot, const state::CellValue& v,
                     uint16_t epoch) override {
    return twin.merge(object, key, slot, v, epoch);
  }
  Result<void> flush() override { return twin.flush(); }
  Result<bool> fold(uint8_t slot) override { return twin.fold(slot); }
  Result<void> local_remove(uint8_t object, const state::Key& key) override { return twin.local_remove(object, key); }
  Result<bool> local_delete(uint8_t object, const state::Key& key) override { return twin.local_delete(object, key); }
  uint16_t epoch(uint8_t object) const override { return epoch_[object]; }

 private:
  std::array<uint16_t, 256> epoch_{};
};

// a per-CPU counter of ac_crdt_stats, summed
uint64_t crdt_stat(const Nf& nf, uint32_t s) {
  std::vector<uint64_t> v(static_cast<size_t>(libbpf_num_possible_cpus()));
  if (bpf_map_lookup_elem(nf.fd("ac_crdt_stats"), &s, v.data())) throw std::runtime_error("read ac_crdt_stats");
  uint64_t n = 0;
  for (uint64_t x : v) n += x;
  return n;
}

ac_gcounter cell(const Nf& nf, const char* map, uint32_t idx) {
  ac_gcounter c{};
  if (bpf_map_lookup_elem(nf.fd(map), &idx, &c)) throw std::runtime_error(std::string("read ") + map);
  return c;
}

struct DelayRun {
  double mpps = 0;
  uint64_t packets = 0, calls = 0;
  uint64_t twin_packets = 0, twin_updates = 0;  // what the second instance saw, and wrote
  uint64_t applied_nf = 0, applied_twin = 0;    // records applied by each replicator
  uint64_t merged = 0;                          // records the NF's merge program applied (ac_crdt_stats)
};

// One run of `seconds`: the NF (the real source with the bench's SI rewind, configured by load():
// a window set up, generation 0 written) run with BPF_PROG_TEST_RUN in calls of 10,000 repeats
// on CPU 1, its own time per packet from the kernel (t.duration); the IDS's frame has another UDP
// destination port every call (a new pair: the filter's and the sketch's cells added once, then
// read), the rate limiter adds every packet. delay_us set: on CPU 0 a replicator over the NF's
// maps (the ids anychain-nf would publish for them, opened by agent/nf/crdt.cc's open_crdt_store
// as the agent opens them: the objects of nf::crdt_objects(), the control, change-log, stats and
// window maps, the merge program)
// exchanges with a second instance (WindowedTwin) across a DelayNet of delay_us; the second
// instance sees 20 packets per ms of the same traffic and does what the NF does with them (the
// IDS: the same source's scan on ports of its own, a new pair added to the filter and the source's
// sketch cells; the rate limiter: one packet added to the counter), so merges land in the cells
// the packet path reads and writes. Afterwards both replicas must have converged, records have
// been applied both ways, none refused (stale window, bad record), and the merged counts add up.
DelayRun delay_run(const std::string& kind, std::optional<uint64_t> delay_us, double seconds) {
  const bool ids = kind == "ids";
  Nf nf;
  load(nf, ids ? NF_IDS_OBJ : NF_RATELIMIT_OBJ, ids ? "nf_ids" : "nf_ratelimit", kind);
  nf::Params params;
  params.kind = ids ? nf::Kind::Ids : nf::Kind::Ratelimit;  // load()'s geometry: the defaults
  // published as anychain-nf publishes the object's ids, opened as the agent opens them
  auto map_id = [&](const std::string& name) {
    bpf_map_info i{};
    uint32_t len = sizeof i;
    if (nf.fd(name.c_str()) < 0 || bpf_obj_get_info_by_fd(nf.fd(name.c_str()), &i, &len))
      throw std::runtime_error(kind + ": no map " + name);
    return i.id;
  };
  nf::Published pub;
  pub.name = kind;
  pub.kind = params.kind;
  nf::Published::Crdt& crdt = pub.crdt.emplace();
  crdt.objects = nf::crdt_objects(params);
  for (auto& o : crdt.objects) o.map_id = map_id(o.map);
  crdt.ctl_map_id = map_id("ac_crdt_ctl");
  crdt.changes_map_id = map_id("ac_crdt_changes");
  crdt.stats_map_id = map_id("ac_crdt_stats");
  crdt.win_map_id = map_id("ac_crdt_win");
  const std::string merge = ids ? "nf_ids_merge" : "nf_ratelimit_merge";
  bpf_program* mp = bpf_object__find_program_by_name(nf.obj, merge.c_str());
  bpf_prog_info pi{};
  uint32_t pi_len = sizeof pi;
  if (!mp || bpf_obj_get_info_by_fd(bpf_program__fd(mp), &pi, &pi_len))
    throw std::runtime_error(kind + ": no program " + merge);
  crdt.merge_prog_id = pi.id;
  auto schema = nf::crdt_schema(crdt);
  if (!schema) throw std::runtime_error("schema: " + schema.error().str());
  auto opened = nf::open_crdt_store(pub);
  if (!opened) throw std::runtime_error("open the NF's store: " + opened.error().str());
  std::unique_ptr<state::BpfStore> a_store = std::move(opened->store);  // opened->fds outlive it
  ac_crdt_windows w{};
  uint32_t k0 = 0;
  if (bpf_map_lookup_elem(nf.fd("ac_crdt_win"), &k0, &w)) throw std::runtime_error("read ac_crdt_win");
  if (w.cur != kWindow || (w.cur & 1) != 0) throw std::runtime_error("the packet path does not write generation 0");
  WindowedTwin b_store(*schema, crdt.objects, w);

  DelayNet net;
  net.delay_us = delay_us.value_or(0);
  const state::Endpoint ea{0x0100000a, 4795}, eb{0x0200000a, 4795};
  DelayTransport ta(net, ea), tb(net, eb);
  state::SystemClock clock;
  auto keys = *state::Keyring::make({{1, std::vector<uint8_t>(32, 0x5a)}}, 1);
  state::ReplicatorConfig ca, cb;
  ca.me = state::Identity{.service = 9, .id = 1, .incarnation = 1001};
  cb.me = state::Identity{.service = 9, .id = 2, .incarnation = 1002};
  state::Replicator ra(ca, *a_store, ta, keys, clock), rb(cb, b_store, tb, keys, clock);
  ra.set_members({{2, eb}});
  rb.set_members({{1, ea}});

  // the packet path's source (frame(): 10.1.0.1) as the IDS hashes it
  ac_nf_ids_src src{};
  src.family = 4;
  src.addr[0] = htonl(0x0a010001);
  const uint64_t hs = ac_nf_ids_src_hash(&src);
  // BPF_PROG_TEST_RUN with repeat > 1 puts the program into the XDP dispatcher for the call and
  // takes it out again (two RCU grace periods, ~20 ms here: the NF would run 2 % of the time);
  // attached to the sandbox's idle lo it stays there, and a call costs its packets only
  const int lo = static_cast<int>(if_nametoindex("lo"));
  if (int err = bpf_xdp_attach(lo, nf.prog, XDP_FLAGS_SKB_MODE, nullptr))
    throw std::runtime_error(std::string("attach the NF to lo: ") + std::strerror(-err));
  struct Detach {
    int ifindex;
    ~Detach() { bpf_xdp_detach(ifindex, XDP_FLAGS_SKB_MODE, nullptr); }
  } detach{lo};
  DelayRun out;
  std::atomic<bool> stop{false}, started{!delay_us};
  std::string repl_err;
  std::thread repl;
  if (delay_us) {
    repl = std::thread([&] {
      try {
        pin_to(0);
        uint16_t port = 32768;  // the second instance's share of the scan (the packet path's: 1..32767)
        auto next = std::chrono::steady_clock::now();
        while (!stop.load(std::memory_order_relaxed)) {
          if (std::chrono::steady_clock::now() >= next) {
            for (int i = 0; i < 20; ++i) {
              ++out.twin_packets;
              if (ids) {
                const uint64_t hp = ac_nf_ids_pair_hash(hs, IPPROTO_UDP, port);
                port = port == 65535 ? 32768 : static_cast<uint16_t>(port + 1);
                if (b_store.twin.cbf_value(AC_NF_IDS_OBJ_PAIRS0, hp) == 0) {  // ids_count(), as the NF
                  b_store.twin.cbf_add(AC_NF_IDS_OBJ_PAIRS0, hp, 1);
                  b_store.twin.cms_add(AC_NF_IDS_OBJ_PORTS0, hs, 1);
                  ++out.twin_updates;
                }
              } else {
                b_store.twin.gc_add(AC_NF_RL_OBJ_COUNT0, state::Key::index(0), 1);
                ++out.twin_updates;
              }
            }
            next += std::chrono::milliseconds(1);
          }
          ra.poll();
          rb.poll();
          started = true;
          std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
      } catch (const std::exception& e) {
        repl_err = e.what();  // read after the join
        started = true;
      }
    });
  }
  pin_to(1);
  const Bytes same = frame(64);
  // the packet path starts once replication runs (on a loaded machine the thread may wait)
  for (auto t = std::chrono::steady_clock::now(); !started;) {
    if (std::chrono::steady_clock::now() - t > std::chrono::seconds(10)) {
      stop = true;
      repl.join();
      throw std::runtime_error("replication did not start in 10 s");
    }
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  double kernel_ns = 0;
  const auto t0 = std::chrono::steady_clock::now();
  try {
    while (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < seconds) {
      kernel_ns += ids ? run(nf, frame(64, static_cast<uint16_t>(1 + out.calls % 32767)), 10000)
                       : run(nf, same, 10000);
      out.packets += 10000;
      ++out.calls;
    }
  } catch (...) {
    stop = true;
    if (repl.joinable()) repl.join();
    throw;
  }
  stop = true;
  if (repl.joinable()) repl.join();
  if (!repl_err.empty()) throw std::runtime_error("replication: " + repl_err);
  out.mpps = 1e3 / (kernel_ns / static_cast<double>(out.calls));
  const std::string what = kind + ", delay " + (delay_us ? std::to_string(*delay_us / 1000) + " ms" : "none");

  // every packet went through and the NF counted it where it should
  if (nf.stat(AC_NF_RX) != out.packets || nf.stat(AC_NF_TX) != out.packets)
    throw std::runtime_error(what + ": packets received/returned do not add up");
  const uint64_t new_pairs = nf.stat(AC_NF_IDS_NEW_PAIR);
  if (ids && (new_pairs == 0 || new_pairs > out.calls))
    throw std::runtime_error(what + ": " + std::to_string(new_pairs) + " new pairs in " + std::to_string(out.calls) +
                             " calls");
  if (!ids && (nf.stat(AC_NF_RL_PASSED) != out.packets || cell(nf, "rl_count0", 0).slot[0] != out.packets))
    throw std::runtime_error(what + ": the own slot does not hold every packet passed");
  if (!delay_us) {
    a_store.reset();
    return out;
  }

  // settle, then both must hold the same state
  if (!settle(ra, rb)) throw std::runtime_error(what + ": the replicators did not settle in 30 s");
  out.applied_nf = ra.stats().records_applied;
  out.applied_twin = rb.stats().records_applied;
  out.merged = crdt_stat(nf, AC_CRDT_ST_MERGED);
  const uint64_t bad = crdt_stat(nf, AC_CRDT_ST_MERGE_BAD), stale = crdt_stat(nf, AC_CRDT_ST_MERGE_STALE);
  if (bad || stale || a_store->stats().merge_rejected || b_store.twin.merges_refused() ||
      ra.stats().store_errors || rb.stats().store_errors)
    throw std::runtime_error(what + ": records refused (stale " + std::to_string(stale) + ", bad " +
                             std::to_string(bad) + ", store " + std::to_string(a_store->stats().merge_rejected) + ")");
  if (state::sim::canonical(*a_store, ra) != state::sim::canonical(b_store, rb))
    throw std::runtime_error(what + ": the replicas did not converge");
  if (out.twin_updates == 0 || out.applied_nf == 0 || out.applied_twin == 0 || out.merged == 0 ||
      a_store->stats().merged == 0)
    throw std::runtime_error(what + ": no merge landed (the second instance's updates " +
                             std::to_string(out.twin_updates) + ", records applied " + std::to_string(out.applied_nf) +
                             " / " + std::to_string(out.applied_twin) + ", merged " + std::to_string(out.merged) + ")");
  // the merged counts, in the NF's own maps: the second instance's adds in its slot, ours in slot 0
  if (ids) {
    for (uint32_t r = 0; r < params.ids_sketch_rows; ++r) {
      const ac_gcounter c =
          cell(nf, "ids_ports0", ac_sketch_cell(hs, r, params.ids_sketch_width - 1, params.ids_sketch_width));
      if (c.slot[0] != new_pairs || c.others != out.twin_updates)
        throw std::runtime_error(what + ": the source's sketch cell holds " + std::to_string(c.slot[0]) + " + " +
                                 std::to_string(c.others) + ", not " + std::to_string(new_pairs) + " + " +
                                 std::to_string(out.twin_updates));
    }
  } else {
    const ac_gcounter c = cell(nf, "rl_count0", 0);
    if (c.others != out.twin_updates)
      throw std::runtime_error(what + ": the counter merged " + std::to_string(c.others) + " of the " +
                               std::to_string(out.twin_updates) + " packets the second instance passed");
  }
  a_store.reset();
  return out;
}

json delay_bench(const std::vector<std::string>& kinds, int reps, double seconds) {
  const std::vector<std::optional<uint64_t>> delays = {std::nullopt, 0, 10'000, 50'000, 100'000};
  auto name = [](const std::optional<uint64_t>& d) {
    return d ? std::to_string(*d / 1000) + " ms" : std::string("none");
  };
  std::map<std::pair<std::string, size_t>, std::vector<DelayRun>> runs;
  std::printf("delay: the NF on CPU 1 (BPF_PROG_TEST_RUN, 10,000 repeats a call, 64 B inner UDP), its replicator on "
              "CPU 0\nexchanging with a second instance (20 packets/ms) across a link of the delay (none: no "
              "replication);\n%d interleaved repetitions of %.1f s\n", reps, seconds);
  for (int r = 0; r < reps; ++r)
    for (const std::string& k : kinds)
      for (size_t i = 0; i < delays.size(); ++i) runs[{k, i}].push_back(delay_run(k, delays[i], seconds));
  json out = json::array();
  std::printf("%-9s %-7s %29s %6s %13s %11s %22s\n", "nf", "delay", "Mpps min / median / max", "ratio",
              "per rep", "2nd updates", "records applied NF/2nd");
  for (const std::string& k : kinds) {
    std::vector<double> base;
    for (const DelayRun& d : runs[{k, 0}]) base.push_back(d.mpps);
    const double b = median(base);
    for (size_t i = 0; i < delays.size(); ++i) {
      std::vector<double> mpps, ratio, applied_nf, applied_twin, twin_updates;
      for (size_t r = 0; r < runs[{k, i}].size(); ++r) {
        const DelayRun& d = runs[{k, i}][r];
        mpps.push_back(d.mpps);
        ratio.push_back(d.mpps / base[r]);  // against the same repetition's run without replication
        applied_nf.push_back(static_cast<double>(d.applied_nf));
        applied_twin.push_back(static_cast<double>(d.applied_twin));
        twin_updates.push_back(static_cast<double>(d.twin_updates));
      }
      const double q = median(mpps) / b;
      std::printf("%-9s %-7s %7.2f / %7.2f / %7.2f %8.3f %6.3f..%5.3f %11.0f %11.0f / %8.0f\n", k.c_str(),
                  name(delays[i]).c_str(), *std::min_element(mpps.begin(), mpps.end()), median(mpps),
                  *std::max_element(mpps.begin(), mpps.end()), q, *std::min_element(ratio.begin(), ratio.end()),
                  *std::max_element(ratio.begin(), ratio.end()), median(twin_updates), median(applied_nf),
                  median(applied_twin));
      out.push_back({{"nf", k}, {"delay", name(delays[i])}, {"delay_ms", delays[i] ? json(*delays[i] / 1000) : json()},
                     {"mpps", {*std::min_element(mpps.begin(), mpps.end()), median(mpps),
                               *std::max_element(mpps.begin(), mpps.end())}},
                     {"ratio", q}, {"ratio_per_rep_min", *std::min_element(ratio.begin(), ratio.end())},
                     {"ratio_per_rep_max", *std::max_element(ratio.begin(), ratio.end())},
                     {"records_applied_nf", median(applied_nf)}, {"records_applied_twin", median(applied_twin)},
                     {"twin_updates", median(twin_updates)}});
    }
  }
  return out;
}

std::vector<size_t> sizes_of(const std::string& s) {
  std::vector<size_t> v;
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t e = s.find(',', pos);
    if (e == std::string::npos) e = s.size();
    size_t n = std::stoul(s.substr(pos, e - pos));
    if (n < 64 || n > 1500) throw std::runtime_error("--sizes: inner packets of 64..1500 bytes");
    v.push_back(n);
    pos = e + 1;
  }
  return v;
}

}  // namespace
}  // namespace anychain::bench

int main(int argc, char** argv) {
  po::options_description opts(
      "anychain-bench-nf-state: per-packet cost of the shared-state objects in the real NF programs\n"
      "(with the object against the same NF built without it). Run on a quiet machine:\n"
      "  chrt -f 50 taskset -c 1 anychain-bench-nf-state\nOptions");
  opts.add_options()("help,h", "this help")(
      "nfs", po::value<std::string>()->default_value("ratelimit,ids"), "ratelimit, ids (comma-separated)")(
      "sizes", po::value<std::string>()->default_value("64,1500"), "inner IPv4 packet sizes in bytes (64..1500)")(
      "reps", po::value<int>()->default_value(15), "interleaved repetitions")(
      "repeat", po::value<uint32_t>()->default_value(2'000'000), "packets per BPF_PROG_TEST_RUN")(
      "path", "measure on the packet's whole path (fast path, veth, the NF's XDP and back; see the top of "
              "bench/nf_state_bench.cc) instead of the NF alone")(
      "seconds", po::value<double>()->default_value(1.0), "--path: seconds per sample; --delay: per run")(
      "gen-cpu", po::value<int>()->default_value(0), "--path: the generator's CPU")(
      "router-cpu", po::value<int>()->default_value(1), "--path: the router's (and the NF's) CPU")(
      "delay", "the NF's throughput while its objects replicate across a link of 0, 10, 50 and 100 ms against "
               "none (the NF on CPU 1, replication on CPU 0; see the top of bench/nf_state_bench.cc); --seconds "
               "per run")(
      "json", "print the figures as JSON");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, opts), vm);
    po::notify(vm);
  } catch (const std::exception& e) {
    std::cerr << "anychain-bench-nf-state: " << e.what() << "\n" << opts;
    return 2;
  }
  if (vm.count("help")) {
    std::cout << opts;
    return 0;
  }
  try {
    const auto sizes = anychain::bench::sizes_of(vm["sizes"].as<std::string>());
    const std::string nfs = vm["nfs"].as<std::string>();
    const int reps = vm["reps"].as<int>();
    const uint32_t repeat = vm["repeat"].as<uint32_t>();
    if (reps < 1 || repeat < 1) throw std::runtime_error("--reps and --repeat: at least 1");
    json out;
    if (vm.count("delay")) {
      std::vector<std::string> kinds;
      for (const char* k : {"ratelimit", "ids"})
        if (nfs.find(k) != std::string::npos) kinds.push_back(k);
      const double secs = vm["seconds"].as<double>();
      if (kinds.empty() || secs <= 0) throw std::runtime_error("--delay: an NF and --seconds > 0");
      if (auto e = anychain::test::enter_sandbox(); !e.empty()) throw std::runtime_error(e);
      out["delay"] = anychain::bench::delay_bench(kinds, reps, secs);
      if (vm.count("json")) std::cout << out.dump(2) << "\n";
      return 0;
    }
    if (vm.count("path")) {
      if (auto e = anychain::test::enter_sandbox(); !e.empty()) throw std::runtime_error(e);
      const double secs = vm["seconds"].as<double>();
      const int gc = vm["gen-cpu"].as<int>(), rc = vm["router-cpu"].as<int>();
      if (nfs.find("ratelimit") != std::string::npos)
        out["ratelimit_path"] = anychain::bench::path_bench("ratelimit", NF_RATELIMIT_REAL, NF_RATELIMIT_PATH_ABLATED,
                                                            "nf_ratelimit", reps, secs, gc, rc);
      if (nfs.find("ids") != std::string::npos)
        out["ids_path"] =
            anychain::bench::path_bench("ids", NF_IDS_REAL, NF_IDS_PATH_ABLATED, "nf_ids", reps, secs, gc, rc);
      if (vm.count("json")) std::cout << out.dump(2) << "\n";
      return 0;
    }
    if (nfs.find("ratelimit") != std::string::npos)
      out["ratelimit"] = anychain::bench::bench("ratelimit", NF_RATELIMIT_OBJ, NF_RATELIMIT_ABLATED, "nf_ratelimit",
                                                sizes, reps, repeat);
    if (nfs.find("ids") != std::string::npos)
      out["ids"] = anychain::bench::bench("ids", NF_IDS_OBJ, NF_IDS_ABLATED, "nf_ids", sizes, reps, repeat);
    if (vm.count("json")) std::cout << out.dump(2) << "\n";
  } catch (const std::exception& e) {
    std::cerr << "anychain-bench-nf-state: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
