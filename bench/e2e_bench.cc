// anychain-bench-e2e: packets per second through real (veth) interfaces, end to end, for
// anychain's fast path and, on the same topology in the same run, a bare XDP redirect, Linux IP
// forwarding and Open vSwitch's userspace datapath. Method and results: docs/performance.md
// ("End to end").
//
// Topologies (bench/e2e_topo.h) live in network namespaces named act-<pid>-e2e-<node>, inside a
// private network and mount namespace (enter_sandbox): when this process ends, however it ends,
// the kernel removes them with every veth, XDP program and pinned map; a killed run's leftovers
// (namespace files, the work directory) are removed by the next run at start. SIGINT, SIGTERM
// and SIGHUP stop the run between two steps and clean up.
//
// The generator (bench/e2e.bpf.c, e2e_gen) runs in BPF_PROG_TEST_RUN with
// BPF_F_TEST_XDP_LIVE_FRAMES on the generator CPU: each frame is written from a template and
// redirected into g0, whose peer r-in is the first router's ingress. r-in's NAPI is threaded and
// its thread pinned to the router CPU: the router's XDP (or its stack, or OVS) runs there, and
// so does everything it sends on (a veth schedules its peer's NAPI on the sending CPU). The
// receiver counts with XDP and drops. Frames the router cannot take are dropped at r-in's ring
// (counted by the veth), so the received rate is what the router sustains.
//
// Over 500 lines: the run's whole life (sandbox, modes, measurement, report) is one sequence a
// reader follows top to bottom; the topologies are apart in e2e_topo.cc.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <xdp/libxdp.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <regex>
#include <sstream>
#include <thread>

#include "common/netns.h"
#include "common/options.h"
#include "common/packet.h"
#include "anychain/maps.h"
#include <arpa/inet.h>
#include "dataplane/reasons.h"
#include "e2e.skel.h"
#include "e2e_maps.h"
#include "e2e_ovs.h"
#include "e2e_topo.h"

namespace anychain::bench {
namespace {

namespace dp = anychain::dataplane;
namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// ---- stopping ----

std::atomic<bool> g_stop{false};
struct Interrupted : std::runtime_error {
  Interrupted() : std::runtime_error("interrupted") {}
};
void on_signal(int) { g_stop = true; }
void check_stop() {
  if (g_stop) throw Interrupted();
}
void nap(double seconds) {
  const auto end = Clock::now() + std::chrono::duration<double>(seconds);
  while (Clock::now() < end) {
    check_stop();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

// ---- options ----

struct Opts {
  std::vector<TopoSpec> topos;
  std::vector<Mode> modes;
  std::vector<int> sizes;
  std::vector<uint32_t> flows;
  int reps = 3;
  double duration = 2.0;
  double warmup = 0.5;
  int gen_cpu = 0;
  int router_cpu = -1;
  uint32_t flow_cache = AC_FLOW_CACHE_DEFAULT;
  std::string ovs_root;
  bool no_ovs = false;
  std::string json_path;
  bool check = false;
  bool prog_stats = false;
};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string x;
  while (std::getline(ss, x, ','))
    if (!x.empty()) out.push_back(x);
  return out;
}

// ---- counters ----

struct CpuTimes {
  std::vector<uint64_t> busy, total, steal, softirq;
};
CpuTimes cpu_times() {
  CpuTimes t;
  std::ifstream f("/proc/stat");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("cpu", 0) != 0 || line.size() < 4 || !isdigit(static_cast<unsigned char>(line[3]))) continue;
    std::istringstream is(line);
    std::string name;
    uint64_t user = 0, nice = 0, sys = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
    is >> name >> user >> nice >> sys >> idle >> iowait >> irq >> softirq >> steal;
    t.busy.push_back(user + nice + sys + irq + softirq);
    t.total.push_back(user + nice + sys + idle + iowait + irq + softirq + steal);
    t.steal.push_back(steal);
    t.softirq.push_back(softirq);
  }
  return t;
}

// utime + stime of a thread, in clock ticks
uint64_t thread_ticks(int tid) {
  std::ifstream f("/proc/" + std::to_string(tid) + "/stat");
  std::string s;
  std::getline(f, s);
  const auto p = s.rfind(')');
  if (p == std::string::npos) return 0;
  std::istringstream is(s.substr(p + 2));
  std::string x;
  uint64_t ut = 0, st = 0;
  for (int i = 3; i <= 15; ++i) {
    is >> x;
    if (i == 14) ut = std::stoull(x);
    if (i == 15) st = std::stoull(x);
  }
  return ut + st;
}

// veth losses of one interface: ring full on redirect (tx_queue_N_xdp_xmit_errors, shown on
// the sender), XDP_TX failures (rx_queue_N_xdp_tx_errors) and frames dropped on receive after
// a failed redirect or conversion (rx_queue_N_drops)
uint64_t veth_losses(const Iface& i) {
  static const std::regex want("^\\s*(tx_queue_\\d+_xdp_xmit_errors|rx_queue_\\d+_xdp_tx_errors|rx_queue_\\d+_drops):\\s*(\\d+)");
  const std::string out = test::sh_out("ip netns exec " + i.ns + " ethtool -S " + i.name + " 2>/dev/null");
  uint64_t sum = 0;
  std::istringstream is(out);
  std::string line;
  std::smatch m;
  while (std::getline(is, line))
    if (std::regex_search(line, m, want)) sum += std::stoull(m[2]);
  return sum;
}

struct ProgRun {
  uint64_t ns = 0, cnt = 0;
};
ProgRun prog_run(uint32_t id) {
  ProgRun r;
  const int fd = bpf_prog_get_fd_by_id(id);
  if (fd < 0) return r;
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0) r = {info.run_time_ns, info.run_cnt};
  close(fd);
  return r;
}

// Packets of a per-CPU counter array slot (values of `stride` bytes starting with a u64 packet
// count), per possible CPU.
std::vector<uint64_t> percpu_packets(int fd, uint32_t slot, size_t stride) {
  const int ncpu = libbpf_num_possible_cpus();
  std::vector<uint8_t> buf(stride * static_cast<size_t>(ncpu));
  std::vector<uint64_t> out(static_cast<size_t>(ncpu), 0);
  if (fd >= 0 && bpf_map_lookup_elem(fd, &slot, buf.data()) == 0)
    for (int c = 0; c < ncpu; ++c) std::memcpy(&out[static_cast<size_t>(c)], buf.data() + stride * c, 8);
  return out;
}

// everything read at one instant
struct Snap {
  Clock::time_point t;
  uint64_t gen = 0, rx = 0, fwd_pass = 0;
  std::vector<std::vector<ac_counter>> ac;  // per anychain router, by slot
  CpuTimes cpu;
  uint64_t router_ticks = 0;                // the router's tasks (Topo::router_tasks)
  std::map<uint32_t, ProgRun> progs;
  std::map<std::string, uint64_t> veth;     // "<node>/<if>" -> losses (only when asked)
  std::vector<uint64_t> rx_cpu;             // the receiver's packets per CPU
  std::vector<uint64_t> ac_cpu;             // anychain's verdicts (all routers) per CPU
};

// ---- the generator ----

// Ethernet + IPv4 + UDP from 198.18.0.2 to 198.19.0.2 (port 9), `size` bytes in all.
test::Bytes frame_of(const Topo& t, int size) {
  test::L4 l4;
  l4.proto = IPPROTO_UDP;
  l4.sport = 10000;
  l4.dport = 9;
  l4.payload = test::Bytes(static_cast<size_t>(size - E2E_HDR_LEN), 0);
  test::Bytes f = test::eth(t.router_in().mac, t.gen_if().mac, ETH_P_IP, {test::ipv4("198.18.0.2", "198.19.0.2", l4)});
  // no UDP checksum (allowed in IPv4): the generator changes the source port per packet
  f[40] = f[41] = 0;
  return f;
}

class Generator {
 public:
  Generator(e2e_bpf* skel, const Topo& t, int size, uint32_t flows, int cpu) : skel_(skel), cpu_(cpu) {
    frame_ = frame_of(t, size);
    e2e_gen_cfg c{};
    std::memcpy(c.hdr, frame_.data(), E2E_HDR_LEN);
    c.base_port = 10000;
    c.flows = flows;
    c.ifindex = static_cast<uint32_t>(t.gen_if().ifindex);
    const uint32_t zero = 0;
    if (bpf_map_update_elem(bpf_map__fd(skel_->maps.e2e_gen_cfg), &zero, &c, BPF_ANY))
      throw std::runtime_error("write the generator's configuration");
    ns_ = t.gen_if().ns;
    thread_ = std::thread([this] { loop(); });
  }
  ~Generator() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    if (!err_.empty()) throw std::runtime_error(std::exchange(err_, ""));
  }

 private:
  void loop() {
    try {
      pin_thread(0, cpu_);
      test::InNetns g(ns_);  // live frames are redirected within the caller's namespace
      LIBBPF_OPTS(bpf_test_run_opts, o);
      o.data_in = frame_.data();
      o.data_size_in = static_cast<uint32_t>(frame_.size());
      o.repeat = 1u << 18;  // about 20 to 50 ms per call: stops quickly
      o.flags = BPF_F_TEST_XDP_LIVE_FRAMES;
      o.batch_size = 64;
      const int fd = bpf_program__fd(skel_->progs.e2e_gen);
      while (!stop_ && !g_stop) {
        if (int err = bpf_prog_test_run_opts(fd, &o)) {
          err_ = "BPF_PROG_TEST_RUN (live frames): " + std::string(std::strerror(-err));
          return;
        }
      }
    } catch (const std::exception& e) {
      err_ = e.what();
    }
  }
  e2e_bpf* skel_;
  int cpu_;
  std::string ns_;
  test::Bytes frame_;
  std::atomic<bool> stop_{false};
  std::string err_;
  std::thread thread_;
};

// ---- one measurement ----

struct Sample {
  std::string topo, mode;
  int size = 0;
  uint32_t flows = 0;
  int rep = 0;
  double seconds = 0, rx_mpps = 0, gen_mpps = 0, router_busy = 0, router_steal = 0, gen_busy = 0;
  // the router CPU's time that was ours: the NAPI thread (with the softirq work it runs),
  // ksoftirqd of that CPU and OVS's daemon (on a shared machine other processes take the rest;
  // tick-sampled, so rough), and the received rate per second of it
  double router_share = 0, mpps_per_cpu = 0;
  std::map<std::string, uint64_t> reasons;  // anychain, in the window
  std::map<std::string, double> prog_ns;    // router programs, ns per run in the window
  // the whole run, generator start to drained
  uint64_t acc_gen = 0, acc_rx = 0, acc_ac_drop = 0, acc_ac_pass = 0, acc_fwd_pass = 0, acc_veth = 0;
  int64_t unaccounted = 0;
  std::map<std::string, uint64_t> losses;   // per interface
  std::string limit;
  // share of the receiver's packets and of anychain's verdicts counted on the router CPU
  double rx_on_router_cpu = 0, anychain_on_router_cpu = 0;
  json extra;
};

class Bench {
 public:
  explicit Bench(const Opts& o) : o_(o) {}

  Snap snap(Topo& t, BenchObj& gen, bool with_veth) {
    Snap s;
    s.t = Clock::now();
    s.gen = gen.packets();
    s.rx = t.receiver().packets();
    s.fwd_pass = t.fwd_passes();
    s.rx_cpu = percpu_packets(bpf_map__fd(t.receiver().skel()->maps.e2e_counts), 0, sizeof(e2e_count));
    s.ac_cpu.assign(static_cast<size_t>(libbpf_num_possible_cpus()), 0);
    if (t.mode() == Mode::Anychain)
      for (const auto& r : t.anychain())
        for (const auto& reason : dp::stat_reasons()) {
          if (reason.kind == dp::StatKind::Note) continue;
          auto v = percpu_packets(r.dp->map_fd("ac_stats"), reason.slot, sizeof(ac_counter));
          for (size_t c = 0; c < v.size(); ++c) s.ac_cpu[c] += v[c];
        }
    s.cpu = cpu_times();
    for (int tid : t.router_tasks()) s.router_ticks += thread_ticks(tid);
    if (t.mode() == Mode::Anychain)
      for (const auto& r : t.anychain()) {
        auto st = r.dp->stats();
        if (!st) throw std::runtime_error("anychain stats: " + st.error().str());
        s.ac.push_back(*st);
      }
    if (o_.prog_stats)
      for (uint32_t id : t.router_prog_ids()) s.progs[id] = prog_run(id);
    if (with_veth) {
      for (const auto& i : t.all_ifaces()) s.veth[i.node + "/" + i.name] = veth_losses(i);
    }
    return s;
  }

  Sample measure(Topo& t, BenchObj& gen, int size, uint32_t flows, int rep) {
    Sample s;
    s.topo = t.spec().name();
    s.mode = mode_name(t.mode());
    s.size = size;
    s.flows = flows;
    s.rep = rep;
    const Snap a = snap(t, gen, true);
    Generator g(gen.skel(), t, size, flows, o_.gen_cpu);
    Snap w0, w1;
    try {
      // warm-up: the given time, and at least two rounds over the flows at the receiver (a
      // slow chain with many flows would otherwise measure first packets), at most 10 s
      const uint64_t rx0 = t.receiver().packets();
      nap(o_.warmup);
      for (int i = 0; i < 1000 && t.receiver().packets() - rx0 < 2ull * flows; ++i) nap(0.01);
      w0 = snap(t, gen, false);
      nap(o_.duration);
      w1 = snap(t, gen, false);
    } catch (...) {
      try {
        g.stop();
      } catch (...) {
      }
      throw;
    }
    g.stop();
    // drain: wait until the receiver's count stops moving
    uint64_t last = t.receiver().packets();
    for (int i = 0; i < 50; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      const uint64_t now = t.receiver().packets();
      if (now == last) break;
      last = now;
    }
    if (std::getenv("ANYCHAIN_BENCH_VERBOSE")) std::cerr << t.ovs_flows();
    if (std::getenv("ANYCHAIN_BENCH_VERBOSE"))
      for (const auto& i : t.all_ifaces())
        std::cerr << i.node << "/" << i.name << ":\n"
                  << test::sh_out("ip netns exec " + i.ns + " ethtool -S " + i.name + " | grep -v ': 0$'") << std::flush;

    // accounting over the whole run, generator start to drained
    auto account = [&](const Snap& b) {
      s.acc_gen = b.gen - a.gen;
      s.acc_rx = b.rx - a.rx;
      s.acc_ac_drop = s.acc_ac_pass = s.acc_veth = 0;
      s.losses.clear();
      for (size_t r = 0; r < b.ac.size(); ++r)
        for (const auto& reason : dp::stat_reasons()) {
          const uint64_t d = b.ac[r][reason.slot].packets - a.ac[r][reason.slot].packets;
          if (reason.kind == dp::StatKind::Drop) s.acc_ac_drop += d;
          if (reason.kind == dp::StatKind::Verdict && std::string(reason.name).rfind("pass_", 0) == 0)
            s.acc_ac_pass += d;
        }
      s.acc_fwd_pass = b.fwd_pass - a.fwd_pass;
      for (const auto& [k, v] : b.veth) {
        const uint64_t d = v - a.veth.at(k);
        if (d) s.losses[k] = d;
        s.acc_veth += d;
      }
      s.unaccounted = static_cast<int64_t>(s.acc_gen) -
                      static_cast<int64_t>(s.acc_rx + s.acc_ac_drop + s.acc_ac_pass + s.acc_fwd_pass + s.acc_veth);
    };
    // Frames can still sit in a veth ring whose NAPI thread another process keeps off the CPU
    // (up to a ring, 256 frames): in the XDP modes, where everything is counted, wait for them
    // (at most about 3 s) so that they are not counted in the next sample.
    const bool xdp = t.mode() == Mode::Anychain || t.mode() == Mode::Redirect || t.mode() == Mode::Receiver;
    for (int i = 0;; ++i) {
      const Snap b = snap(t, gen, true);
      account(b);
      if (!xdp || s.unaccounted == 0 || i >= 30) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }

    s.seconds = std::chrono::duration<double>(w1.t - w0.t).count();
    s.rx_mpps = static_cast<double>(w1.rx - w0.rx) / s.seconds / 1e6;
    s.gen_mpps = static_cast<double>(w1.gen - w0.gen) / s.seconds / 1e6;
    auto share = [&](int cpu, auto field) {
      const double tot = static_cast<double>(w1.cpu.total.at(cpu) - w0.cpu.total.at(cpu));
      const double x = static_cast<double>((w1.cpu.*field).at(cpu) - (w0.cpu.*field).at(cpu));
      return tot > 0 ? x / tot : 0.0;
    };
    s.router_busy = share(router_cpu_, &CpuTimes::busy);
    s.router_steal = share(router_cpu_, &CpuTimes::steal);
    s.gen_busy = share(o_.gen_cpu, &CpuTimes::busy);
    s.router_share = static_cast<double>(w1.router_ticks - w0.router_ticks) /
                     static_cast<double>(sysconf(_SC_CLK_TCK)) / s.seconds;
    s.mpps_per_cpu = s.router_share > 0 ? s.rx_mpps / std::min(1.0, s.router_share) : 0;
    for (size_t r = 0; r < w1.ac.size(); ++r)
      for (const auto& reason : dp::stat_reasons()) {
        const uint64_t d = w1.ac[r][reason.slot].packets - w0.ac[r][reason.slot].packets;
        if (d) s.reasons[std::string(w1.ac.size() > 1 ? "r" + std::to_string(r + 1) + "." : "") + reason.name] += d;
      }
    for (const auto& [id, p1] : w1.progs) {
      const auto it = w0.progs.find(id);
      if (it == w0.progs.end() || p1.cnt == it->second.cnt) continue;
      s.prog_ns[t.prog_label(id)] =
          static_cast<double>(p1.ns - it->second.ns) / static_cast<double>(p1.cnt - it->second.cnt);
    }

    auto on_cpu = [&](const std::vector<uint64_t>& a0, const std::vector<uint64_t>& a1) {
      uint64_t all = 0, mine = 0;
      for (size_t c = 0; c < a1.size() && c < a0.size(); ++c) {
        all += a1[c] - a0[c];
        if (static_cast<int>(c) == router_cpu_) mine += a1[c] - a0[c];
      }
      return all ? static_cast<double>(mine) / static_cast<double>(all) : 0.0;
    };
    s.rx_on_router_cpu = on_cpu(w0.rx_cpu, w1.rx_cpu);
    s.anychain_on_router_cpu = on_cpu(w0.ac_cpu, w1.ac_cpu);

    // what limited the figure
    std::string where;
    uint64_t most = 0;
    for (const auto& [k, v] : s.losses)
      if (v > most) most = v, where = k;
    char buf[160];
    if (s.rx_mpps >= 0.97 * s.gen_mpps)
      s.limit = "generator";
    else if (s.router_busy + s.router_steal >= 0.90)
      s.limit = s.router_share >= 0.9 ? "CPU" : "CPU (shared)";
    else if (!where.empty())
      std::snprintf(buf, sizeof buf, "ring %s (CPU %.0f%%)", where.c_str(), 100 * s.router_busy), s.limit = buf;
    else
      std::snprintf(buf, sizeof buf, "stack/ovs (CPU %.0f%%)", 100 * s.router_busy), s.limit = buf;
    if (t.mode() == Mode::Anychain && flows > 1) {
      s.extra["flow_cache"] = flow_cache_summary(t);
      s.extra["conflicts"] = conflict_prediction(t, flows);
    }
    return s;
  }

  // Where the flows' keys fall in the flow cache: the generator's flows are known, so their
  // hashes (the classifier's, carried in the NSH to every later hop) and sets can be computed
  // exactly. A set holding more than AC_FLOW_WAYS of the keys that a round robin over the flows
  // visits keeps missing under LRU (each key is evicted before it comes back), so
  // keys_in_overfull_sets / keys is the conflict-miss rate to expect per lookup when the router
  // sees the round robin as sent; when it sees a random subset of it (the generator out-runs it
  // and the veth drops whole batches), a set of n > ways keys misses about (n - ways) / n of its
  // lookups, so excess_keys / keys is the rate to expect.
  json conflict_prediction(Topo& t, uint32_t flows) {
    json j = json::array();
    const uint32_t sets = o_.flow_cache / AC_FLOW_WAYS;
    auto keys = t.flow_keys();
    for (size_t r = 0; r < keys.size(); ++r) {
      std::map<uint32_t, uint32_t> per_set;
      for (uint32_t f = 0; f < flows; ++f) {
        test::L4 l4;
        l4.proto = IPPROTO_UDP;
        l4.sport = static_cast<uint16_t>(10000 + f);
        l4.dport = 9;
        const uint32_t hash = test::flow_hash("198.18.0.2", "198.19.0.2", l4);
        for (const auto& [spi, si] : keys[r]) per_set[ac_flow_set_of(htonl(AC_SPI_SI(spi, si)), hash, sets - 1)]++;
      }
      uint64_t total = 0, overfull = 0, excess = 0, max = 0;
      for (const auto& [_, n] : per_set) {
        total += n;
        if (n > AC_FLOW_WAYS) overfull += n, excess += n - AC_FLOW_WAYS;
        max = std::max<uint64_t>(max, n);
      }
      j.push_back({{"router", r + 1}, {"keys", total}, {"sets", sets}, {"sets_used", per_set.size()},
                   {"max_keys_in_a_set", max}, {"keys_in_overfull_sets", overfull},
                   {"excess_keys", excess},
                   {"predicted_miss_rate_cyclic", total ? static_cast<double>(overfull) / static_cast<double>(total) : 0},
                   {"predicted_miss_rate_random", total ? static_cast<double>(excess) / static_cast<double>(total) : 0}});
    }
    return j;
  }

  json flow_cache_summary(Topo& t) {
    json j = json::array();
    for (const auto& r : t.anychain()) {
      auto f = r.dp->flows();
      if (!f) continue;
      std::map<uint32_t, int> per_set;
      for (const auto& e : *f) per_set[e.set]++;
      int full = 0;
      for (const auto& [_, n] : per_set) full += n >= AC_FLOW_WAYS;
      j.push_back({{"router", r.ns}, {"entries", f->size()}, {"sets_used", per_set.size()},
                   {"sets_full", full}, {"sets", r.dp->flow_sets()}});
    }
    return j;
  }

  void set_router_cpu(int c) { router_cpu_ = c; }

 private:
  const Opts& o_;
  int router_cpu_ = 1;
};

// ---- statistics and output ----

struct Stat {
  double min = 0, med = 0, max = 0;
};
Stat stat_of(std::vector<double> v) {
  if (v.empty()) return {};
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  const double med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  return {v.front(), med, v.back()};
}

std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "?";
}

std::string loadavg() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a + " " + b + " " + c;
}

int run(const Opts& o) {
  if (geteuid() != 0) {
    std::cerr << "anychain-bench-e2e: needs root (network namespaces, XDP)\n";
    return 1;
  }
  const int ncpu = static_cast<int>(std::thread::hardware_concurrency());
  Opts opts = o;
  if (opts.router_cpu < 0) opts.router_cpu = ncpu - 1;
  if (opts.router_cpu == opts.gen_cpu || opts.router_cpu >= ncpu || opts.gen_cpu >= ncpu) {
    std::cerr << "anychain-bench-e2e: the generator and the router need two different CPUs (have " << ncpu << ")\n";
    return 1;
  }
  // leftovers of killed runs: work directories of processes that are gone (their namespaces
  // went with their private mount namespace; the namespace files are reaped by the first Netns)
  for (const auto& e : fs::directory_iterator("/tmp")) {
    const std::string n = e.path().filename().string();
    const std::string pre = "anychain-bench-e2e.";
    if (n.rfind(pre, 0) != 0) continue;
    const long pid = std::strtol(n.c_str() + pre.size(), nullptr, 10);
    if (pid > 0 && kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) fs::remove_all(e.path());
  }
  const std::string work = "/tmp/anychain-bench-e2e." + std::to_string(getpid());
  struct WorkDir {
    std::string p;
    ~WorkDir() {
      std::error_code ec;
      fs::remove_all(p, ec);
    }
  } workdir{work};
  fs::create_directories(work);

  // Open vSwitch, if asked for and obtainable (fetched before entering the sandbox, which has
  // no network)
  std::string ovs_root, ovs_note;
  const bool want_ovs = std::any_of(opts.modes.begin(), opts.modes.end(),
                                    [](Mode m) { return m == Mode::Ovs || m == Mode::OvsAfxdp; });
  if (want_ovs && !opts.no_ovs) {
    if (!opts.ovs_root.empty()) {
      if (ovs_root_ok(opts.ovs_root))
        ovs_root = opts.ovs_root;
      else
        ovs_note = "--ovs-root " + opts.ovs_root + " holds no unpacked Open vSwitch";
    } else {
      auto r = ovs_fetch(work + "/ovs-pkg");
      if (r)
        ovs_root = *r;
      else
        ovs_note = r.error();
    }
    if (ovs_root.empty()) std::cout << "Open vSwitch not measured: " << ovs_note << "\n";
  }
  if (auto e = test::enter_sandbox(); !e.empty()) {
    std::cerr << "anychain-bench-e2e: " << e << "\n";
    return 1;
  }
  // this thread (setup, sampling) on the generator's CPU, away from the router's
  pin_thread(0, opts.gen_cpu);

  std::vector<Mode> modes;
  for (Mode m : opts.modes)
    if ((m != Mode::Ovs && m != Mode::OvsAfxdp) || !ovs_root.empty()) modes.push_back(m);

  int stats_fd = -1;
  if (opts.prog_stats) {
    stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);  // off again when this fd closes (exit)
    if (stats_fd < 0) std::cerr << "note: BPF run-time statistics unavailable\n";
  }

  json out;
  utsname u{};
  uname(&u);
  out["machine"] = {{"cpu", cpu_model()}, {"cpus", ncpu}, {"kernel", u.release},
                    {"load_at_start", loadavg()}};
  out["config"] = {{"reps", opts.reps}, {"duration_s", opts.duration}, {"warmup_s", opts.warmup},
                   {"gen_cpu", opts.gen_cpu}, {"router_cpu", opts.router_cpu}, {"sizes", opts.sizes},
                   {"flows", opts.flows}, {"flow_cache_entries", opts.flow_cache}};
  if (!ovs_note.empty()) out["ovs"] = ovs_note;
  std::cout << "machine: " << cpu_model() << ", " << ncpu << " CPUs, kernel " << u.release << "; load "
            << loadavg() << "\n";
  std::cout << "generator on CPU " << opts.gen_cpu << ", router on CPU " << opts.router_cpu << "; " << opts.reps
            << " repetitions of " << opts.duration << " s (after " << opts.warmup << " s warm-up)\n";

  Bench bench(opts);
  bench.set_router_cpu(opts.router_cpu);
  std::vector<Sample> samples;
  bool failed = false;
  for (const auto& spec : opts.topos) {
    check_stop();
    Topo topo(spec, opts.router_cpu, opts.flow_cache);
    topo.set_ovs_root(ovs_root, work + "/ovs-" + spec.name());
    BenchObj gen(topo.gen_if().ns, false);
    std::vector<Mode> tmodes;
    if (spec.kind == Kind::GenOnly)
      tmodes = {Mode::Receiver};
    else
      for (Mode m : modes)
        if (topo.supports(m)) tmodes.push_back(m);
    std::cout << "\n" << spec.name() << ": " << std::flush;
    for (int rep = 1; rep <= opts.reps; ++rep)
      for (Mode m : tmodes) {
        check_stop();
        try {
          topo.set_mode(m);
        } catch (const Interrupted&) {
          throw;
        } catch (const std::exception& e) {
          std::cout << "\n  " << mode_name(m) << " could not be set up: " << e.what() << "\n" << std::flush;
          out["errors"].push_back(spec.name() + " " + mode_name(m) + ": " + e.what());
          continue;
        }
        for (int size : opts.sizes)
          for (uint32_t flows : opts.flows) {
            Sample s = bench.measure(topo, gen, size, flows, rep);
            std::cout << "." << std::flush;
            if (opts.check) {
              const bool xdp = m == Mode::Anychain || m == Mode::Redirect || m == Mode::Receiver;
              std::string why;
              if (s.acc_rx == 0) why = "the receiver counted nothing";
              if (xdp && s.unaccounted != 0)
                why = "generated " + std::to_string(s.acc_gen) + " != received " + std::to_string(s.acc_rx) +
                      " + anychain drops " + std::to_string(s.acc_ac_drop) + " + passes " +
                      std::to_string(s.acc_ac_pass + s.acc_fwd_pass) + " + veth losses " + std::to_string(s.acc_veth);
              if (m == Mode::Anychain && (s.acc_ac_drop || s.acc_ac_pass))
                why = "anychain dropped " + std::to_string(s.acc_ac_drop) + " and passed " +
                      std::to_string(s.acc_ac_pass) + " packets";
              if (!why.empty()) {
                failed = true;
                std::cout << "\nCHECK FAILED " << s.topo << " " << s.mode << " " << size << " B " << flows
                          << " flows: " << why << "\n";
              }
            }
            samples.push_back(std::move(s));
          }
      }
  }
  std::cout << "\n";

  // ---- report ----
  auto key = [](const Sample& s) {
    return std::make_tuple(s.topo, s.size, s.flows, s.mode);
  };
  std::map<std::tuple<std::string, int, uint32_t, std::string>, std::vector<const Sample*>> groups;
  std::vector<std::tuple<std::string, int, uint32_t, std::string>> order;
  for (const auto& s : samples) {
    auto k = key(s);
    if (!groups.count(k)) order.push_back(k);
    groups[k].push_back(&s);
  }
  auto med_of = [&](const std::string& topo, int size, uint32_t flows, const std::string& mode) -> double {
    auto it = groups.find({topo, size, flows, mode});
    if (it == groups.end()) return 0;
    std::vector<double> v;
    for (auto* s : it->second) v.push_back(s->rx_mpps);
    return stat_of(v).med;
  };
  auto percpu_of = [&](const std::string& topo, int size, uint32_t flows, const std::string& mode) -> double {
    auto it = groups.find({topo, size, flows, mode});
    if (it == groups.end()) return 0;
    std::vector<double> v;
    for (auto* s : it->second) v.push_back(s->mpps_per_cpu);
    return stat_of(v).med;
  };
  std::printf("\n%-9s %4s %5s %-9s %6s %6s %6s %7s %5s %8s %-14s %8s %8s %8s %8s\n", "topology", "size", "flows",
              "mode", "Mpps", "min", "max", "offered", "share", "Mpps/CPU", "limit", "vs redir", "vs linux",
              "vs ovs", "vs afxdp");
  json summary = json::array();
  for (const auto& k : order) {
    const auto& [topo, size, flows, mode] = k;
    const auto& v = groups[k];
    std::vector<double> rx, gen, busy, sharev, percpu;
    std::map<std::string, int> limits;
    for (auto* s : v) {
      rx.push_back(s->rx_mpps), gen.push_back(s->gen_mpps), busy.push_back(s->router_busy);
      sharev.push_back(s->router_share), percpu.push_back(s->mpps_per_cpu), limits[s->limit]++;
    }
    const Stat st = stat_of(rx);
    std::string limit;
    int best = 0;
    for (const auto& [l, n] : limits)
      if (n > best) best = n, limit = l;
    json row = {{"topology", topo}, {"size", size}, {"flows", flows}, {"mode", mode}, {"mpps_min", st.min},
                {"mpps_median", st.med}, {"mpps_max", st.max}, {"offered_mpps_median", stat_of(gen).med},
                {"router_cpu_busy_median", stat_of(busy).med}, {"router_share_median", stat_of(sharev).med},
                {"mpps_per_router_cpu_median", stat_of(percpu).med}, {"limit", limit}, {"reps", v.size()}};
    auto ratio = [&](const std::string& ref) -> std::string {
      const double r = med_of(topo, size, flows, ref);
      if (mode != "anychain" || r <= 0) return "-";
      row["vs_" + ref] = st.med / r;
      if (const double rc = percpu_of(topo, size, flows, ref); rc > 0)
        row["vs_" + ref + "_per_cpu"] = stat_of(percpu).med / rc;
      char b[32];
      std::snprintf(b, sizeof b, "%.2fx", st.med / r);
      return b;
    };
    const std::string r1 = ratio("redirect"), r2 = ratio("linux"), r3 = ratio("ovs"), r4 = ratio("ovs-afxdp");
    std::printf("%-9s %4d %5u %-9s %6.3f %6.3f %6.3f %7.2f %4.0f%% %8.3f %-14s %8s %8s %8s %8s\n", topo.c_str(), size,
                flows, mode.c_str(), st.med, st.min, st.max, stat_of(gen).med, 100 * stat_of(sharev).med,
                stat_of(percpu).med, limit.c_str(), r1.c_str(), r2.c_str(), r3.c_str(), r4.c_str());
    summary.push_back(row);
  }
  // anychain's counters per packet (medians of the window deltas), for the diagnosis
  bool header = false;
  for (const auto& k : order) {
    const auto& [topo, size, flows, mode] = k;
    if (mode != "anychain") continue;
    const auto& v = groups[k];
    std::map<std::string, std::vector<double>> per;
    std::map<std::string, std::vector<double>> progs;
    for (auto* s : v) {
      const double rxp = static_cast<double>(s->rx_mpps * s->seconds * 1e6);
      for (const auto& [n, c] : s->reasons) per[n].push_back(rxp > 0 ? static_cast<double>(c) / rxp : 0);
      for (const auto& [n, ns] : s->prog_ns) progs[n].push_back(ns);
    }
    if (!header) {
      std::printf("\nanychain counters per received packet (median over repetitions)%s:\n",
                  opts.prog_stats ? " and router programs' ns per run (BPF run-time statistics)" : "");
      header = true;
    }
    std::printf("%-9s %5d %6u ", topo.c_str(), size, flows);
    for (const auto& [n, x] : per) {
      if (n.find("cache") == std::string::npos && n.find("affinity") == std::string::npos &&
          n.find("classified") == std::string::npos)
        continue;
      std::printf(" %s=%.3f", n.c_str(), stat_of(x).med);
    }
    for (const auto& [n, x] : progs) std::printf(" %s=%.0fns", n.c_str(), stat_of(x).med);
    if (!v.empty() && v.front()->extra.contains("conflicts")) {
      std::printf("  predicted conflict misses per lookup (cyclic/random):");
      for (const auto& c : v.front()->extra["conflicts"])
        std::printf(" r%d=%.4f/%.4f", c["router"].get<int>(), c["predicted_miss_rate_cyclic"].get<double>(),
                    c["predicted_miss_rate_random"].get<double>());
    }
    std::printf("\n");
  }

  json jsamples = json::array();
  for (const auto& s : samples)
    jsamples.push_back({{"topology", s.topo}, {"mode", s.mode}, {"size", s.size}, {"flows", s.flows},
                        {"rep", s.rep}, {"seconds", s.seconds}, {"mpps", s.rx_mpps}, {"offered_mpps", s.gen_mpps},
                        {"router_cpu_busy", s.router_busy}, {"router_cpu_steal", s.router_steal},
                        {"router_share", s.router_share}, {"mpps_per_router_cpu", s.mpps_per_cpu},
                        {"gen_cpu_busy", s.gen_busy}, {"limit", s.limit},
                        {"received_on_router_cpu", s.rx_on_router_cpu},
                        {"anychain_verdicts_on_router_cpu", s.anychain_on_router_cpu}, {"anychain_reasons", s.reasons},
                        {"prog_ns_per_run", s.prog_ns},
                        {"accounting",
                         {{"generated", s.acc_gen}, {"received", s.acc_rx}, {"anychain_drops", s.acc_ac_drop},
                          {"anychain_passes", s.acc_ac_pass}, {"veth_losses", s.acc_veth},
                          {"losses_by_interface", s.losses}, {"unaccounted", s.unaccounted}}},
                        {"extra", s.extra}});
  out["samples"] = jsamples;
  out["summary"] = summary;
  out["machine"]["load_at_end"] = loadavg();
  std::cout << "\nload at end: " << loadavg() << "\n";
  if (!opts.json_path.empty()) {
    std::ofstream f(opts.json_path);
    f << out.dump(2) << "\n";
  }
  if (stats_fd >= 0) close(stats_fd);
  if (opts.check) std::cout << (failed ? "accounting check FAILED\n" : "accounting check passed\n");
  return failed ? 1 : 0;
}

}  // namespace
}  // namespace anychain::bench

int main(int argc, char** argv) {
  using namespace anychain::bench;
  // libbpf's and libxdp's notes (unknown ELF sections, the dispatcher fallback on kernels that
  // refuse freplace) would drown the table; errors still reach us through return values
  libbpf_set_print([](libbpf_print_level l, const char* f, va_list a) {
    return l == LIBBPF_WARN && std::getenv("ANYCHAIN_BENCH_VERBOSE") ? std::vfprintf(stderr, f, a) : 0;
  });
  libxdp_set_print([](libxdp_print_level l, const char* f, va_list a) {
    return l == LIBXDP_WARN && std::getenv("ANYCHAIN_BENCH_VERBOSE") ? std::vfprintf(stderr, f, a) : 0;
  });
  namespace po = boost::program_options;
  std::string topos, modes, sizes, flows;
  Opts o;
  po::options_description desc(
      "anychain-bench-e2e: packets per second end to end through veth topologies in network namespaces,\n"
      "anychain beside a bare XDP redirect, Linux forwarding and Open vSwitch (docs/performance.md).\n"
      "Needs root; leaves nothing behind. Options");
  desc.add_options()("help,h", "this help")(
      "topos", po::value(&topos)->default_value("gen,push,proxy,gpe,chain-1,chain-2,chain-5,chain-10"),
      "topologies: gen (the generator into a dropping receiver), push, proxy, gpe, chain-N (N 1..10)")(
      "modes", po::value(&modes)->default_value("anychain,redirect,linux,ovs,ovs-afxdp"),
      "what runs on the routers: anychain, redirect (bare XDP redirect), linux (IP forwarding), ovs "
      "(userspace datapath, AF_PACKET ports), ovs-afxdp (AF_XDP ports, PMD thread)")(
      "sizes", po::value(&sizes)->default_value("64,512"), "frame sizes in bytes (Ethernet header included, no FCS)")(
      "flows", po::value(&flows)->default_value("1,10000"), "numbers of flows (UDP source ports, round robin)")(
      "reps", po::value(&o.reps)->default_value(3), "repetitions, interleaved over the modes")(
      "duration", po::value(&o.duration)->default_value(2.0), "seconds measured per sample")(
      "warmup", po::value(&o.warmup)->default_value(0.5), "seconds of traffic before each measurement (and at least two rounds over the flows)")(
      "gen-cpu", po::value(&o.gen_cpu)->default_value(0), "CPU of the generator")(
      "router-cpu", po::value(&o.router_cpu)->default_value(-1), "CPU of the routers (default: the last)")(
      "flow-cache", po::value(&o.flow_cache)->default_value(AC_FLOW_CACHE_DEFAULT),
      "anychain's flow cache entries per CPU (power of two)")(
      "ovs-root", po::value(&o.ovs_root), "an unpacked Open vSwitch package tree (default: apt-get download)")(
      "no-ovs", po::bool_switch(&o.no_ovs), "skip Open vSwitch")(
      "json", po::value(&o.json_path), "write every sample and the summary as JSON to this file")(
      "check", po::bool_switch(&o.check),
      "fail unless every generated packet is accounted for (XDP modes) and anychain dropped nothing")(
      "prog-stats", po::bool_switch(&o.prog_stats),
      "enable BPF run-time statistics (ns per run of the router programs; adds their own cost)");
  po::variables_map vm;
  if (auto rc = anychain::parse_command_line(argc, argv, desc, vm, "anychain-bench-e2e")) return *rc;
  auto bad = [&](const std::string& what) {
    std::cerr << "anychain-bench-e2e: " << what << "\n";
    return 2;
  };
  for (const auto& t : split(topos)) {
    auto s = parse_topo(t);
    if (!s) return bad("unknown topology '" + t + "' (gen, push, proxy, gpe, chain-1 .. chain-10)");
    o.topos.push_back(*s);
  }
  for (const auto& m : split(modes)) {
    auto x = parse_mode(m);
    if (!x || *x == Mode::Receiver) return bad("unknown mode '" + m + "'");
    o.modes.push_back(*x);
  }
  try {
    for (const auto& s : split(sizes)) {
      const int n = std::stoi(s);
      if (n < 64 || n > 1514) return bad("frame size " + s + " outside 64..1514");
      o.sizes.push_back(n);
    }
    for (const auto& s : split(flows)) {
      const long n = std::stol(s);
      if (n < 1 || n > 50000) return bad("flows " + s + " outside 1..50000");
      o.flows.push_back(static_cast<uint32_t>(n));
    }
  } catch (const std::exception&) {
    return bad("sizes and flows are comma-separated numbers");
  }
  if (o.reps < 1 || o.duration <= 0 || o.warmup < 0) return bad("--reps >= 1, --duration > 0, --warmup >= 0");
  if (o.flow_cache < AC_FLOW_CACHE_MIN || (o.flow_cache & (o.flow_cache - 1)))
    return bad("--flow-cache must be a power of two >= " + std::to_string(AC_FLOW_CACHE_MIN));

  struct sigaction sa{};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaction(sig, &sa, nullptr);
  try {
    return run(o);
  } catch (const Interrupted&) {
    std::cerr << "\nanychain-bench-e2e: interrupted, cleaned up\n";
    return 130;
  } catch (const std::exception& e) {
    std::cerr << "\nanychain-bench-e2e: " << e.what() << "\n";
    return 1;
  }
}
