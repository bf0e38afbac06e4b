// anychain-vnf: a lab VNF on one interface. See docs/tools.md.
//
// nsh mode: NSH over Ethernet in, SI - 1 and MACs swapped, back out the same interface.
// plain mode: bare IPv4/IPv6 in (an NSH-unaware VNF behind the SFC proxy), MACs swapped, back out.
// Both stamp the lab payload's served_by[slot] with --instance-id and can be rate limited with
// --capacity so that load is real.
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/program_options.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "tools/common.h"
#include "tools/packet.h"

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif

namespace po = boost::program_options;
using namespace anychain::tools;

namespace {

struct Options {
  std::string iface;
  std::string mode = "nsh";
  std::uint32_t instance_id = 0;
  unsigned slot = 0;
  double capacity = 0;
  double burst = 0;
  std::string stats_json;
  double stats_interval = 1.0;
  bool promisc = false;
};

struct Counters {
  std::uint64_t rx = 0;                // unicast frames for us (or any unicast with --promisc)
  std::uint64_t tx = 0;
  std::uint64_t served = 0;            // lab payloads stamped
  std::uint64_t dropped_capacity = 0;
  std::uint64_t dropped_malformed = 0;
  std::uint64_t dropped_si_zero = 0;
  std::uint64_t non_nsh = 0;           // nsh mode: frames that are not NSH over Ethernet
  std::uint64_t non_ip = 0;            // plain mode: frames that are not IPv4/IPv6
  std::uint64_t other_host = 0;        // frames for another MAC (seen without --promisc)
  std::uint64_t not_unicast = 0;       // broadcast and multicast frames: never served
  std::uint64_t link_control = 0;      // plain mode: IPv6 neighbour discovery, not served
  std::uint64_t rx_truncated = 0;      // larger than the receive buffer (counted malformed too)
  std::uint64_t tx_errors = 0;
  std::map<std::string, std::uint64_t> malformed_by_reason;
};

constexpr std::size_t kBatch = 64;
constexpr std::size_t kFrameBuf = 16384;

std::string stats_json(const Options& o, const Counters& c, double rx_pps, double tx_pps,
                       double uptime_s, bool final) {
  Json j = {{"tool", "anychain-vnf"},
            {"iface", o.iface},
            {"mode", o.mode},
            {"instance_id", o.instance_id},
            {"slot", o.slot},
            {"capacity_pps", o.capacity},
            {"uptime_s", uptime_s},
            {"final", final},
            {"rx", c.rx},
            {"tx", c.tx},
            {"served", c.served},
            {"dropped_capacity", c.dropped_capacity},
            {"dropped_malformed", c.dropped_malformed},
            {"dropped_si_zero", c.dropped_si_zero},
            {"non_nsh", c.non_nsh},
            {"non_ip", c.non_ip},
            {"other_host", c.other_host},
            {"not_unicast", c.not_unicast},
            {"link_control", c.link_control},
            {"rx_truncated", c.rx_truncated},
            {"tx_errors", c.tx_errors},
            {"rx_pps", rx_pps},
            {"tx_pps", tx_pps},
            {"malformed_by_reason", c.malformed_by_reason}};
  return j.dump() + "\n";
}

int parse_options(int argc, char** argv, Options& o) {
  po::options_description desc(
      "anychain-vnf: lab VNF bound to one interface (AF_PACKET)\n\n"
      "Examples:\n"
      "  anychain-vnf --iface veth-fw1 --mode nsh --instance-id 11 --slot 0\n"
      "  anychain-vnf --iface veth-nat --mode plain --instance-id 21 --slot 1 --capacity 20000 \\\n"
      "               --stats-json /tmp/vnf21.json --stats-interval 2\n\n"
      "Options");
  desc.add_options()("help,h", "show this help")(
      "iface", po::value(&o.iface)->required(), "interface to receive on and send back out of")(
      "mode", po::value(&o.mode)->default_value("nsh"),
      "nsh: NSH over Ethernet (0x894F), SI is decremented; plain: bare IPv4/IPv6 "
      "(NSH-unaware, behind the SFC proxy)")(
      "instance-id", po::value(&o.instance_id)->required(),
      "this instance's id (!= 0), written into the lab payload's served_by[slot]")(
      "slot", po::value(&o.slot)->default_value(0), "served_by slot 0..3 (position in the chain)")(
      "capacity", po::value(&o.capacity)->default_value(0),
      "packets per second this VNF can serve; beyond it packets are dropped and counted "
      "(0 = unlimited)")(
      "burst", po::value(&o.burst)->default_value(0),
      "token bucket depth in packets (0 = capacity/10, at least 1)")(
      "stats-json", po::value(&o.stats_json), "write counters as JSON to this file")(
      "stats-interval", po::value(&o.stats_interval)->default_value(1.0),
      "seconds between two stats writes")(
      "promisc", po::bool_switch(&o.promisc),
      "also serve frames addressed to other MACs (promiscuous mode)");
  po::variables_map vm;
  if (auto rc = parse_command_line(argc, argv, desc, vm, "anychain-vnf")) return *rc;
  if (o.mode != "nsh" && o.mode != "plain") {
    std::cerr << "anychain-vnf: --mode must be nsh or plain, not '" << o.mode << "'\n";
    return 2;
  }
  if (o.instance_id == 0) {
    std::cerr << "anychain-vnf: --instance-id must not be 0 (0 means \"not served\")\n";
    return 2;
  }
  if (o.slot >= AC_LAB_SLOTS) {
    std::cerr << "anychain-vnf: --slot must be 0.." << AC_LAB_SLOTS - 1 << "\n";
    return 2;
  }
  if (o.capacity < 0 || o.burst < 0 || !(o.stats_interval > 0)) {
    std::cerr << "anychain-vnf: --capacity and --burst must be >= 0, --stats-interval > 0\n";
    return 2;
  }
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (int rc = parse_options(argc, argv, o); rc >= 0) return rc;
  const bool nsh_mode = o.mode == "nsh";

  const unsigned ifindex = if_nametoindex(o.iface.c_str());
  if (ifindex == 0) {
    std::cerr << "anychain-vnf: " << errno_text("interface " + o.iface) << "\n";
    return 1;
  }
  // Protocol 0 at socket(): nothing is queued before bind() narrows it to our interface.
  Fd fd(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0));
  if (!fd) {
    std::cerr << "anychain-vnf: " << errno_text("socket(AF_PACKET)") << "\n";
    return 1;
  }
  sockaddr_ll sll{};
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_ALL);
  sll.sll_ifindex = static_cast<int>(ifindex);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sll), sizeof sll) != 0) {
    std::cerr << "anychain-vnf: " << errno_text("bind " + o.iface) << "\n";
    return 1;
  }
  int one = 1;
  // Our own transmissions must not come back to us. Older kernels lack the option; the
  // sll_pkttype check below covers them.
  (void)::setsockopt(fd.get(), SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);
  int rcvbuf = 4 << 20;
  (void)::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf);
  if (o.promisc) {
    packet_mreq mr{};
    mr.mr_ifindex = static_cast<int>(ifindex);
    mr.mr_type = PACKET_MR_PROMISC;
    if (::setsockopt(fd.get(), SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr) != 0) {
      std::cerr << "anychain-vnf: " << errno_text("promiscuous mode") << "\n";
      return 1;
    }
  }
  install_stop_signals();

  const std::uint64_t start = mono_ns();
  // The bucket runs on the kernel's receive timestamps (CLOCK_REALTIME, SO_TIMESTAMPNS), so
  // the capacity applies to arrivals and does not shrink when this process is descheduled.
  int ts_on = 1;
  const bool have_rx_ts =
      ::setsockopt(fd.get(), SOL_SOCKET, SO_TIMESTAMPNS, &ts_on, sizeof ts_on) == 0;
  TokenBucket bucket(o.capacity, o.burst > 0 ? o.burst : o.capacity / 10, real_ns());
  Counters c;
  std::uint64_t last_stats = start, last_rx = 0, last_tx = 0;
  double rx_pps = 0, tx_pps = 0;
  const auto interval_ns = static_cast<std::uint64_t>(o.stats_interval * 1e9);

  auto emit = [&](bool final) {
    const std::uint64_t now = mono_ns();
    const std::string s = stats_json(o, c, rx_pps, tx_pps, double(now - start) / 1e9, final);
    if (!o.stats_json.empty()) {
      if (auto w = write_file_atomic(o.stats_json, s); !w) {
        std::cerr << "anychain-vnf: " << w.error() << "\n";
      }
    }
    if (final) std::cout << s << std::flush;
  };
  emit(false);  // the file's existence tells a harness that the socket is bound

  std::vector<std::vector<std::uint8_t>> bufs(kBatch, std::vector<std::uint8_t>(kFrameBuf));
  std::vector<iovec> iov(kBatch);
  std::vector<sockaddr_ll> from(kBatch);
  std::vector<mmsghdr> msgs(kBatch);
  constexpr std::size_t kCtl = CMSG_SPACE(sizeof(timespec));
  std::vector<std::uint8_t> ctl(kBatch * kCtl);
  std::vector<iovec> out_iov(kBatch);
  std::vector<mmsghdr> out(kBatch);

  while (!stop_requested()) {
    std::uint64_t now = mono_ns();
    if (now - last_stats >= interval_ns) {
      const double dt = double(now - last_stats) / 1e9;
      rx_pps = double(c.rx - last_rx) / dt;
      tx_pps = double(c.tx - last_tx) / dt;
      last_rx = c.rx;
      last_tx = c.tx;
      last_stats = now;
      emit(false);
    }
    const auto wait_ms =
        static_cast<int>(std::min<std::uint64_t>(100, (last_stats + interval_ns - now) / 1'000'000 + 1));
    pollfd pfd{fd.get(), POLLIN, 0};
    const int pr = ::poll(&pfd, 1, wait_ms);
    if (pr < 0) {
      if (errno == EINTR) continue;
      std::cerr << "anychain-vnf: " << errno_text("poll") << "\n";
      break;
    }
    if (pr == 0) continue;
    // Drain what is queued, a bounded number of batches per wake-up.
    for (int round = 0; round < 16 && !stop_requested(); ++round) {
      for (std::size_t i = 0; i < kBatch; ++i) {
        iov[i] = iovec{bufs[i].data(), bufs[i].size()};
        msgs[i] = mmsghdr{};
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_name = &from[i];
        msgs[i].msg_hdr.msg_namelen = sizeof(sockaddr_ll);
        msgs[i].msg_hdr.msg_control = &ctl[i * kCtl];
        msgs[i].msg_hdr.msg_controllen = kCtl;
      }
      const int n = ::recvmmsg(fd.get(), msgs.data(), kBatch, MSG_DONTWAIT | MSG_TRUNC, nullptr);
      if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
          std::cerr << "anychain-vnf: " << errno_text("recvmmsg") << "\n";
        }
        break;
      }
      std::size_t nout = 0;
      const std::uint64_t batch_real = real_ns();
      for (int i = 0; i < n; ++i) {
        const auto pkttype = from[i].sll_pkttype;
        if (pkttype == PACKET_OUTGOING) continue;
        if (pkttype == PACKET_OTHERHOST && !o.promisc) {
          ++c.other_host;
          continue;
        }
        if (pkttype == PACKET_BROADCAST || pkttype == PACKET_MULTICAST) {
          ++c.not_unicast;  // ARP requests, ND, MLD...: link chatter, not traffic to serve
          continue;
        }
        ++c.rx;
        if ((msgs[i].msg_hdr.msg_flags & MSG_TRUNC) || msgs[i].msg_len > kFrameBuf) {
          ++c.rx_truncated;
          ++c.dropped_malformed;
          ++c.malformed_by_reason["rx_truncated"];
          continue;
        }
        std::span<std::uint8_t> frame(bufs[i].data(), msgs[i].msg_len);
        // Only frames of our kind consume capacity: look before doing the work.
        const FrameKind kind = classify_frame(frame, nsh_mode);
        if (kind == FrameKind::kLinkControl) {
          ++c.link_control;
          continue;
        }
        if (kind == FrameKind::kOther) {
          ++(nsh_mode ? c.non_nsh : c.non_ip);
          continue;
        }
        std::uint64_t arrival = batch_real;
        if (have_rx_ts) {
          for (cmsghdr* cm = CMSG_FIRSTHDR(&msgs[i].msg_hdr); cm != nullptr;
               cm = CMSG_NXTHDR(&msgs[i].msg_hdr, cm)) {
            if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS) {
              timespec ts{};
              std::memcpy(&ts, CMSG_DATA(cm), sizeof ts);
              arrival = static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL +
                        static_cast<std::uint64_t>(ts.tv_nsec);
            }
          }
        }
        if (!bucket.take(arrival)) {
          ++c.dropped_capacity;
          continue;
        }
        const FrameResult r = nsh_mode ? process_nsh_frame(frame, o.instance_id, o.slot)
                                       : process_plain_frame(frame, o.instance_id, o.slot);
        switch (r.verdict) {
          case Verdict::kForward:
            c.served += r.stamped;
            out_iov[nout] = iovec{frame.data(), frame.size()};
            out[nout] = mmsghdr{};
            out[nout].msg_hdr.msg_iov = &out_iov[nout];
            out[nout].msg_hdr.msg_iovlen = 1;
            ++nout;
            break;
          case Verdict::kIgnored:
            ++(nsh_mode ? c.non_nsh : c.non_ip);
            break;
          case Verdict::kMalformed:
            ++c.dropped_malformed;
            ++c.malformed_by_reason[r.nsh_error ? "nsh_" + to_string(*r.nsh_error)
                                                : std::string("inner_ip")];
            break;
          case Verdict::kSiZero:
            ++c.dropped_si_zero;
            break;
        }
      }
      std::size_t sent = 0;
      while (sent < nout) {
        const int s = ::sendmmsg(fd.get(), &out[sent], static_cast<unsigned>(nout - sent), 0);
        if (s < 0) {
          if (errno == EINTR) continue;
          c.tx_errors += nout - sent;  // ENOBUFS etc.: these frames are lost, counted
          break;
        }
        sent += static_cast<std::size_t>(s);
      }
      c.tx += sent;
      if (static_cast<std::size_t>(n) < kBatch) break;
    }
  }
  const std::uint64_t now = mono_ns();
  const double dt = double(now - last_stats) / 1e9;
  if (dt > 0) {
    rx_pps = double(c.rx - last_rx) / dt;
    tx_pps = double(c.tx - last_tx) / dt;
  }
  emit(true);
  return 0;
}
