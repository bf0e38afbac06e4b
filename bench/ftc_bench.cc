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
// at inner packets of 64, 512 and 1500 bytes. Every call's verdict and the FTC counters are
// checked (every log applied in order, nothing refused); a run that does not add up fails.
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
#include <string>
#include <vector>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include "anychain/nf.h"
#include "common/packet.h"
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

}  // namespace
}  // namespace anychain::bench

int main(int argc, char** argv) {
  po::options_description opts(
      "anychain-bench-ftc: per-packet cost of FTC in the built-in NFs (docs/performance.md, \"FTC\").\n"
      "Needs root (BPF).\nOptions");
  opts.add_options()("help,h", "this help")("calls", po::value<int>()->default_value(20000),
                                            "single runs per case (median reported)")(
      "json", po::value<std::string>(), "also write the results as JSON to this file");
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
    json out = anychain::bench::run(calls);
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
