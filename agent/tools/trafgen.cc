// anychain-trafgen: UDP flows carrying the lab payload. See docs/tools.md.
//
// Flows arrive at --flows-per-sec (fixed spacing or Poisson) during --duration seconds; each
// flow is one connected UDP socket with its own ephemeral source port and sends
// ceil(flow-duration * flow-rate) packets at --flow-rate. Every flow runs to its end, so the
// generator stops by itself after at most duration + flow-duration seconds (earlier on
// SIGINT/SIGTERM), then prints a JSON summary.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <boost/program_options.hpp>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <iostream>
#include <memory>
#include <optional>
#include <algorithm>
#include <queue>
#include <random>
#include <string>
#include <vector>

#include "tools/common.h"
#include "tools/packet.h"

namespace po = boost::program_options;
using namespace anychain::tools;

namespace {

struct Options {
  std::string dst;
  std::uint16_t dport = 0;
  std::string src;
  double flows_per_sec = 0;
  double flow_duration = 1;
  double flow_rate = 10;
  double duration = 1;
  std::size_t payload_size = 64;
  std::uint64_t seed = 1;
  std::uint64_t max_flows = 0;
  std::uint32_t flow_id_base = 1;
  std::string arrivals = "fixed";
  std::string json;
};

struct Address {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family = 0;
};

std::optional<Address> parse_address(const std::string& s, std::uint16_t port) {
  Address a;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&a.ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.ss);
  if (inet_pton(AF_INET, s.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    a.len = sizeof(sockaddr_in);
    a.family = AF_INET;
    return a;
  }
  if (inet_pton(AF_INET6, s.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    a.len = sizeof(sockaddr_in6);
    a.family = AF_INET6;
    return a;
  }
  return std::nullopt;
}

struct Flow {
  Fd sock;
  std::uint32_t id = 0;
  std::uint32_t sent = 0;
  std::uint64_t start_ns = 0;
};

struct Due {
  std::uint64_t at_ns;
  std::size_t flow;  // index into flows
  bool operator>(const Due& o) const { return at_ns > o.at_ns; }
};

void sleep_until(std::uint64_t t_ns) {
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(t_ns / 1'000'000'000ULL);
  ts.tv_nsec = static_cast<long>(t_ns % 1'000'000'000ULL);
  // EINTR on a stop signal: the caller's loop checks stop_requested().
  (void)clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr);
}

int parse_options(int argc, char** argv, Options& o) {
  po::options_description desc(
      "anychain-trafgen: UDP flows with the anychain lab payload\n\n"
      "Examples:\n"
      "  # 50 new flows/s for 10 s, each 2 s long at 100 packets/s, to 10.0.2.2:9000\n"
      "  anychain-trafgen --dst 10.0.2.2 --dport 9000 --flows-per-sec 50 --flow-duration 2 \\\n"
      "                   --flow-rate 100 --duration 10\n"
      "  # IPv6, Poisson arrivals, at most 200 flows, summary to a file\n"
      "  anychain-trafgen --dst fd00::2 --dport 9000 --flows-per-sec 20 --arrivals poisson \\\n"
      "                   --seed 7 --max-flows 200 --duration 30 --json /tmp/gen.json\n\n"
      "Options");
  desc.add_options()("help,h", "show this help")(
      "dst", po::value(&o.dst)->required(), "destination IPv4 or IPv6 address")(
      "dport", po::value(&o.dport)->required(), "destination UDP port")(
      "src", po::value(&o.src), "source address to bind (default: chosen by the kernel)")(
      "flows-per-sec", po::value(&o.flows_per_sec)->required(), "new flows per second (> 0)")(
      "flow-duration", po::value(&o.flow_duration)->default_value(1.0), "seconds each flow lasts")(
      "flow-rate", po::value(&o.flow_rate)->default_value(10.0), "packets per second per flow")(
      "duration", po::value(&o.duration)->default_value(1.0),
      "seconds during which new flows start")(
      "payload-size", po::value(&o.payload_size)->default_value(64),
      "UDP payload bytes (>= 36, the lab payload; the rest is zero)")(
      "seed", po::value(&o.seed)->default_value(1), "seed of the Poisson arrivals")(
      "max-flows", po::value(&o.max_flows)->default_value(0), "stop starting flows after N (0 = no limit)")(
      "flow-id-base", po::value(&o.flow_id_base)->default_value(1),
      "flow id of the first flow (ids are consecutive); use disjoint ranges for parallel generators")(
      "arrivals", po::value(&o.arrivals)->default_value("fixed"),
      "fixed: flows evenly spaced; poisson: exponential gaps (seeded)")(
      "json", po::value(&o.json), "also write the summary JSON to this file");
  po::variables_map vm;
  if (auto rc = parse_command_line(argc, argv, desc, vm, "anychain-trafgen")) return *rc;
  if (!(o.flows_per_sec > 0) || !(o.flow_rate > 0) || !(o.flow_duration > 0) ||
      !(o.duration > 0) || o.duration > 86400 || o.flow_duration > 86400) {
    std::cerr << "anychain-trafgen: --flows-per-sec, --flow-rate, --flow-duration and --duration "
                 "must be > 0 (durations at most a day)\n";
    return 2;
  }
  if (o.payload_size < AC_LAB_PAYLOAD_LEN || o.payload_size > 65000) {
    std::cerr << "anychain-trafgen: --payload-size must be " << AC_LAB_PAYLOAD_LEN
              << "..65000\n";
    return 2;
  }
  if (o.arrivals != "fixed" && o.arrivals != "poisson") {
    std::cerr << "anychain-trafgen: --arrivals must be fixed or poisson\n";
    return 2;
  }
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (int rc = parse_options(argc, argv, o); rc >= 0) return rc;
  auto dst = parse_address(o.dst, o.dport);
  if (!dst) {
    std::cerr << "anychain-trafgen: --dst '" << o.dst << "' is not an IPv4/IPv6 address\n";
    return 2;
  }
  std::optional<Address> src;
  if (!o.src.empty()) {
    src = parse_address(o.src, 0);
    if (!src || src->family != dst->family) {
      std::cerr << "anychain-trafgen: --src must be an address of the same family as --dst\n";
      return 2;
    }
  }
  // One socket per concurrent flow: raise the fd limit as far as we may.
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &rl);
  }
  install_stop_signals();

  const auto per_flow = static_cast<std::uint32_t>(
      std::max(1.0, std::ceil(o.flow_duration * o.flow_rate - 1e-9)));
  const double gap_ns = 1e9 / o.flow_rate;
  std::mt19937_64 rng(o.seed);
  const bool fixed = o.arrivals == "fixed";
  // Fixed arrivals: flow k starts at k / R, for k < ceil(duration * R) (no accumulated
  // rounding, so 3 flows/s for 1 s is exactly 3 flows).
  const auto fixed_flows =
      static_cast<std::uint64_t>(std::ceil(o.duration * o.flows_per_sec - 1e-9));
  auto poisson_gap_ns = [&]() -> double {
    // Exponential gap from a uniform in (0, 1]; computed here rather than with
    // std::exponential_distribution so that a seed gives the same arrivals everywhere.
    const double u = (double(rng() >> 11) + 1.0) / 9007199254740992.0;
    return -std::log(u) * 1e9 / o.flows_per_sec;
  };

  std::vector<std::uint8_t> payload(o.payload_size, 0);
  std::vector<std::unique_ptr<Flow>> flows;  // active flows; a finished flow's slot is reused
  std::vector<std::size_t> free_slots;
  std::priority_queue<Due, std::vector<Due>, std::greater<>> due;
  std::uint64_t flows_started = 0, flows_completed = 0, flows_failed = 0;
  std::uint64_t packets_sent = 0, bytes_sent = 0, send_errors = 0;
  std::string first_error;

  const std::uint64_t t0 = mono_ns();
  double next_offset_ns = 0;  // start of the next flow, relative to t0
  auto arrivals_open = [&] {
    const std::uint64_t k = flows_started + flows_failed;
    if (o.max_flows != 0 && k >= o.max_flows) return false;
    return fixed ? k < fixed_flows : next_offset_ns < o.duration * 1e9;
  };
  auto next_arrival = [&] { return t0 + static_cast<std::uint64_t>(next_offset_ns); };

  while (!stop_requested()) {
    const bool open = arrivals_open();
    if (!open && due.empty()) break;
    std::uint64_t t_next = due.empty() ? UINT64_MAX : due.top().at_ns;
    if (open) t_next = std::min(t_next, next_arrival());
    if (t_next > mono_ns()) sleep_until(t_next);
    if (stop_requested()) break;
    const std::uint64_t now = mono_ns();

    while (arrivals_open() && next_arrival() <= now) {
      const std::uint64_t start = next_arrival();
      next_offset_ns = fixed ? double(flows_started + flows_failed + 1) * 1e9 / o.flows_per_sec
                             : next_offset_ns + poisson_gap_ns();
      auto f = std::make_unique<Flow>();
      f->id = o.flow_id_base + static_cast<std::uint32_t>(flows_started + flows_failed);
      f->start_ns = start;
      f->sock = Fd(::socket(dst->family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
      bool ok = static_cast<bool>(f->sock);
      if (ok && src) {
        ok = ::bind(f->sock.get(), reinterpret_cast<const sockaddr*>(&src->ss), src->len) == 0;
      }
      if (ok) {
        ok = ::connect(f->sock.get(), reinterpret_cast<const sockaddr*>(&dst->ss), dst->len) == 0;
      }
      if (!ok) {
        if (first_error.empty()) first_error = errno_text("flow socket");
        ++flows_failed;
        continue;
      }
      ++flows_started;
      std::size_t slot = flows.size();
      if (!free_slots.empty()) {
        slot = free_slots.back();
        free_slots.pop_back();
        flows[slot] = std::move(f);
      } else {
        flows.push_back(std::move(f));
      }
      due.push(Due{start, slot});
    }

    while (!due.empty() && due.top().at_ns <= now) {
      const Due d = due.top();
      due.pop();
      Flow& f = *flows[d.flow];
      LabPayload p;
      p.flow_id = f.id;
      p.seq = f.sent;
      p.send_ts_ns = real_ns();
      write_lab_payload(payload, p);
      const ssize_t n = ::send(f.sock.get(), payload.data(), payload.size(), 0);
      if (n < 0) {
        if (first_error.empty()) first_error = errno_text("send");
        ++send_errors;
      } else {
        ++packets_sent;
        bytes_sent += static_cast<std::uint64_t>(n);
      }
      ++f.sent;
      if (f.sent < per_flow) {
        due.push(Due{f.start_ns + static_cast<std::uint64_t>(f.sent * gap_ns), d.flow});
      } else {
        ++flows_completed;
        flows[d.flow].reset();  // closes the socket
        free_slots.push_back(d.flow);
      }
    }
  }

  const double elapsed = double(mono_ns() - t0) / 1e9;
  Json j = {{"tool", "anychain-trafgen"},
            {"dst", o.dst},
            {"dport", o.dport},
            {"arrivals", o.arrivals},
            {"flows_started", flows_started},
            {"flows_completed", flows_completed},
            {"flows_failed", flows_failed},
            {"packets_per_flow", per_flow},
            {"packets_sent", packets_sent},
            {"bytes_sent", bytes_sent},
            {"send_errors", send_errors},
            {"first_flow_id", o.flow_id_base},
            {"elapsed_s", elapsed},
            {"interrupted", stop_requested()}};
  if (!first_error.empty()) j["first_error"] = first_error;
  const std::string s = j.dump() + "\n";
  std::cout << s << std::flush;
  if (!o.json.empty()) {
    if (auto w = write_file_atomic(o.json, s); !w) {
      std::cerr << "anychain-trafgen: " << w.error() << "\n";
      return 1;
    }
  }
  return flows_started > 0 ? 0 : 1;
}
