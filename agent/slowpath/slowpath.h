// The slow path's agent side (docs/slow-path.md): a veth pair the agent owns (the fast path's
// end has anychain's program in generic mode and role AC_IF_SLOW_PATH; the agent's end is read
// with AF_PACKET), what the fast path hands over (packets too big for their next hop: fragmented
// or answered with ICMP), a UDP socket on endpoint:4790 that receives VXLAN-GPE the underlay
// fragmented (the stack reassembles it) and re-injects it into the fast path, and path MTU
// learning for the fast path's own VXLAN-GPE. poll()-driven; every outcome is counted.
//
// A module of its own (agent/slowpath, docs/agent.md): it uses only common. The daemon attaches
// the fast path to the pair, points the fast path at it and gives it the SFC proxy's hook.
#pragma once

#include <netinet/in.h>
#include <poll.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "anychain/nsh.h"
#include "common/error.h"
#include "common/net.h"
#include "common/unique_fd.h"
#include "slowpath/plan.h"
#include "slowpath/ratelimit.h"

namespace anychain::slowpath {

inline constexpr const char* kFastIf = "ac-slow";     // the fast path's end (XDP, generic mode)
inline constexpr const char* kAgentIf = "ac-slow-a";  // the agent's end (AF_PACKET)
inline constexpr int kPairMtu = 65535;

// Every frame handed over ends under exactly one "handed_over" outcome, every datagram the
// agent's VXLAN-GPE socket receives under one "vxlan_gpe" outcome; notes count work on the way.
struct Counters {
  // handed over by the fast path (its verdict fwd_slow_path)
  uint64_t fragmented = 0;         // IPv4 without DF: split, every fragment sent
  uint64_t icmp_sent = 0;          // IPv4 with DF or IPv6: the source was told
  uint64_t icmp_rate_limited = 0;  // ... but the error was over the rate limit
  uint64_t icmp_forbidden = 0;     // ... but no error may be sent about it (RFC 1812 4.3.2.7)
  uint64_t unfragmentable = 0;     // IPv4 without DF that cannot be split to fit
  uint64_t proxy_nsh_missing = 0;  // for an NSH-unaware VNF whose flow the proxy holds no more
  uint64_t malformed = 0;          // a frame or inner packet not understood
  uint64_t send_failed = 0;        // a socket refused a fragment or the error
  // datagrams to endpoint:4790 the stack reassembled
  uint64_t gpe_reinjected = 0;     // sent back into the fast path
  uint64_t gpe_rejected = 0;       // not VXLAN-GPE carrying NSH
  uint64_t gpe_looped = 0;         // came back from the slow path's own interface: dropped
  uint64_t gpe_send_failed = 0;
  // notes
  uint64_t fragments_sent = 0;
  uint64_t underlay_frag_needed = 0;  // ICMP "fragmentation needed" about our VXLAN-GPE
  uint64_t pmtu_probes = 0;           // probes that teach the kernel that path MTU
};

enum class CounterKind { HandedOver, VxlanGpe, Note };
struct CounterName {
  const char* name;
  CounterKind kind;
  uint64_t Counters::*field;
};
std::span<const CounterName> counter_names();

struct Options {
  std::string fast_if = kFastIf;
  std::string agent_if = kAgentIf;
  in_addr endpoint{};                    // this node's NSH endpoint (VXLAN-GPE source and socket)
  uint16_t gpe_port = AC_VXLAN_GPE_PORT;
  IcmpLimits icmp;
  // The SFC proxy holds the NSH of a flow to an NSH-unaware VNF under the flow's key; fragments
  // come back keyed by their datagram: copy the held NSH under that key (veth ifindex, flow key,
  // datagram key). Returns whether the flow's NSH was held. Unset: fragments for such a VNF
  // are dropped (proxy_nsh_missing).
  std::function<Result<bool>(uint32_t, uint32_t, uint32_t)> hold_for_fragments;
};

class SlowPath {
 public:
  using Clock = std::chrono::steady_clock;

  // Creates the veth pair (or adopts it: an agent restart), sets it up and opens the sockets.
  // Fails when the pair cannot be made; a VXLAN-GPE socket that cannot be bound (port in use)
  // is reported in status() and counted, the rest runs.
  static Result<std::unique_ptr<SlowPath>> open(Options o);
  ~SlowPath();

  int fast_ifindex() const { return fast_ifindex_; }
  const Mac& fast_mac() const { return fast_mac_; }
  const std::string& fast_if() const { return opts_.fast_if; }

  std::vector<pollfd> poll_fds() const;
  void on_event(int fd, short revents);
  // The NSH endpoint changed (reload): the VXLAN-GPE socket is bound again.
  void set_endpoint(in_addr endpoint);
  // The pair's interfaces were deleted or changed under us (link event): whether it is intact.
  bool intact() const;

  const Counters& counters() const { return c_; }
  nlohmann::json status() const;

  // Delete the pair (--flush-on-exit); a missing pair is not an error.
  static Result<void> remove(const std::string& fast_if = kFastIf);

  // One handed-over frame or one reassembled datagram, as the sockets deliver them (tests).
  void handle_frame(std::span<const uint8_t> frame);
  void handle_datagram(std::span<const uint8_t> payload, in_addr from, uint16_t sport, int ifindex);

 private:
  explicit SlowPath(Options o) : opts_(std::move(o)), limiter_(opts_.icmp) {}
  Result<void> open_sockets();
  void bind_gpe_socket();
  void read_frames();
  void read_datagrams();
  void read_icmp();
  bool send_icmp(const Plan& p);
  bool send_fragments(const Plan& p);
  void log_once(const std::string& what, const std::string& detail);

  Options opts_;
  int fast_ifindex_ = 0, agent_ifindex_ = 0;
  Mac fast_mac_{}, agent_mac_{};
  bool created_ = false;
  UniqueFd rx_;     // AF_PACKET on the agent's end, EtherType 0x88B5
  UniqueFd tx_;     // AF_PACKET for sending frames (local VNFs, re-injection)
  UniqueFd gpe_;    // UDP endpoint:4790
  UniqueFd icmp4_;  // raw ICMP: errors out, "fragmentation needed" in
  UniqueFd icmp6_;  // raw ICMPv6: errors out
  std::string gpe_error_;
  Counters c_;
  IcmpLimiter limiter_;
  std::map<uint32_t, Clock::time_point> last_probe_;  // by destination (network order)
  std::map<std::string, Clock::time_point> last_log_;
  std::vector<uint8_t> buf_;
};

}  // namespace anychain::slowpath
