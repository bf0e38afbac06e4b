// anychain-bench-ftc: the per-packet cost of FTC in the built-in NF programs (issue 13,
// docs/performance.md "FTC"): the same NF with and without the FTC hop, on the objects
// anychain-nf loads (not attached), run with BPF_PROG_TEST_RUN one packet per call.
//
//   head      the monitor without the control TLV (plain) and as the head of an f = 1 chain:
//             its transaction's log appended (52 bytes on the wire: one write of the flow's counters)
//   replica   the firewall (stateless) as a replica of an f = 2 chain that is not the tail:
//             the monitor's log (1 to 3 writes: 48 to 116 bytes on the wire) applied to its
//             replica store and kept
//   tail      the NAT as the tail of an f = 1 chain after the monitor: the log applied,
//             stripped, and the NAT's own no-op log appended
// at inner packets of 64, 512 and 1500 bytes (--bench hops), and chains of 2 to 5 of those
// programs with and without FTC, the logs left at the chain's end returned on the next packet as
// the buffer and forwarder do (--bench chain, run_chains below). Every call's verdict and the FTC counters are
// checked (every log applied in order, nothing refused); a run that does not add up fails.
//
// --bench path (bench/ftc_path.cc): the same chain with and without FTC where a packet really
// goes, behind anychain's fast path with the agent's egress buffer and forwarder: router CPU per
// delivered packet and, with --xdp-time, the XDP programs' own time per packet.
//
// Timing: the kernel's own duration of each single run (repeat 1: the program and the test
// harness's copy of the frame), median of N calls, and the same for an empty XDP program as the
// floor. Needs root (BPF).
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_ether.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include "anychain/nf.h"
#include "common/netns.h"
#include "common/packet.h"
#include "ftc_path.h"
#include "ftc/wire.h"
#include "nf/loader.h"
#include "nf/maps.h"
#include "nf/state.h"
#include "xdp_pass.skel.h"

namespace po = boost::program_options;
using nlohmann::json;

namespace anychain::bench {
namespace {

using test::Bytes;
namespace nf = anychain::nf;

const test::Mac kHost = {0x02, 0, 0, 0, 0xa0, 0x01}, kNf = {0x02, 0xac, 0x6e, 0x66, 0, 0x07};
constexpr uint32_t kSpi = 42, kHash = 0x11223344;
constexpr uint16_t kMonitorId = 7;

void must(bool ok, const std::string& what) {
  if (!ok) throw std::runtime_error(what);
}

// The inner IPv4/UDP packet of `size` bytes (20 + 8 + payload)
Bytes inner(size_t size) {
  return test::ipv4("10.1.0.1", "198.51.100.7", test::L4{IPPROTO_UDP, 40000, 9000, Bytes(size - 28, 0xab)});
}

Bytes frame(const ftc::Nsh& n, const Bytes& in) {
  auto b = ftc::encode_nsh(n);
  must(b.has_value(), "encode NSH: " + (b ? std::string() : b.error().message));
  Bytes f = test::eth(kNf, kHost, AC_ETH_P_NSH);
  test::append(f, *b);
  test::append(f, in);
  return f;
}

ftc::Nsh base(uint8_t si, std::optional<uint8_t> f) {
  ftc::Nsh n;
  n.spi = kSpi;
  n.si = si;
  n.other.push_back(ftc::flow_hash_tlv(kHash));
  if (f) n.ctrl = ftc::Ctrl{0, *f, 0x0a000001};
  return n;
}

// The monitor's log of its flow counters at `seq`, with `writes` writes (the flow's key, then
// other keys of the same partition's flows): 1 write is what the monitor appends.
ftc::Log monitor_log(uint32_t seq, int writes, uint8_t held = 1) {
  ftc::Log l;
  l.held = held;
  l.count = 1;
  l.mbox = {kMonitorId, 0, 255};
  l.seq = seq;
  for (int w = 0; w < writes; ++w) {
    ftc::Write x;
    x.table = AC_NF_TABLE_FLOW;
    x.key = {10, 1, 0, static_cast<uint8_t>(1 + w), 198, 51, 100, 7, 17, 0x9c, 0x40, 0x23, 0x28};
    x.value = Bytes(16, 0);
    x.value[7] = static_cast<uint8_t>(seq);
    x.value[15] = 60;
    l.writes.push_back(x);
  }
  return l;
}

struct Loaded {
  std::unique_ptr<nf::Nf> nf;
  std::optional<nf::InstanceMaps> maps;
  int fd() const { return nf->prog_fd(); }
  uint64_t ftc(const char* name) const {
    auto s = nf::decode_state(*maps);
    must(s.has_value(), "state");
    return (*s)["ftc"]["counters"].value(name, uint64_t{0});
  }
  void peer(uint32_t id) const {
    uint32_t v = 1;
    must(bpf_map_update_elem(maps->fd("nf_peers"), &id, &v, 0) == 0, "nf_peers");
  }
};

Loaded load(nf::Params p) {
  nf::LoadOptions o;
  o.name = "bench-" + std::string(nf::to_string(p.kind));
  o.attach = false;
  auto r = nf::Nf::load(p, o);
  must(r.has_value(), "load " + o.name + ": " + (r ? std::string() : r.error().str()));
  Loaded l;
  l.nf = std::move(*r);
  auto m = nf::InstanceMaps::open(l.nf->published());
  must(m.has_value(), "maps of " + o.name);
  l.maps.emplace(std::move(*m));
  return l;
}

nf::Params monitor() {
  nf::Params p;
  p.kind = nf::Kind::Monitor;
  p.instance_id = kMonitorId;
  p.idle_timeout_s = 600;
  return p;
}
nf::Params firewall() {
  nf::Params p;
  p.kind = nf::Kind::Firewall;
  p.instance_id = 8;
  auto r = nf::parse_rule("drop proto udp dport 53");
  must(r.has_value(), "firewall rule");
  p.fw_rules.push_back(*r);
  return p;
}
nf::Params nat() {
  nf::Params p;
  p.kind = nf::Kind::Nat;
  p.instance_id = 9;
  p.idle_timeout_s = 600;
  inet_pton(AF_INET, "192.0.2.10", &p.nat_address);
  p.nat_port_lo = 20032;
  p.nat_port_hi = 20095;
  return p;
}

// One call, the kernel's duration in ns; checks the verdict.
uint32_t run_once(int fd, const Bytes& f, std::vector<uint8_t>& out, uint32_t want) {
  LIBBPF_OPTS(bpf_test_run_opts, t, .data_in = f.data(), .data_out = out.data(),
              .data_size_in = static_cast<uint32_t>(f.size()), .data_size_out = static_cast<uint32_t>(out.size()),
              .repeat = 1);
  int e = bpf_prog_test_run_opts(fd, &t);
  must(e == 0, "BPF_PROG_TEST_RUN failed");
  if (t.retval != want) throw std::runtime_error("verdict " + std::to_string(t.retval) + ", want " + std::to_string(want));
  return t.duration;
}

double median(std::vector<uint32_t> v) {
  std::nth_element(v.begin(), v.begin() + static_cast<long>(v.size() / 2), v.end());
  return v[v.size() / 2];
}

// Median duration of `calls` calls; make(i) gives the i-th frame (i from 1).
template <class Make>
double measure(int fd, int calls, uint32_t want, Make make) {
  std::vector<uint8_t> out(4096);
  std::vector<uint32_t> d;
  d.reserve(static_cast<size_t>(calls));
  for (int i = 1; i <= calls; ++i) {
    Bytes f = make(static_cast<uint32_t>(i));
    d.push_back(run_once(fd, f, out, want));
  }
  return median(d);
}

json run(int calls) {
  json out = json::array();
  xdp_pass_bpf* empty = xdp_pass_bpf__open_and_load();
  must(empty != nullptr, "load the empty XDP program");
  std::printf("FTC in the built-in NFs: median kernel-timed single run (ns) of %d calls; floor: empty XDP program\n",
              calls);
  std::printf("%-44s %6s %9s %9s %8s %7s\n", "case", "inner", "plain", "FTC", "delta", "ratio");
  for (size_t size : {size_t{64}, size_t{512}, size_t{1500}}) {
    const Bytes in = inner(size);
    const double floor = measure(bpf_program__fd(empty->progs.xdp_pass), calls, XDP_PASS,
                                 [&](uint32_t) { return frame(base(255, std::nullopt), in); });
    auto row = [&](const std::string& name, int log_bytes, double plain, double ftc) {
      std::printf("%-44s %6zu %9.0f %9.0f %+8.0f %6.2fx\n", name.c_str(), size, plain, ftc, ftc - plain, ftc / plain);
      out.push_back({{"case", name}, {"inner_bytes", size}, {"log_bytes", log_bytes}, {"plain_ns", plain},
                     {"ftc_ns", ftc}, {"empty_ns", floor}, {"ratio", ftc / plain}});
    };
    {  // head: the monitor
      Loaded plain = load(monitor()), head = load(monitor());
      double a = measure(plain.fd(), calls, XDP_TX, [&](uint32_t) { return frame(base(255, std::nullopt), in); });
      double b = measure(head.fd(), calls, XDP_TX, [&](uint32_t) { return frame(base(255, 1), in); });
      must(head.ftc("ftc_log_appended") == static_cast<uint64_t>(calls), "monitor: a log per packet");
      row("head: monitor appends its log", static_cast<int>(monitor_log(1, 1).tlv_len()), a, b);
    }
    for (int writes : {1, 2, 3}) {  // replica: the firewall, f = 2, not the tail
      Loaded plain = load(firewall()), rep = load(firewall());
      rep.peer(kMonitorId);
      double a = measure(plain.fd(), calls, XDP_TX, [&](uint32_t) { return frame(base(254, std::nullopt), in); });
      double b = measure(rep.fd(), calls, XDP_TX, [&](uint32_t i) {
        ftc::Nsh n = base(254, 2);
        n.logs.push_back(monitor_log(i, writes));
        return frame(n, in);
      });
      must(rep.ftc("ftc_applied") == static_cast<uint64_t>(calls), "firewall: every log applied");
      const size_t lb = monitor_log(1, writes).tlv_len();
      row("replica: firewall applies a " + std::to_string(lb) + "-byte log", static_cast<int>(lb), a, b);
    }
    {  // tail: the NAT, f = 1
      Loaded plain = load(nat()), tail = load(nat());
      tail.peer(kMonitorId);
      double a = measure(plain.fd(), calls, XDP_TX, [&](uint32_t) { return frame(base(254, std::nullopt), in); });
      double b = measure(tail.fd(), calls, XDP_TX, [&](uint32_t i) {
        ftc::Nsh n = base(254, 1);
        n.logs.push_back(monitor_log(i, 1));
        return frame(n, in);
      });
      must(tail.ftc("ftc_applied") == static_cast<uint64_t>(calls), "NAT: every log applied");
      must(tail.ftc("ftc_tail_stripped") == static_cast<uint64_t>(calls), "NAT: every log stripped");
      row("tail: NAT applies, strips, appends its no-op", static_cast<int>(monitor_log(1, 1).tlv_len()), a, b);
    }
    std::printf("%-44s %6zu %9.0f\n", "(empty XDP program)", size, floor);
  }
  xdp_pass_bpf__destroy(empty);
  return out;
}

// Chains of n = 2..5 hops of the real NF programs, fw -> mon -> nat -> mon -> nat (the first n),
// with FTC (f = 1) and without: each packet of one flow runs through every hop in turn, the
// output frame of one hop the input of the next (the NFs decrement SI and swap MACs as on their
// veth). With FTC the packet starts as the classifier writes it (flow hash, control TLV) plus
// the logs the previous packet still carried at the chain's end, marked WRAPPED: what the egress
// buffer returns and the ingress forwarder piggybacks while the flow is busy (docs/ftc.md 5),
// so the first hops apply and strip the last hops' logs and commit them. The buffer and the
// forwarder themselves (the agent) are not in the timing.
//
// Per length: the kernel's time per packet summed over the hops (the CPU a packet costs the
// chain) and the slowest hop's (each hop is its own node: a pipelined chain's throughput is
// 1 / the slowest hop), both medians over the packets; throughput ratio = plain slowest hop /
// FTC slowest hop. Checked: every log applied in order and every returned log stripped and
// committed at its tail, no gap, nothing refused.
nf::Params chain_hop(size_t k) {
  switch (k) {
    case 0: return firewall();
    case 1: case 3: {
      nf::Params p = monitor();
      p.instance_id = static_cast<uint16_t>(kMonitorId + 10 * (k / 2));
      return p;
    }
    default: {
      nf::Params p = nat();
      p.instance_id = static_cast<uint16_t>(9 + 10 * (k / 3));
      return p;
    }
  }
}

struct ChainResult {
  double sum_ns = 0, max_hop_ns = 0;
  std::vector<double> hop_ns;
};

ChainResult run_chain(size_t n, bool ftc, int calls, const Bytes& in) {
  std::vector<Loaded> hops;
  for (size_t k = 0; k < n; ++k) hops.push_back(load(chain_hop(k)));
  if (ftc)
    for (size_t k = 0; k < n; ++k)
      for (size_t j = 0; j < n; ++j)
        if (j != k) hops[k].peer(chain_hop(j).instance_id);
  std::vector<std::vector<uint32_t>> d(n);
  std::vector<uint32_t> sum, worst;
  std::vector<uint8_t> out(4096);
  std::vector<ftc::Log> returned;
  for (int i = 1; i <= calls; ++i) {
    ftc::Nsh h = base(255, ftc ? std::optional<uint8_t>(1) : std::nullopt);
    h.logs = returned;
    Bytes f = frame(h, in);
    uint32_t total = 0, slowest = 0;
    for (size_t k = 0; k < n; ++k) {
      LIBBPF_OPTS(bpf_test_run_opts, t, .data_in = f.data(), .data_out = out.data(),
                  .data_size_in = static_cast<uint32_t>(f.size()), .data_size_out = static_cast<uint32_t>(out.size()),
                  .repeat = 1);
      must(bpf_prog_test_run_opts(hops[k].fd(), &t) == 0, "BPF_PROG_TEST_RUN failed");
      if (t.retval != XDP_TX)
        throw std::runtime_error("chain of " + std::to_string(n) + ", hop " + std::to_string(k + 1) + ": verdict " +
                                 std::to_string(t.retval));
      d[k].push_back(t.duration);
      total += t.duration;
      slowest = std::max(slowest, t.duration);
      f.assign(out.begin(), out.begin() + t.data_size_out);
    }
    sum.push_back(total);
    worst.push_back(slowest);
    if (ftc) {
      // the chain's end: what the buffer would return to the forwarder
      const size_t nsh_len = size_t{f[14 + 1] & 0x3fu} * 4;
      auto nsh = ftc::decode_nsh(std::span<const uint8_t>(f).subspan(14, nsh_len));
      must(nsh.has_value(), "decode the NSH at the chain's end");
      must(nsh->si == static_cast<uint8_t>(255 - n), "SI at the chain's end");
      returned = nsh->logs;
      for (auto& l : returned) l.flags |= AC_FTC_LOG_WRAPPED;
    }
  }
  if (ftc) {
    const auto c = static_cast<uint64_t>(calls);
    for (size_t k = 0; k < n; ++k) {
      const std::string name = "chain of " + std::to_string(n) + ", hop " + std::to_string(k + 1) + ": ";
      for (const char* bad : {"ftc_gap", "ftc_hold_unavailable", "ftc_stale", "ftc_unknown_mbox", "ftc_bad_tlv",
                              "ftc_overflow", "ftc_own_log", "ftc_stub"})
        must(hops[k].ftc(bad) == 0, name + bad);
      // f = 1: every hop is the tail of its predecessor's log, the first one of the last hop's
      // returned log from the second packet on; the firewall (hop 1) appends none
      must(hops[k].ftc("ftc_tail_stripped") == (k == 0 ? c - 1 : k == 1 ? 0 : c), name + "a log stripped per packet");
    }
    must(hops[0].ftc("ftc_commits") == c - 1, "chain of " + std::to_string(n) + ": the returned log committed");
  }
  ChainResult r;
  for (size_t k = 0; k < n; ++k) r.hop_ns.push_back(median(d[k]));
  r.sum_ns = median(sum);
  r.max_hop_ns = median(worst);
  return r;
}

json run_chains(int calls) {
  json out = json::array();
  const Bytes in = inner(64);
  std::printf("\nFTC against chain length (f = 1; fw -> mon -> nat -> mon -> nat, the first n; 64-byte inner packets):\n"
              "median over %d packets of the kernel's time per packet, summed over the hops and of the slowest hop (ns)\n",
              calls);
  std::printf("%-6s %9s %9s %7s %10s %10s %12s\n", "hops", "plain", "FTC", "ratio", "plain max", "FTC max",
              "throughput");
  for (size_t n = 2; n <= 5; ++n) {
    // interleaved: plain, FTC, plain, FTC; the lower median of each
    ChainResult p = run_chain(n, false, calls, in), f = run_chain(n, true, calls, in);
    ChainResult p2 = run_chain(n, false, calls, in), f2 = run_chain(n, true, calls, in);
    if (p2.sum_ns < p.sum_ns) p = p2;
    if (f2.sum_ns < f.sum_ns) f = f2;
    const double thr = p.max_hop_ns / f.max_hop_ns;
    std::printf("%-6zu %9.0f %9.0f %6.2fx %10.0f %10.0f %11.2fx\n", n, p.sum_ns, f.sum_ns, f.sum_ns / p.sum_ns,
                p.max_hop_ns, f.max_hop_ns, thr);
    out.push_back({{"case", "chain"}, {"hops", n}, {"plain_ns", p.sum_ns}, {"ftc_ns", f.sum_ns},
                   {"ratio", f.sum_ns / p.sum_ns}, {"plain_max_hop_ns", p.max_hop_ns}, {"ftc_max_hop_ns", f.max_hop_ns},
                   {"plain_hop_ns", p.hop_ns}, {"ftc_hop_ns", f.hop_ns}, {"throughput_ratio", thr}});
  }
  return out;
}

}  // namespace
}  // namespace anychain::bench

int main(int argc, char** argv) {
  po::options_description opts(
      "anychain-bench-ftc: per-packet cost of FTC in the built-in NFs (docs/performance.md, \"FTC\").\n"
      "Needs root (BPF).\nOptions");
  opts.add_options()("help,h", "this help")("calls", po::value<int>()->default_value(20000),
                                            "single runs per case (median reported)")(
      "json", po::value<std::string>(), "also write the results as JSON to this file")(
      "bench", po::value<std::string>()->default_value("hops,chain"),
      "what to run, comma-separated: hops (each hop's cost), chain (chains of 2..5 hops), path (the whole "
      "path: fw -> monitor -> NAT behind the fast path, with and without FTC; see bench/ftc_path.cc)")(
      "sizes", po::value<std::string>()->default_value("64,1514"), "path: frame sizes in bytes (64..1514)")(
      "reps", po::value<int>()->default_value(5), "path: interleaved sample pairs per size")(
      "seconds", po::value<double>()->default_value(1.0), "path: seconds measured per sample")(
      "flows", po::value<uint32_t>()->default_value(1), "path: flows per build (1..32)")(
      "chain", po::value<std::string>()->default_value("3"),
      "path: chain lengths, comma-separated, each 2..5: the first n of fw -> monitor -> NAT -> monitor -> NAT")(
      "end-replica", "path: each chain ends in a replica hop (nf: replica, the tail of the last NF's log: "
                     "docs/ftc.md 5.4), so that its end can release packets itself whatever NF is last")(
      "pps", po::value<uint32_t>()->default_value(0), "path: offered packets/s, both builds (0: flat out)")(
      "xdp-time", "path: also the XDP programs' own run time per packet (kernel run-time statistics, "
                  "machine-wide while the bench runs: they add two clock reads to every program run)")(
      "buffer-only", "path: the buffer does not write ac_ftc_egress, so the chain's end releases nothing itself and "
                     "every FTC packet makes the buffer's round trip (the design before the chain's end released "
                     "committed packets; docs/ftc.md 5.1)")(
      "gen-cpu", po::value<int>()->default_value(0), "path: the generator's CPU")(
      "router-cpu", po::value<int>()->default_value(1), "path: the router's (NFs', buffer's) CPU");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, opts), vm);
    po::notify(vm);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "anychain-bench-ftc: %s\n", e.what());
    return 2;
  }
  if (vm.count("help")) {
    std::cout << opts << "\n";
    return 0;
  }
  if (::geteuid() != 0) {
    std::fprintf(stderr, "anychain-bench-ftc: needs root (BPF)\n");
    return 2;
  }
  const int calls = vm["calls"].as<int>();
  if (calls < 1 || calls > 10'000'000) {
    std::fprintf(stderr, "anychain-bench-ftc: --calls must be 1..10000000\n");
    return 2;
  }
  try {
    bool hops = false, chain = false, path = false;
    std::stringstream list(vm["bench"].as<std::string>());
    for (std::string w; std::getline(list, w, ',');) {
      if (w == "hops") hops = true;
      else if (w == "chain") chain = true;
      else if (w == "path") path = true;
      else {
        std::fprintf(stderr, "anychain-bench-ftc: --bench: unknown '%s' (hops, chain, path)\n", w.c_str());
        return 2;
      }
    }
    json out = json::array();
    if (hops) out = anychain::bench::run(calls);
    if (chain)
      for (auto& x : anychain::bench::run_chains(calls)) out.push_back(std::move(x));
    if (path) {
      anychain::bench::FtcPathOptions o;
      o.sizes.clear();
      std::stringstream sizes(vm["sizes"].as<std::string>());
      for (std::string w; std::getline(sizes, w, ',');) o.sizes.push_back(std::stoul(w));
      o.reps = vm["reps"].as<int>();
      o.seconds = vm["seconds"].as<double>();
      o.flows = vm["flows"].as<uint32_t>();
      o.chains.clear();
      std::stringstream chains(vm["chain"].as<std::string>());
      for (std::string w; std::getline(chains, w, ',');) o.chains.push_back(std::stoi(w));
      o.pps = vm["pps"].as<uint32_t>();
      o.end_replica = vm.count("end-replica") > 0;
      o.xdp_time = vm.count("xdp-time") > 0;
      o.fast_release = vm.count("buffer-only") == 0;
      o.gen_cpu = vm["gen-cpu"].as<int>();
      o.router_cpu = vm["router-cpu"].as<int>();
      if (auto e = anychain::test::enter_sandbox(); !e.empty()) throw std::runtime_error(e);
      for (auto& x : anychain::bench::run_ftc_path(o)) out.push_back(std::move(x));
    }
    if (vm.count("json")) {
      FILE* f = std::fopen(vm["json"].as<std::string>().c_str(), "w");
      if (!f) throw std::runtime_error("cannot write " + vm["json"].as<std::string>());
      std::fputs(out.dump(2).c_str(), f);
      std::fclose(f);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "anychain-bench-ftc: %s\n", e.what());
    return 1;
  }
  return 0;
}
