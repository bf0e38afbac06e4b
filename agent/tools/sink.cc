// anychain-sink: receives the lab traffic and counts it per flow and per serving instance.
// See docs/tools.md for the JSON it writes.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/program_options.hpp>
#include <cerrno>
#include <cstring>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "tools/common.h"
#include "tools/packet.h"

namespace po = boost::program_options;
using namespace anychain::tools;

namespace {

struct Options {
  std::uint16_t port = 0;
  std::string bind_addr = "::";
  std::string json;
  double interval = 1.0;
  double duration = 0;
  bool no_per_flow = false;
};

// Packets per instance id at each served_by slot; id 0 = not served at that slot.
using SlotCounts = std::array<std::map<std::uint32_t, std::uint64_t>, AC_LAB_SLOTS>;

constexpr std::size_t kMaxSources = 8;
// At most this many instances of a flow's sequence are kept per slot (changes are all counted).
constexpr std::size_t kSequenceKept = 16;

struct FlowStats {
  std::uint64_t packets = 0;
  std::uint32_t max_seq = 0;
  std::uint64_t reordered = 0;  // arrived with a seq below one seen before
  SlotCounts instances;
  // packets per "addr:port" the flow's datagrams came from (a NAT on the way shows its mapping
  // here, and a new mapping when it lost its state); at most kMaxSources, the rest under "other"
  std::map<std::string, std::uint64_t> sources;
  // per slot: the serving instances in arrival order, one entry per run (0 = unserved), and how
  // many times the serving instance changed
  std::array<std::vector<std::uint32_t>, AC_LAB_SLOTS> sequence;
  std::array<std::uint64_t, AC_LAB_SLOTS> changes{};
  std::array<std::uint32_t, AC_LAB_SLOTS> last{};  // instance of the latest packet
};

struct Interval {
  double t_start = 0;
  double t_end = 0;
  std::uint64_t packets = 0;
  SlotCounts per_slot;
};

struct State {
  std::uint64_t packets = 0;
  std::uint64_t bytes = 0;
  std::uint64_t non_lab = 0;
  std::uint64_t latency_count = 0;
  double latency_sum_us = 0;
  double latency_max_us = 0;
  SlotCounts per_slot;
  std::map<std::uint32_t, FlowStats> flows;
  std::vector<Interval> intervals;  // closed intervals
  Interval current;
};

Json slots_json(const SlotCounts& s) {
  Json out = Json::array();
  for (unsigned slot = 0; slot < AC_LAB_SLOTS; ++slot) {
    std::uint64_t unserved = 0;
    Json instances = Json::object();
    for (const auto& [id, n] : s[slot]) {
      if (id == 0)
        unserved = n;
      else
        instances[std::to_string(id)] = n;
    }
    out.push_back({{"slot", slot}, {"instances", instances}, {"unserved", unserved}});
  }
  return out;
}

// A flow "switched" if some slot saw more than one serving instance.
bool switched(const FlowStats& f) {
  for (const auto& m : f.instances) {
    std::size_t served = 0;
    for (const auto& [id, n] : m) served += id != 0;
    if (served > 1) return true;
  }
  return false;
}

// A flow "moved more than once" if the instance serving it at some slot changed twice or more.
bool moved_twice(const FlowStats& f) {
  return std::any_of(f.changes.begin(), f.changes.end(), [](std::uint64_t c) { return c > 1; });
}

std::string render(const Options& o, const State& s, double elapsed, bool final) {
  std::uint64_t sw = 0, twice = 0;
  for (const auto& [id, f] : s.flows) {
    sw += switched(f);
    twice += moved_twice(f);
  }
  Json j = {{"tool", "anychain-sink"},
            {"port", o.port},
            {"elapsed_s", elapsed},
            {"final", final},
            {"packets", s.packets},
            {"bytes", s.bytes},
            {"non_lab", s.non_lab},
            {"flows", s.flows.size()},
            {"flows_switched", sw},
            {"flows_moved_twice", twice},
            {"latency_us",
             {{"mean", s.latency_count ? s.latency_sum_us / double(s.latency_count) : 0.0}, {"max", s.latency_max_us}}},
            {"per_slot", slots_json(s.per_slot)}};
  Json intervals = Json::array();
  for (const auto& iv : s.intervals)
    intervals.push_back({{"t_start", iv.t_start}, {"t_end", iv.t_end}, {"packets", iv.packets},
                         {"per_slot", slots_json(iv.per_slot)}});
  j["intervals"] = std::move(intervals);
  if (final && !o.no_per_flow) {
    Json per_flow = Json::array();
    for (const auto& [id, f] : s.flows) {
      Json served_by = Json::array();
      for (const auto& m : f.instances) {
        Json ids = Json::array();
        for (const auto& [inst, n] : m)
          if (inst != 0) ids.push_back(inst);
        served_by.push_back(std::move(ids));
      }
      Json sequence = Json::array(), changes = Json::array();
      for (unsigned slot = 0; slot < AC_LAB_SLOTS; ++slot) {
        sequence.push_back(f.sequence[slot]);
        changes.push_back(f.changes[slot]);
      }
      per_flow.push_back({{"flow_id", id}, {"packets", f.packets}, {"max_seq", f.max_seq},
                          {"reordered", f.reordered}, {"served_by", std::move(served_by)},
                          {"sequence", std::move(sequence)}, {"changes", std::move(changes)}, {"sources", f.sources}});
    }
    j["per_flow"] = std::move(per_flow);
  }
  return j.dump() + "\n";
}

// "addr:port" of a datagram's sender (an IPv4 sender on the dual-stack socket as plain IPv4)
std::string source_of(const sockaddr_in6& a) {
  char b[INET6_ADDRSTRLEN];
  if (IN6_IS_ADDR_V4MAPPED(&a.sin6_addr)) {
    inet_ntop(AF_INET, &a.sin6_addr.s6_addr[12], b, sizeof b);
    return std::string(b) + ":" + std::to_string(ntohs(a.sin6_port));
  }
  if (a.sin6_family == AF_INET) {
    const auto& v4 = reinterpret_cast<const sockaddr_in&>(a);
    inet_ntop(AF_INET, &v4.sin_addr, b, sizeof b);
    return std::string(b) + ":" + std::to_string(ntohs(v4.sin_port));
  }
  inet_ntop(AF_INET6, &a.sin6_addr, b, sizeof b);
  return "[" + std::string(b) + "]:" + std::to_string(ntohs(a.sin6_port));
}

void account(State& s, std::span<const std::uint8_t> data, std::uint64_t now_real, const sockaddr_in6& from) {
  ++s.packets;
  s.bytes += data.size();
  auto p = read_lab_payload(data);
  if (!p) {
    ++s.non_lab;
    return;
  }
  ++s.current.packets;
  FlowStats& f = s.flows[p->flow_id];
  std::string src = source_of(from);
  if (f.sources.size() >= kMaxSources && !f.sources.count(src)) src = "other";
  ++f.sources[src];
  if (f.packets > 0 && p->seq < f.max_seq) ++f.reordered;
  f.max_seq = f.packets == 0 ? p->seq : std::max(f.max_seq, p->seq);
  ++f.packets;
  for (unsigned slot = 0; slot < AC_LAB_SLOTS; ++slot) {
    const std::uint32_t id = p->served_by[slot];
    ++s.per_slot[slot][id];
    ++s.current.per_slot[slot][id];
    ++f.instances[slot][id];
    auto& seq = f.sequence[slot];
    if (f.packets == 1) {
      seq.push_back(id);
    } else if (f.last[slot] != id) {
      ++f.changes[slot];
      if (seq.size() < kSequenceKept) seq.push_back(id);
    }
    f.last[slot] = id;
  }
  if (now_real >= p->send_ts_ns) {
    const double us = double(now_real - p->send_ts_ns) / 1e3;
    ++s.latency_count;
    s.latency_sum_us += us;
    s.latency_max_us = std::max(s.latency_max_us, us);
  }
}

int parse_options(int argc, char** argv, Options& o) {
  po::options_description desc(
      "anychain-sink: counts lab traffic per flow and per serving instance\n\n"
      "Examples:\n"
      "  anychain-sink --port 9000 --json /tmp/sink.json --interval 1\n"
      "  anychain-sink --port 9000 --bind 10.0.2.2 --duration 30 --json /tmp/sink.json\n\n"
      "Options");
  desc.add_options()("help,h", "show this help")(
      "port", po::value(&o.port)->required(), "UDP port to receive on")(
      "bind", po::value(&o.bind_addr)->default_value("::"),
      "address to bind; '::' (default) receives IPv4 and IPv6")(
      "json", po::value(&o.json), "write the counters as JSON here, every interval and at exit")(
      "interval", po::value(&o.interval)->default_value(1.0),
      "seconds per interval (JSON rewrite and per-interval instance counts)")(
      "duration", po::value(&o.duration)->default_value(0),
      "exit after this many seconds (0 = run until SIGTERM/SIGINT)")(
      "no-per-flow", po::bool_switch(&o.no_per_flow),
      "leave the per-flow list out of the final JSON (periodic writes never carry it)");
  po::variables_map vm;
  if (auto rc = parse_command_line(argc, argv, desc, vm, "anychain-sink")) return *rc;
  if (!(o.interval > 0) || o.duration < 0) {
    std::cerr << "anychain-sink: --interval must be > 0 and --duration >= 0\n";
    return 2;
  }
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (int rc = parse_options(argc, argv, o); rc >= 0) return rc;

  sockaddr_storage ss{};
  socklen_t len = 0;
  int family = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET6, o.bind_addr.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(o.port);
    len = sizeof(sockaddr_in6);
    family = AF_INET6;
  } else if (inet_pton(AF_INET, o.bind_addr.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(o.port);
    len = sizeof(sockaddr_in);
    family = AF_INET;
  } else {
    std::cerr << "anychain-sink: --bind '" << o.bind_addr << "' is not an address\n";
    return 2;
  }
  Fd fd(::socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) {
    std::cerr << "anychain-sink: " << errno_text("socket") << "\n";
    return 1;
  }
  int zero = 0, one = 1;
  if (family == AF_INET6) {
    (void)::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
  }
  (void)::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  int rcvbuf = 8 << 20;
  (void)::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    std::cerr << "anychain-sink: " << errno_text("bind port " + std::to_string(o.port)) << "\n";
    return 1;
  }
  install_stop_signals();

  State s;
  const std::uint64_t t0 = mono_ns();
  const auto interval_ns = static_cast<std::uint64_t>(o.interval * 1e9);
  const std::uint64_t end = o.duration > 0 ? t0 + static_cast<std::uint64_t>(o.duration * 1e9)
                                           : UINT64_MAX;
  std::uint64_t interval_end = t0 + interval_ns;
  s.current.t_start = 0;

  auto emit = [&](bool final) {
    const std::string out = render(o, s, double(mono_ns() - t0) / 1e9, final);
    if (!o.json.empty()) {
      if (auto w = write_file_atomic(o.json, out); !w) {
        std::cerr << "anychain-sink: " << w.error() << "\n";
      }
    }
    return out;
  };
  emit(false);  // the file's existence tells a harness that the port is bound

  constexpr std::size_t kBatch = 64;
  constexpr std::size_t kBuf = 65536;
  std::vector<std::vector<std::uint8_t>> bufs(kBatch, std::vector<std::uint8_t>(kBuf));
  std::vector<iovec> iov(kBatch);
  std::vector<mmsghdr> msgs(kBatch);
  std::vector<sockaddr_in6> from(kBatch);

  while (!stop_requested()) {
    std::uint64_t now = mono_ns();
    if (now >= interval_end) {
      s.current.t_end = double(interval_end - t0) / 1e9;
      s.intervals.push_back(std::move(s.current));
      s.current = Interval{};
      s.current.t_start = double(interval_end - t0) / 1e9;
      interval_end += interval_ns;
      if (interval_end <= now) interval_end = now + interval_ns;  // we were stalled
      emit(false);
    }
    if (now >= end) break;
    const std::uint64_t wake = std::min(interval_end, end);
    const int wait_ms = static_cast<int>(std::min<std::uint64_t>(100, (wake - now) / 1'000'000 + 1));
    pollfd pfd{fd.get(), POLLIN, 0};
    const int pr = ::poll(&pfd, 1, wait_ms);
    if (pr < 0) {
      if (errno == EINTR) continue;
      std::cerr << "anychain-sink: " << errno_text("poll") << "\n";
      break;
    }
    if (pr == 0) continue;
    for (int round = 0; round < 16; ++round) {
      for (std::size_t i = 0; i < kBatch; ++i) {
        iov[i] = iovec{bufs[i].data(), bufs[i].size()};
        msgs[i] = mmsghdr{};
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        from[i] = sockaddr_in6{};
        msgs[i].msg_hdr.msg_name = &from[i];
        msgs[i].msg_hdr.msg_namelen = sizeof from[i];
      }
      const int n = ::recvmmsg(fd.get(), msgs.data(), kBatch, MSG_DONTWAIT, nullptr);
      if (n <= 0) break;
      const std::uint64_t now_real = real_ns();
      for (int i = 0; i < n; ++i) {
        account(s, std::span<const std::uint8_t>(bufs[i].data(), msgs[i].msg_len), now_real, from[i]);
      }
      if (static_cast<std::size_t>(n) < kBatch) break;
    }
  }
  // Close the running interval so that the last packets show up per interval too.
  s.current.t_end = double(mono_ns() - t0) / 1e9;
  if (s.current.packets > 0 || s.intervals.empty()) s.intervals.push_back(std::move(s.current));
  std::cout << emit(true) << std::flush;
  return 0;
}
