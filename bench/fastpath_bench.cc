// anychain-bench-fastpath: ns/packet of every fast-path path through BPF_PROG_TEST_RUN, beside
// the empty XDP program (bpf/xdp_pass.bpf.c) measured in the same run. Method: docs/performance.md.
//
// Why not simply one call with a large repeat count per path: in non-live BPF_PROG_TEST_RUN the
// kernel runs the program `repeat` times on the SAME buffer without restoring data pointers or
// bytes (net/bpf/test_run.c, bpf_test_run()), so a path that pushes/pops headers, decrements a
// TTL or rewrites the frame sees its own output from the second iteration on. For most of our
// paths that output is a different path (classify -> NSH forward, encap -> pass, ...). So:
//   * single-run phase (every path): many calls with repeat = 1, each on a fresh copy of the
//     fixture frame; the kernel's own per-call duration (ns, taken around the one run) is
//     averaged. That duration includes a fixed harness overhead (timer reads, bh disable/enable)
//     that is the same for every program, so it is removed by subtracting the empty program's
//     single-run duration, measured interleaved with the paths, and adding back the empty
//     program's per-iteration cost in the hot loop below (its output is its input):
//        ns(path) = single(path) - single(empty) + hot(empty);  ratio = ns(path) / hot(empty)
//   * hot-loop phase (paths whose output is again a valid input of the same path, for at least
//     kHotHi iterations: the malformed drop, pass-not-ours and the empty program; since the
//     fast path acts only on frames addressed to the interface's own MAC, a forwarded frame,
//     addressed to its next hop, is no longer one, so the forwarding paths are measured by the
//     restored loop only): calls with repeat
//     kHotHi and kHotLo alternate; (t_hi - t_lo) / (kHotHi - kHotLo), a 10 %-trimmed mean over
//     the pairs, cancels the per-call syscall cost. (The wall-clock time of one huge call is not
//     used: on shared cores it includes time the CPU ran something else.) The kernel's own
//     figure for the empty program with repeat 10M is printed as a cross-check (integer ns).
//   * restored loop (every path without per-call state to put back): the same hot loop with
//     bench/fastpath_loop.bpf.c, the fast path wrapped so that the frame is restored after every
//     run (so a path that rewrites, pushes or pops headers takes the same path on every
//     iteration), against the same wrapper around the empty program on the same frame:
//        loop ns(path) = loop(path) - loop(empty wrapper, same frame) + hot(empty)
//     Every call's output frame must equal its input (the restoration is checked, not assumed).
// Every path's reason counters are checked: each measured run must add exactly the expected
// counts (e.g. cache_hit + fwd_local_nsh) and no other reason may move; every call's verdict is
// checked too. A mismatch aborts the benchmark.
//
// Over 500 lines: one fixture frame, verdict and reason counts per fast-path path, written out so
// each path's figure can be traced to its frame.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_ether.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <sched.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "common/fixture_node.h"
#include "common/netns.h"
#include "common/packet.h"
#include "dataplane/dataplane.h"
#include "fastpath_loop.skel.h"
#include "xdp_pass.skel.h"

namespace anychain::bench {
namespace {

using test::Bytes;
using test::Mac;
namespace dp = anychain::dataplane;

// ---- the node: tests/common/fixture_node.h, plus a classify -> remote chain ----
using namespace test;  // the fixture node's MACs, addresses, services and instances

constexpr uint32_t kHotHi = 62;  // NSH TTL 63 allows 62 forwarding hops on the same buffer
constexpr uint32_t kHotLo = 2;
constexpr uint32_t kLongRepeat = 1'000'000;  // restored loop cross-check: one call, kernel's timer

uint32_t ifindex(const std::string& name) { return if_nametoindex(name.c_str()); }

template <class T>
T ok(std::expected<T, Error> r, const char* what) {
  if (!r) throw std::runtime_error(std::string(what) + ": " + r.error().str());
  if constexpr (!std::is_void_v<T>) return std::move(*r);
}

std::vector<dp::PolicyRule> bench_rules() {
  std::vector<dp::PolicyRule> rules(4);
  rules[0].dst = *dp::parse_prefix("203.0.113.128/25");  // TCP/80 -> chain 200 (proxied VNF)
  rules[0].proto = IPPROTO_TCP;
  rules[0].dport_lo = rules[0].dport_hi = 80;
  rules[0].spi = 200;
  rules[1].dst = *dp::parse_prefix("203.0.113.0/24");  // MD1 -> chain 100 (local NSH-aware VNF)
  rules[1].spi = 100;
  rules[2].dst = *dp::parse_prefix("198.51.100.0/24");  // MD2 -> chain 100
  rules[2].spi = 100;
  rules[2].md2 = true;
  rules[3].dst = *dp::parse_prefix("100.64.0.0/10");  // MD1 -> chain 600 (remote instance)
  rules[3].spi = 600;
  return rules;
}

void setup_node(dp::Dataplane& p) {
  build_fixture_node();
  // spare veths the benchmark attaches the two programs to (see main)
  must("ip link add hold0 type veth peer name hold0p && ip link add hold1 type veth peer name hold1p");
  must("ip link add hold2 type veth peer name hold2p && ip link add hold3 type veth peer name hold3p");
  program_fixture_node(p);
  ok(p.set_path(600, 255, kSvcRemote, false), "path 600:255");
  ok(p.set_policies(bench_rules()), "policies");
}

// ---- frames ----
struct Flow {
  std::string src, dst;
  test::L4 l4;
  Bytes ip(uint8_t ttl = 64) const { return test::ipv4(src, dst, l4, ttl); }
  uint32_t hash() const { return test::flow_hash(src, dst, l4); }
};

test::Nsh nsh_for(const Flow& f, uint32_t spi, uint8_t si, uint8_t ttl) {
  test::Nsh n;
  n.spi = spi;
  n.si = si;
  n.ttl = ttl;
  n.next_proto = AC_NSH_NP_IPV4;
  n.ctx[0] = f.hash();
  return n;
}

Bytes nsh_frame(const Mac& dst, const Mac& src, const test::Nsh& n, const Bytes& inner) {
  return test::eth(dst, src, AC_ETH_P_NSH, {test::nsh(n), inner});
}

// ---- running ----
struct Call {
  int verdict;
  uint32_t duration;  // kernel: ns per iteration (integer)
  uint64_t wall_ns;   // around the syscall
};

Call run(int prog_fd, uint32_t ifidx, const Bytes& f, uint32_t repeat, bool restored = false) {
  static Bytes out(4096);
  xdp_md ctx{};
  ctx.ingress_ifindex = ifidx;
  ctx.data_end = static_cast<uint32_t>(f.size());
  LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = f.data(), .data_out = out.data(),
              .data_size_in = static_cast<uint32_t>(f.size()), .data_size_out = static_cast<uint32_t>(out.size()),
              .ctx_in = &ctx, .ctx_size_in = sizeof(ctx), .repeat = static_cast<int>(repeat));
  timespec a{}, b{};
  clock_gettime(CLOCK_MONOTONIC, &a);
  int err = bpf_prog_test_run_opts(prog_fd, &o);
  clock_gettime(CLOCK_MONOTONIC, &b);
  if (err) throw std::runtime_error("bpf_prog_test_run_opts: " + std::string(std::strerror(-err)));
  uint64_t wall = static_cast<uint64_t>(b.tv_sec - a.tv_sec) * 1'000'000'000ULL + b.tv_nsec - a.tv_nsec;
  if (restored && (o.data_size_out != f.size() || std::memcmp(out.data(), f.data(), f.size()) != 0))
    throw std::runtime_error("restored loop: the output frame differs from the input (the wrapper missed a change)");
  return {static_cast<int>(o.retval), o.duration, wall};
}

struct PathDef {
  std::string name;
  std::string what;
  bool baseline = false;  // the empty program
  std::string ifname;
  Bytes frame;
  int verdict = XDP_PASS;
  std::map<uint32_t, uint64_t> per_run;  // reason -> packets added by one run
  uint32_t max_chunk = 1;                // runs on one buffer that all stay on this path
  std::function<void()> reset;           // before every call, outside the timed region
  std::function<void()> prepare;         // once, before the warm-up (state other paths leave)
  uint32_t loop_flows = 0;               // restored loop over this many flows (ac_loop_flows)
  uint32_t loop_hash_off = 0;            // where the frame carries the flow hash
  int prog_fd = -1;
  uint32_t ifidx = 0;
};

struct PathResult {
  std::string name, what;
  bool baseline = false;
  uint64_t runs = 0;
  double single_mean = 0;  // trimmed mean of the kernel's single-run duration, ns
  double ns = 0;           // estimated ns/packet (see top of file)
  double ratio = 0;
  std::optional<double> hot_ns;  // hot-loop ns/packet when the path allows it
  std::optional<double> hot_ratio;
  std::optional<double> loop_raw;    // restored loop: wrapped fast path, ns per iteration
  std::optional<double> loop_empty;  // restored loop: wrapped empty program on the same frame
  std::optional<double> loop_ns;     // loop_raw - loop_empty + hot(empty)
  std::optional<double> loop_ratio;
  std::optional<double> loop_1m;     // cross-check: one call with repeat kLongRepeat, kernel-timed
  std::vector<std::string> counters;  // reason names checked
};

const char* verdict_name(int v) {
  switch (v) {
    case XDP_ABORTED: return "ABORTED";
    case XDP_DROP: return "DROP";
    case XDP_PASS: return "PASS";
    case XDP_TX: return "TX";
    case XDP_REDIRECT: return "REDIRECT";
  }
  return "?";
}

class Checker {
 public:
  explicit Checker(const dp::Dataplane& d) : d_(d) { before_ = ok(d_.stats(), "stats"); }
  // every reason must have moved by exactly runs * per_run (0 for the others)
  void expect(const std::map<uint32_t, uint64_t>& per_run, uint64_t runs, const std::string& what) const {
    auto now = ok(d_.stats(), "stats");
    std::string bad;
    for (const auto& sr : dp::stat_reasons()) {
      uint32_t r = sr.slot;
      uint64_t got = now[r].packets - before_[r].packets;
      auto it = per_run.find(r);
      uint64_t want = it == per_run.end() ? 0 : it->second * runs;
      if (got != want) bad += fmt::format(" {}: {} (want {})", dp::reason_name(r), got, want);
    }
    if (!bad.empty()) throw std::runtime_error("counter check failed for " + what + ":" + bad);
  }

 private:
  const dp::Dataplane& d_;
  std::vector<ac_counter> before_;
};

// mean of the middle 80 %: drops the calls hit by interrupts or preemption on either side
template <class T>
double trimmed_mean(std::vector<T> v) {
  std::sort(v.begin(), v.end());
  size_t cut = v.size() / 10;
  double sum = 0;
  size_t n = 0;
  for (size_t i = cut; i + cut < v.size(); ++i, ++n) sum += static_cast<double>(v[i]);
  return n ? sum / static_cast<double>(n) : 0;
}

void check_verdict(const PathDef& p, const Call& c, int want) {
  if (c.verdict != want)
    throw std::runtime_error(fmt::format("{}: verdict {} (want {})", p.name, verdict_name(c.verdict), verdict_name(want)));
}

void check_verdict(const PathDef& p, const Call& c) { check_verdict(p, c, p.verdict); }

// Hot loop: alternate repeat kHotHi / kHotLo calls, trimmed mean of the per-iteration difference.
// prog_fd: the path's own program, or a restoring wrapper (restored: each output must equal the
// input); counts: the reasons one iteration adds (none for the empty program and its wrapper).
double hot_loop(const dp::Dataplane& d, const PathDef& p, uint64_t pairs, int prog_fd, bool restored,
                const std::map<uint32_t, uint64_t>& counts, int verdict, const std::string& what) {
  Checker chk(d);
  std::vector<double> diffs;
  diffs.reserve(pairs);
  for (uint64_t i = 0; i < pairs; ++i) {
    if (p.reset) p.reset();
    Call hi = run(prog_fd, p.ifidx, p.frame, kHotHi, restored);
    check_verdict(p, hi, verdict);
    if (p.reset) p.reset();
    Call lo = run(prog_fd, p.ifidx, p.frame, kHotLo, restored);
    check_verdict(p, lo, verdict);
    diffs.push_back((static_cast<double>(hi.wall_ns) - static_cast<double>(lo.wall_ns)) / (kHotHi - kHotLo));
  }
  chk.expect(counts, pairs * (kHotHi + kHotLo), what);
  return trimmed_mean(diffs);
}

double hot_loop(const dp::Dataplane& d, const PathDef& p, uint64_t pairs) {
  return hot_loop(d, p, pairs, p.prog_fd, false, p.per_run, p.verdict, p.name + " (hot loop)");
}

// Empty program with a large repeat, as the kernel reports it (integer ns per iteration; the
// kernel's timer leaves out time spent rescheduled). Cross-check of the hot-loop baseline only:
// the integer truncation is up to 1 ns, too coarse to divide by.
uint32_t empty_large_kernel(const PathDef& e, uint32_t repeat, int trials) {
  uint32_t best = UINT32_MAX;
  for (int i = 0; i < trials; ++i) {
    Call c = run(e.prog_fd, e.ifidx, e.frame, repeat);
    check_verdict(e, c);
    best = std::min(best, c.duration);
  }
  return best;
}

// ---- memory per entry: map memlock (fdinfo) at two sizes, differenced ----
uint64_t memlock_of(int fd) {
  std::ifstream f("/proc/self/fdinfo/" + std::to_string(fd));
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("memlock:", 0) == 0) return std::stoull(line.substr(8));
  throw std::runtime_error("no memlock in fdinfo");
}

uint64_t map_memlock(bpf_map_type type, uint32_t key, uint32_t value, uint32_t entries) {
  int fd = bpf_map_create(type, "ac_bench_mem", key, value, entries, nullptr);
  if (fd < 0) throw std::runtime_error("bpf_map_create: " + std::string(std::strerror(errno)));
  uint64_t m = memlock_of(fd);
  close(fd);
  return m;
}

struct Memory {
  int cpus;
  double flow_set;       // bytes per flow cache set (AC_FLOW_WAYS entries, all CPUs' copies)
  double flow_entry;      // flow_set / AC_FLOW_WAYS
  uint64_t flow_default;  // memlock of the default-size flow cache
  uint64_t nexthop;       // memlock of the next-hop cache (AC_NEXTHOP_SLOTS entries)
  uint64_t lasthop;       // memlock of the last-hop cache (AC_LASTHOP_SLOTS entries)
  uint64_t wcmp_table;    // one inner table
  double proxy_entry;
  uint64_t proxy_default;
};

Memory memory() {
  Memory m{};
  m.cpus = libbpf_num_possible_cpus();
  const uint32_t a = AC_FLOW_CACHE_DEFAULT / AC_FLOW_WAYS, b = 2 * a;  // sets
  // one array holds every CPU's sets
  const uint32_t n = static_cast<uint32_t>(m.cpus);
  uint64_t fa = map_memlock(BPF_MAP_TYPE_ARRAY, sizeof(uint32_t), sizeof(ac_flow_set), a * n);
  uint64_t fb = map_memlock(BPF_MAP_TYPE_ARRAY, sizeof(uint32_t), sizeof(ac_flow_set), b * n);
  m.flow_set = static_cast<double>(fb - fa) / (b - a);
  m.flow_entry = m.flow_set / AC_FLOW_WAYS;
  m.flow_default = fa;
  m.nexthop = map_memlock(BPF_MAP_TYPE_PERCPU_ARRAY, sizeof(uint32_t), sizeof(ac_nexthop), AC_NEXTHOP_SLOTS);
  m.lasthop = map_memlock(BPF_MAP_TYPE_PERCPU_ARRAY, sizeof(uint32_t), sizeof(ac_lasthop), AC_LASTHOP_SLOTS);
  m.wcmp_table = map_memlock(BPF_MAP_TYPE_ARRAY, 4, 4, AC_WCMP_BUCKETS);
  const uint32_t pa = AC_PROXY_DEFAULT, pb = 2 * AC_PROXY_DEFAULT;
  uint64_t xa = map_memlock(BPF_MAP_TYPE_LRU_HASH, sizeof(ac_proxy_key), sizeof(ac_proxy_entry), pa);
  uint64_t xb = map_memlock(BPF_MAP_TYPE_LRU_HASH, sizeof(ac_proxy_key), sizeof(ac_proxy_entry), pb);
  m.proxy_entry = static_cast<double>(xb - xa) / (pb - pa);
  m.proxy_default = xa;
  return m;
}

// ---- output ----
std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

std::string fixed(double v, int prec) {
  std::ostringstream os;
  os.setf(std::ios::fixed);
  os.precision(prec);
  os << v;
  return os.str();
}

std::string json_str(const std::string& s) {
  std::string o = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    o += c;
  }
  return o + "\"";
}

struct Options {
  uint64_t repeat = 200000;  // measured single runs per path (and hot-loop pairs / 20)
  bool json = false;
  std::string path;
  bool list = false;
  uint32_t flows = 10000;  // cache_hit_local_nsh_flows (0 or 1: not measured)
};

void usage() {
  std::cout << "usage: anychain-bench-fastpath [--repeat N] [--json] [--path NAME] [--list]\n"
               "  --repeat N   single runs measured per path (default 200000); the hot loop uses N/20\n"
               "               pairs of calls with repeat " << kHotHi << " and " << kHotLo << "\n"
               "  --json       print the results as JSON\n"
               "  --path NAME  measure only this path (the empty program is always measured)\n"
               "  --list       list the paths and exit\n"
               "  --flows N    flows of cache_hit_local_nsh_flows (default 10000, at most the flow\n"
               "               cache's sets; 0 leaves the path out)\n"
               "Needs root (BPF, netns); runs in a private network namespace and bpffs.\n";
}

int bench_main(const Options& opt) {
  // one CPU: the flow cache is per-CPU and the kernel runs the program on the calling CPU
  int cpu = libbpf_num_possible_cpus() - 1;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0) cpu = sched_getcpu();

  if (auto err = test::enter_sandbox(); !err.empty()) throw std::runtime_error("sandbox: " + err);
  auto d = ok(dp::Dataplane::open(), "open dataplane");
  setup_node(d);
  std::unique_ptr<xdp_pass_bpf, void (*)(xdp_pass_bpf*)> empty(xdp_pass_bpf__open_and_load(), xdp_pass_bpf__destroy);
  if (!empty) throw std::runtime_error("load xdp_pass");
  // the restoring wrappers, on the node's pinned maps
  LIBBPF_OPTS(bpf_object_open_opts, lo, .pin_root_path = d.pin_root().c_str());
  std::unique_ptr<fastpath_loop_bpf, void (*)(fastpath_loop_bpf*)> loop(fastpath_loop_bpf__open_opts(&lo),
                                                                        fastpath_loop_bpf__destroy);
  if (!loop) throw std::runtime_error("open fastpath_loop");
  bpf_map__set_max_entries(loop->maps.ac_flow_cache, d.flow_sets() * static_cast<uint32_t>(libbpf_num_possible_cpus()));
  {
    bpf_map_info info{};
    uint32_t len = sizeof info;
    if (bpf_obj_get_info_by_fd(d.map_fd("ac_proxy"), &info, &len) != 0) throw std::runtime_error("ac_proxy info");
    bpf_map__set_max_entries(loop->maps.ac_proxy, info.max_entries);
  }
  if (int err = fastpath_loop_bpf__load(loop.get()); err != 0)
    throw std::runtime_error("load fastpath_loop: " + std::string(std::strerror(-err)));
  for (const char* m : {"ac_config", "ac_ifaces", "ac_paths", "ac_flow_cache", "ac_stats", "ac_wcmp"}) {
    bpf_map_info a{}, b{};
    uint32_t la = sizeof a, lb = sizeof b;
    if (bpf_obj_get_info_by_fd(d.map_fd(m), &a, &la) != 0 ||
        bpf_obj_get_info_by_fd(bpf_map__fd(bpf_object__find_map_by_name(loop->obj, m)), &b, &lb) != 0 || a.id != b.id)
      throw std::runtime_error(std::string("fastpath_loop does not share the node's map ") + m);
  }
  const int fast_fd = d.prog_fd();
  const int empty_fd = bpf_program__fd(empty->progs.xdp_pass);
  const int loop_fast_fd = bpf_program__fd(loop->progs.loop_anychain);
  const int loop_empty_fd = bpf_program__fd(loop->progs.loop_empty);
  // Attach both programs natively to spare veths: the kernel's XDP dispatcher then holds them,
  // so every run is a direct call for both, and repeat > 1 calls do not rebuild the dispatcher.
  if (bpf_xdp_attach(static_cast<int>(ifindex("hold0")), fast_fd, XDP_FLAGS_DRV_MODE, nullptr) ||
      bpf_xdp_attach(static_cast<int>(ifindex("hold1")), empty_fd, XDP_FLAGS_DRV_MODE, nullptr) ||
      bpf_xdp_attach(static_cast<int>(ifindex("hold2")), loop_fast_fd, XDP_FLAGS_DRV_MODE, nullptr) ||
      bpf_xdp_attach(static_cast<int>(ifindex("hold3")), loop_empty_fd, XDP_FLAGS_DRV_MODE, nullptr))
    throw std::runtime_error("attach to the holding veths failed");

  const int flow_fd = d.map_fd("ac_flow_cache");
  const Flow v4{"192.168.1.10", "203.0.113.10", {}};
  Flow proxied = v4;
  proxied.dst = "203.0.113.200";
  proxied.l4.proto = IPPROTO_TCP;
  proxied.l4.dport = 80;
  const Flow md2{"192.168.1.10", "198.51.100.5", {}};
  const Flow remote{"192.168.1.10", "100.64.0.10", {}};

  std::vector<PathDef> paths;
  using Counts = std::map<uint32_t, uint64_t>;
  auto add = [&](std::string name, std::string what, std::string ifname, Bytes f, int verdict, Counts per_run,
                 uint32_t max_chunk = 1, std::function<void()> reset = {}) {
    PathDef p;
    p.name = std::move(name);
    p.what = std::move(what);
    p.baseline = p.name == "empty_xdp";
    p.ifname = std::move(ifname);
    p.frame = std::move(f);
    p.verdict = verdict;
    p.per_run = std::move(per_run);
    p.max_chunk = max_chunk;
    p.reset = std::move(reset);
    p.prog_fd = p.baseline ? empty_fd : fast_fd;
    p.ifidx = ifindex(p.ifname);
    if (!p.ifidx) throw std::runtime_error("no interface " + p.ifname);
    paths.push_back(std::move(p));
  };
  const Bytes nsh_in = nsh_frame(kVnf0Host, kVnf0Peer, nsh_for(v4, 100, 255, 63), v4.ip());
  add("empty_xdp", "empty XDP program (xdp_pass), baseline", "vnf0", nsh_in, XDP_PASS, {}, UINT32_MAX);
  add("cache_hit_local_nsh", "NSH in, flow cache hit, redirect to local NSH-aware VNF", "vnf0", nsh_in,
      XDP_REDIRECT, {{AC_NOTE_CACHE_HIT, 1}, {AC_FWD_LOCAL_NSH, 1}});
  {
    // empty the flow's way (every CPU): the next run misses and reads the path; then either the
    // flow's shared placement answers (cache_miss_affinity), or, with the placement deleted too,
    // WCMP places the flow again (cache_miss_wcmp)
    const uint32_t spsi = htonl(AC_SPI_SI(100, 255)), hash = v4.hash();
    const uint32_t set = ac_flow_set_of(spsi, hash, d.flow_sets() - 1);
    auto sets = std::make_shared<std::vector<ac_flow_set>>(libbpf_num_possible_cpus());
    const int aff_fd = d.map_fd("ac_affinity");
    const uint32_t nsets = d.flow_sets();
    auto forget_way = [flow_fd, set, nsets, sets, spsi, hash] {
      for (uint32_t cpu = 0; cpu < sets->size(); ++cpu) {  // CPU c's set: element c * nsets + set
        const uint32_t key = cpu * nsets + set;
        auto& s = (*sets)[cpu];
        if (bpf_map_lookup_elem(flow_fd, &key, &s) != 0)
          throw std::runtime_error("read flow cache set: " + std::string(std::strerror(errno)));
        for (auto& w : s.way)
          if (w.spi_si == spsi && w.hash == hash) w = ac_flow{};
        if (bpf_map_update_elem(flow_fd, &key, &s, BPF_ANY) != 0)
          throw std::runtime_error("write flow cache set: " + std::string(std::strerror(errno)));
      }
    };
    add("cache_miss_affinity", "NSH in, flow cache miss, path + shared placement + cache insert, redirect local",
        "vnf0", nsh_in, XDP_REDIRECT, {{AC_NOTE_CACHE_MISS, 1}, {AC_NOTE_AFFINITY_HIT, 1}, {AC_FWD_LOCAL_NSH, 1}}, 1,
        forget_way);
    add("cache_miss_wcmp", "as cache_miss_affinity, placement deleted too: WCMP bucket + placement insert", "vnf0",
        nsh_in, XDP_REDIRECT, {{AC_NOTE_CACHE_MISS, 1}, {AC_NOTE_AFFINITY_NEW, 1}, {AC_FWD_LOCAL_NSH, 1}}, 1,
        [forget_way, aff_fd, spsi, hash] {
          forget_way();
          ac_affinity_key k{.spi_si = spsi, .hash = hash};
          if (bpf_map_delete_elem(aff_fd, &k) != 0 && errno != ENOENT)
            throw std::runtime_error("delete placement: " + std::string(std::strerror(errno)));
        });
  }
  add("classify_md1_local", "classify (rule 2 of 4), push NSH MD1, deliver to local VNF", "src0",
      test::eth(kSrc0, kSrcHost, ETH_P_IP, {v4.ip()}), XDP_REDIRECT,
      {{AC_NOTE_CLASSIFIED, 1}, {AC_NOTE_CACHE_HIT, 1}, {AC_FWD_LOCAL_NSH, 1}});
  add("classify_md2_local", "classify (rule 3 of 4), push NSH MD2 (hash TLV), deliver local", "src0",
      test::eth(kSrc0, kSrcHost, ETH_P_IP, {md2.ip()}), XDP_REDIRECT,
      {{AC_NOTE_CLASSIFIED, 1}, {AC_NOTE_CACHE_HIT, 1}, {AC_FWD_LOCAL_NSH, 1}});
  add("classify_md1_encap", "classify (rule 4 of 4), push NSH MD1, VXLAN-GPE encap, next-hop cache hit", "src0",
      test::eth(kSrc0, kSrcHost, ETH_P_IP, {remote.ip()}), XDP_REDIRECT,
      {{AC_NOTE_CLASSIFIED, 1}, {AC_NOTE_CACHE_HIT, 1}, {AC_FWD_REMOTE, 1}});
  const Bytes to_remote = nsh_frame(kVnf0Host, kVnf0Peer, nsh_for(v4, 100, 254, 63), v4.ip());
  add("nsh_to_vxlan_gpe", "NSH in (SI 254), cache hit, VXLAN-GPE encap, next-hop cache hit, redirect", "vnf0",
      to_remote, XDP_REDIRECT, {{AC_NOTE_CACHE_HIT, 1}, {AC_FWD_REMOTE, 1}});
  {
    // forget the remote instance's next hop (every CPU) before each run: encap + bpf_fib_lookup
    const int nh_fd = d.map_fd("ac_nexthop");
    auto empty_nh = std::make_shared<std::vector<ac_nexthop>>(libbpf_num_possible_cpus());
    const uint32_t slot = ac_nexthop_slot(kInstRemote, ifindex("vnf0"));
    add("nsh_to_vxlan_gpe_fib", "as nsh_to_vxlan_gpe, next-hop cache emptied before each run: bpf_fib_lookup",
        "vnf0", to_remote, XDP_REDIRECT, {{AC_NOTE_CACHE_HIT, 1}, {AC_FWD_REMOTE, 1}}, 1, [nh_fd, empty_nh, slot] {
          if (bpf_map_update_elem(nh_fd, &slot, empty_nh->data(), BPF_ANY) != 0)
            throw std::runtime_error("empty next-hop entry: " + std::string(std::strerror(errno)));
        });
  }
  {
    Bytes inner = test::nsh(nsh_for(v4, 100, 253, 60));
    test::append(inner, v4.ip());
    Bytes f = test::eth(kCore0, kCore0Peer, ETH_P_IP);
    test::append(f, test::gpe_outer(kRemoteEndpoint, kLocalEndpoint, 0xc123, inner.size()));
    test::append(f, inner);
    add("gpe_decap_last_hop", "VXLAN-GPE in, decap, last SI: pop NSH, last-hop cache hit, redirect", "core0", f,
        XDP_REDIRECT, {{AC_NOTE_GPE_DECAP, 1}, {AC_FWD_LAST_HOP, 1}});
    // forget the inner packet's last hop (every CPU) before each run: pop + bpf_fib_lookup
    const int lh_fd = d.map_fd("ac_lasthop");
    auto empty_lh = std::make_shared<std::vector<ac_lasthop>>(libbpf_num_possible_cpus());
    __be32 src[4] = {}, dst[4] = {};
    inet_pton(AF_INET, v4.src.c_str(), &src[0]);
    inet_pton(AF_INET, v4.dst.c_str(), &dst[0]);
    const uint32_t slot = ac_lasthop_slot(src, dst, ifindex("core0"));
    add("gpe_decap_last_hop_fib", "as gpe_decap_last_hop, last-hop cache emptied before each run: bpf_fib_lookup",
        "core0", f, XDP_REDIRECT, {{AC_NOTE_GPE_DECAP, 1}, {AC_FWD_LAST_HOP, 1}}, 1, [lh_fd, empty_lh, slot] {
          if (bpf_map_update_elem(lh_fd, &slot, empty_lh->data(), BPF_ANY) != 0)
            throw std::runtime_error("empty last-hop entry: " + std::string(std::strerror(errno)));
        });
  }
  {
    // VXLAN-GPE that is not at its last hop: decap and the forwarder, which delivers it (SI 255) to
    // the local NSH-aware VNF its VNI names (as the sending node names its choice), or (SI 254,
    // VNI 0: this node selects) sends it on to the remote instance over VXLAN-GPE again
    auto gpe_in = [&](uint8_t si, uint32_t vni) {
      Bytes inner = test::nsh(nsh_for(v4, 100, si, 60));
      test::append(inner, v4.ip());
      Bytes f = test::eth(kCore0, kCore0Peer, ETH_P_IP);
      test::append(f, test::gpe_outer(kRemoteEndpoint, kLocalEndpoint, 0xc123, inner.size(), AC_GPE_NP_NSH,
                                      AC_GPE_FLAG_I | AC_GPE_FLAG_P, vni));
      test::append(f, inner);
      return f;
    };
    add("gpe_decap_local_nsh", "VXLAN-GPE in (SI 255, VNI names a local instance), decap, redirect to it", "core0",
        gpe_in(255, kInstLocal), XDP_REDIRECT, {{AC_NOTE_GPE_DECAP, 1}, {AC_FWD_LOCAL_NSH, 1}});
    add("gpe_decap_to_vxlan_gpe", "VXLAN-GPE in (SI 254, VNI 0), decap, cache hit, VXLAN-GPE encap, next-hop hit",
        "core0", gpe_in(254, 0), XDP_REDIRECT, {{AC_NOTE_GPE_DECAP, 1}, {AC_NOTE_CACHE_HIT, 1}, {AC_FWD_REMOTE, 1}});
  }
  add("proxy_deliver", "NSH in, cache hit, SFC proxy stores NSH, pop, redirect to VNF", "vnf0",
      nsh_frame(kVnf0Host, kVnf0Peer, nsh_for(proxied, 200, 255, 63), proxied.ip()), XDP_REDIRECT,
      {{AC_NOTE_CACHE_HIT, 1}, {AC_FWD_LOCAL_PROXY, 1}});
  add("proxy_return", "IP back from VNF, proxy restores NSH (SI-1), last hop: pop + FIB", "vnf1",
      test::eth(kVnf1Host, kVnf1Peer, ETH_P_IP, {proxied.ip()}), XDP_REDIRECT,
      {{AC_NOTE_PROXY_RETURN, 1}, {AC_FWD_LAST_HOP, 1}});
  {
    // the proxy must hold this flow's NSH: deliver it once (as proxy_deliver does)
    Bytes deliver = paths[paths.size() - 2].frame;
    int fd = fast_fd;
    uint32_t vnf0 = ifindex("vnf0");
    paths.back().prepare = [fd, vnf0, deliver] {
      if (run(fd, vnf0, deliver, 1).verdict != XDP_REDIRECT) throw std::runtime_error("proxy_return: prepare failed");
    };
  }
  {
    test::Nsh bad = nsh_for(v4, 100, 255, 63);
    bad.ver = 1;
    add("malformed_drop", "NSH with version 1: dropped, counted", "vnf0", nsh_frame(kVnf0Host, kVnf0Peer, bad, v4.ip()),
        XDP_DROP, {{AC_DROP_NSH_VERSION, 1}}, UINT32_MAX);
  }
  {
    Flow other{"10.0.0.2", "10.0.0.1", {}};
    add("pass_not_ours", "IPv4 on a non-chain interface: XDP_PASS, counted", "core0",
        test::eth(kCore0, kCore0Peer, ETH_P_IP, {other.ip()}), XDP_PASS, {{AC_PASS_NOT_OURS, 1}}, UINT32_MAX);
  }
  if (opt.flows > 1) {
    // last: its flows take a way each (one per set, so no other path's way is evicted)
    add("cache_hit_local_nsh_flows", fmt::format("as cache_hit_local_nsh over {} flows in turn (restored loop only; "
                                                 "one set each, all hits)", opt.flows),
        "vnf0", nsh_in, XDP_REDIRECT, {{AC_NOTE_CACHE_HIT, 1}, {AC_FWD_LOCAL_NSH, 1}});
    paths.back().loop_flows = opt.flows;
    paths.back().loop_hash_off = sizeof(ethhdr) + 8;  // MD1 context header 0: the flow hash
  }

  if (opt.list) {
    for (const auto& p : paths)
      std::cout << p.name << "  " << p.what << " (" << p.frame.size() << "-byte frame on " << p.ifname << ")\n";
    return 0;
  }
  if (!opt.path.empty()) {
    bool found = std::any_of(paths.begin(), paths.end(), [&](const auto& p) { return p.name == opt.path; });
    if (!found) throw std::runtime_error("unknown path " + opt.path + " (see --list)");
    std::erase_if(paths, [&](const auto& p) { return !p.baseline && p.name != opt.path; });
  }

  // Warm-up and per-path verification (repeat 1): fills the flow cache and the proxy entry,
  // and proves each fixture takes exactly its path.
  for (const auto& p : paths) {
    if (p.prepare) p.prepare();
    if (p.reset) p.reset();
    Checker chk(d);
    Call c = run(p.prog_fd, p.ifidx, p.frame, 1);
    // a wrong verdict: say which reasons the run counted
    if (c.verdict != p.verdict) chk.expect({}, 1, p.name + " (warm-up, verdict " + verdict_name(c.verdict) + ")");
    check_verdict(p, c);
  }
  for (const auto& p : paths) {
    Checker chk(d);
    for (int i = 0; i < 1000; ++i) {
      if (p.reset) p.reset();
      check_verdict(p, run(p.prog_fd, p.ifidx, p.frame, 1));
    }
    chk.expect(p.per_run, 1000, p.name + " (verification)");
  }

  // Single-run phase: round robin over the paths so drift hits all alike.
  const uint64_t n = std::max<uint64_t>(opt.repeat, 100);
  std::vector<std::vector<uint32_t>> samples(paths.size());
  for (auto& s : samples) s.reserve(n);
  {
    Checker chk(d);
    for (uint64_t i = 0; i < n; ++i) {
      for (size_t k = 0; k < paths.size(); ++k) {
        const auto& p = paths[k];
        if (p.reset) p.reset();
        Call c = run(p.prog_fd, p.ifidx, p.frame, 1);
        check_verdict(p, c);
        samples[k].push_back(c.duration);
      }
    }
    std::map<uint32_t, uint64_t> total;
    for (const auto& p : paths)
      for (auto [r, c] : p.per_run) total[r] += c;
    chk.expect(total, n, "single-run phase");
  }

  // Hot loops.
  const uint64_t pairs = std::max<uint64_t>(n / 20, 50);
  const PathDef& e = paths[0];
  const uint32_t empty_kernel_large = empty_large_kernel(e, 10'000'000, 3);
  const double empty_hot = hot_loop(d, e, pairs);
  std::vector<PathResult> results;
  const double empty_single = trimmed_mean(samples[0]);
  for (size_t k = 0; k < paths.size(); ++k) {
    const auto& p = paths[k];
    PathResult r;
    r.name = p.name;
    r.what = p.what;
    r.baseline = p.baseline;
    r.runs = n;
    r.single_mean = trimmed_mean(samples[k]);
    r.ns = p.baseline ? empty_hot : r.single_mean - empty_single + empty_hot;
    r.ratio = r.ns / empty_hot;
    if (p.max_chunk >= kHotHi) {
      r.hot_ns = p.baseline ? empty_hot : hot_loop(d, p, pairs);
      r.hot_ratio = *r.hot_ns / empty_hot;
    }
    if (!p.baseline && !p.reset) {
      loop->bss->ac_loop_flows = p.loop_flows;
      loop->bss->ac_loop_hash_off = p.loop_hash_off;
      if (p.loop_flows) {
        // twice over the flows: the first round places each one (misses), the second hits
        Call w = run(loop_fast_fd, p.ifidx, p.frame, 2 * p.loop_flows, true);
        check_verdict(p, w);
      }
      r.loop_raw = hot_loop(d, p, pairs, loop_fast_fd, true, p.per_run, p.verdict, p.name + " (restored loop)");
      r.loop_empty = hot_loop(d, p, pairs, loop_empty_fd, true, {}, XDP_PASS, p.name + " (restored loop, empty)");
      r.loop_ns = *r.loop_raw - *r.loop_empty + empty_hot;
      r.loop_ratio = *r.loop_ns / empty_hot;
      // Cross-check with what the kernel itself reports for one call with a large repeat count
      // (integer ns per iteration, time rescheduled left out): path and wrapper alike.
      Checker chk(d);
      Call lf = run(loop_fast_fd, p.ifidx, p.frame, kLongRepeat, true);
      check_verdict(p, lf);
      chk.expect(p.per_run, kLongRepeat, p.name + " (restored loop, repeat 1M)");
      Call le = run(loop_empty_fd, p.ifidx, p.frame, kLongRepeat, true);
      check_verdict(p, le, XDP_PASS);
      r.loop_1m = static_cast<double>(lf.duration) - static_cast<double>(le.duration) + empty_hot;
      loop->bss->ac_loop_flows = 0;
    }
    for (auto [reason, c] : p.per_run) r.counters.push_back(dp::reason_name(reason));
    results.push_back(r);
  }
  Memory mem = memory();

  utsname u{};
  uname(&u);
  if (opt.json) {
    std::cout << "{\n  \"cpu\": " << json_str(cpu_model()) << ",\n  \"kernel\": " << json_str(u.release)
              << ",\n  \"bench_cpu\": " << cpu << ",\n  \"single_runs_per_path\": " << n
              << ",\n  \"hot_loop_pairs\": " << pairs << ",\n  \"hot_loop_repeat\": [" << kHotHi << ", " << kHotLo
              << "],\n  \"empty_hot_loop_ns\": " << fixed(empty_hot, 3)
              << ",\n  \"empty_kernel_ns_repeat_10M\": " << empty_kernel_large
              << ",\n  \"empty_single_run_ns\": " << fixed(empty_single, 3) << ",\n  \"paths\": [\n";
    for (size_t i = 0; i < results.size(); ++i) {
      const auto& r = results[i];
      std::cout << "    {\"name\": " << json_str(r.name) << ", \"what\": " << json_str(r.what)
                << ", \"single_run_ns\": " << fixed(r.single_mean, 3) << ", \"ns_per_packet\": " << fixed(r.ns, 3)
                << ", \"ratio\": " << fixed(r.ratio, 3);
      if (r.hot_ns)
        std::cout << ", \"hot_loop_ns\": " << fixed(*r.hot_ns, 3) << ", \"hot_loop_ratio\": " << fixed(*r.hot_ratio, 3);
      if (r.loop_ns)
        std::cout << ", \"restored_loop_ns\": " << fixed(*r.loop_ns, 3) << ", \"restored_loop_ratio\": "
                  << fixed(*r.loop_ratio, 3) << ", \"restored_loop_raw_ns\": " << fixed(*r.loop_raw, 3)
                  << ", \"restored_loop_wrapper_ns\": " << fixed(*r.loop_empty, 3)
                  << ", \"restored_loop_repeat_1m_ns\": " << fixed(*r.loop_1m, 3);
      std::cout << ", \"counters\": [";
      for (size_t j = 0; j < r.counters.size(); ++j) std::cout << (j ? ", " : "") << json_str(r.counters[j]);
      std::cout << "]}" << (i + 1 < results.size() ? "," : "") << "\n";
    }
    std::cout << "  ],\n  \"memory\": {\"possible_cpus\": " << mem.cpus
              << ", \"flow_cache_bytes_per_set\": " << fixed(mem.flow_set, 1)
              << ", \"flow_cache_bytes_per_entry\": " << fixed(mem.flow_entry, 1)
              << ", \"flow_cache_ways\": " << AC_FLOW_WAYS
              << ", \"nexthop_cache_bytes\": " << mem.nexthop << ", \"lasthop_cache_bytes\": " << mem.lasthop
              << ", \"flow_cache_default_entries\": " << AC_FLOW_CACHE_DEFAULT
              << ", \"flow_cache_default_bytes\": " << mem.flow_default
              << ", \"wcmp_table_bytes\": " << mem.wcmp_table << ", \"wcmp_buckets\": " << AC_WCMP_BUCKETS
              << ", \"proxy_bytes_per_entry\": " << fixed(mem.proxy_entry, 1)
              << ", \"proxy_default_entries\": " << AC_PROXY_DEFAULT
              << ", \"proxy_default_bytes\": " << mem.proxy_default << "}\n}\n";
    return 0;
  }
  std::cout << "anychain fast path benchmark (BPF_PROG_TEST_RUN)\n"
            << "CPU: " << cpu_model() << " (pinned to CPU " << cpu << "), kernel " << u.release << "\n"
            << "single runs per path: " << n << "; hot loop: " << pairs << " pairs of repeat " << kHotHi << "/"
            << kHotLo << "\n"
            << "empty program: " << fixed(empty_hot, 2) << " ns/packet in the hot loop (kernel, repeat 10M: "
            << empty_kernel_large << " ns, integer); " << fixed(empty_single, 2)
            << " ns per single run (harness overhead " << fixed(empty_single - empty_hot, 2)
            << " ns, subtracted below)\n"
            << "ns/pkt = single(path) - single(empty) + hot(empty); hot = hot loop, only where the path's output\n"
            << "is again its own input for " << kHotHi << " runs; loop = restored loop: the fast path wrapped to\n"
            << "restore the frame after each run, minus the wrapper alone on the same frame (wrapper ns), plus\n"
            << "hot(empty); 1M-run = the same from the kernel's integer ns of one call with repeat " << kLongRepeat
            << ";\nratios are against hot(empty)\n\n";
  std::printf("%-22s %9s %8s %7s %8s %7s %8s %7s %8s %7s  %s\n", "path", "single ns", "ns/pkt", "ratio", "hot ns",
              "ratio", "loop ns", "ratio", "wrapper", "1M-run", "counters checked per run");
  auto cell = [](const std::optional<double>& v, bool x) {
    return v ? fixed(*v, 2) + (x ? "x" : "") : std::string("-");
  };
  for (const auto& r : results) {
    std::string ctr;
    for (const auto& c : r.counters) ctr += (ctr.empty() ? "" : "+") + c;
    std::printf("%-22s %9.2f %8.2f %6.2fx %8s %7s %8s %7s %8s %7s  %s\n", r.name.c_str(), r.single_mean, r.ns,
                r.ratio, cell(r.hot_ns, false).c_str(), cell(r.hot_ratio, true).c_str(), cell(r.loop_ns, false).c_str(),
                cell(r.loop_ratio, true).c_str(), cell(r.loop_empty, false).c_str(),
                r.loop_1m ? fixed(*r.loop_1m, 0).c_str() : "-", ctr.c_str());
  }
  std::cout << "\nmemory (map memlock, " << mem.cpus << " possible CPUs):\n"
            << "  flow cache set (" << AC_FLOW_WAYS << " ways): " << fixed(mem.flow_set, 1) << " bytes = "
            << sizeof(ac_flow_set) << " x " << mem.cpus << " CPUs + "
            << fixed(mem.flow_set - static_cast<double>(sizeof(ac_flow_set)) * mem.cpus, 1)
            << " (per-CPU pointer); per entry " << fixed(mem.flow_entry, 1) << " bytes; default "
            << AC_FLOW_CACHE_DEFAULT << " entries per CPU (" << AC_FLOW_CACHE_DEFAULT / AC_FLOW_WAYS
            << " sets) = " << mem.flow_default << " bytes\n"
            << "  next-hop cache: " << mem.nexthop << " bytes (" << AC_NEXTHOP_SLOTS << " slots x "
            << sizeof(ac_nexthop) << " x " << mem.cpus << " CPUs + map)\n"
            << "  last-hop cache: " << mem.lasthop << " bytes (" << AC_LASTHOP_SLOTS << " slots x "
            << sizeof(ac_lasthop) << " x " << mem.cpus << " CPUs + map)\n"
            << "  WCMP table: " << mem.wcmp_table << " bytes per service (" << AC_WCMP_BUCKETS
            << " buckets; a BPF array stores each 4-byte value in an 8-byte slot: " << AC_WCMP_BUCKETS * 8
            << " + " << static_cast<int64_t>(mem.wcmp_table) - AC_WCMP_BUCKETS * 8
            << " map header) + one 8-byte slot in the outer ac_wcmp array\n"
            << "  proxy entry: " << fixed(mem.proxy_entry, 1) << " bytes (key " << sizeof(ac_proxy_key) << " + value "
            << sizeof(ac_proxy_entry) << " + LRU/hash overhead); default " << AC_PROXY_DEFAULT
            << " entries = " << mem.proxy_default << " bytes\n";
  return 0;
}

}  // namespace
}  // namespace anychain::bench

int main(int argc, char** argv) {
  anychain::bench::Options opt;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << a << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--repeat") {
      try {
        opt.repeat = std::stoull(value());
      } catch (const std::exception&) {
        std::cerr << "--repeat needs a number\n";
        return 2;
      }
    } else if (a == "--flows") {
      try {
        unsigned long f = std::stoul(value());
        if (f > AC_FLOW_CACHE_DEFAULT / AC_FLOW_WAYS) throw std::out_of_range("flows");
        opt.flows = static_cast<uint32_t>(f);
      } catch (const std::exception&) {
        std::cerr << "--flows needs a number up to " << AC_FLOW_CACHE_DEFAULT / AC_FLOW_WAYS
                  << " (the flow cache's sets)\n";
        return 2;
      }
    } else if (a == "--json") {
      opt.json = true;
    } else if (a == "--path") {
      opt.path = value();
    } else if (a == "--list") {
      opt.list = true;
    } else if (a == "-h" || a == "--help") {
      anychain::bench::usage();
      return 0;
    } else {
      std::cerr << "unknown option " << a << "\n";
      anychain::bench::usage();
      return 2;
    }
  }
  if (geteuid() != 0) {
    std::cerr << "anychain-bench-fastpath needs root (BPF_PROG_TEST_RUN, a private netns and bpffs): run it with sudo\n";
    return 1;
  }
  try {
    return anychain::bench::bench_main(opt);
  } catch (const std::exception& ex) {
    std::cerr << "anychain-bench-fastpath: " << ex.what() << "\n";
    return 1;
  }
}
