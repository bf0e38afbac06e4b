// The FTC channel between agents (docs/ftc.md 4.4): TCP connections (default port 4796), each
// a chan::Session (HELLO with nonces, authenticated frames, per-direction sequence). Nodes are
// named by their NSH endpoint (IPv4, host order). A connection is opened on demand by send()
// or kept to the peers added with add_peer() (reconnected with a back-off); HEARTBEATs go every
// `interval` on each connection and a peer silent for `misses` intervals is declared down (the
// detector of 7.1) and its connection closed. A refused frame (forged, replayed, malformed) is
// counted by reason and its connection closed. No threads: the owner polls poll_fds(), calls
// on_event() and on_timer().
#pragma once

#include <poll.h>

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/unique_fd.h"
#include "ftc/channel_msg.h"

namespace anychain::ftc {

struct ChannelOptions {
  uint32_t self = 0;            // this node (its NSH endpoint); the listener binds it unless bind_any
  uint16_t port = 4796;         // listen here; 0: an ephemeral port (tests), see local_port()
  bool bind_any = false;        // listen on every address instead of `self`
  std::chrono::milliseconds interval{100};  // heartbeat interval (ftc.detect.interval)
  uint32_t misses = 3;                      // silent intervals before a peer is down
  std::chrono::milliseconds reconnect_min{100};
  std::chrono::milliseconds reconnect_max{2000};
  size_t max_queued = 4096;                 // messages per peer waiting for its connection
  size_t max_out_bytes = 16u << 20;         // bytes per connection not yet written
  // where a node listens (tests put nodes on one address with ephemeral ports)
  std::function<uint16_t(uint32_t node)> port_of;
};

class Channel {
 public:
  using Clock = std::chrono::steady_clock;
  using Handler = std::function<void(uint32_t node, const chan::Body& msg)>;

  static Result<std::unique_ptr<Channel>> open(ChannelOptions o, std::shared_ptr<const state::Keyring> keys);
  ~Channel();
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  // The handler of one message type (HELLO and HEARTBEAT are the channel's own; a handler for
  // them is called too). One handler per type; a later call replaces it.
  void on(chan::Type t, Handler h);
  // Peer transitions: up when a connection's HELLO exchange completed, down when its last
  // connection closed or the detector fired.
  std::function<void(uint32_t node, bool up)> on_peer;

  // Queue a message for node: written at once when connected, else after the connection is
  // made (opened on demand). Fails (counted) when the peer's queue is full.
  Result<void> send(uint32_t node, const chan::Body& msg);
  // Nodes to stay connected to (and monitor); others are connected while send() needs them.
  void set_peers(const std::vector<uint32_t>& nodes);
  void set_keys(std::shared_ptr<const state::Keyring> keys);

  std::vector<pollfd> poll_fds() const;
  void on_event(int fd, short revents);
  // Heartbeats, the detector, reconnections. Call at least every interval / 2.
  void on_timer(Clock::time_point now);
  void on_timer() { on_timer(Clock::now()); }
  [[nodiscard]] Clock::time_point next_timer() const;

  [[nodiscard]] uint16_t local_port() const { return port_; }
  [[nodiscard]] bool connected(uint32_t node) const;

  struct Stats {
    uint64_t accepted = 0, connects = 0, connect_failed = 0, closed = 0, detector_down = 0;
    uint64_t queue_full = 0, out_full = 0, encode_failed = 0;
    std::array<uint64_t, chan::kTypeSlots> sent{}, received{};
    std::array<uint64_t, static_cast<size_t>(chan::Reject::Count)> rejected{};
    uint64_t rejected_total() const;
  };
  struct PeerStatus {
    uint32_t node = 0;
    bool wanted = false;  // in set_peers()
    bool up = false;
    size_t connections = 0;
    size_t queued = 0;
    uint64_t sent = 0, received = 0, downs = 0;
    std::optional<std::chrono::milliseconds> last_heard;  // ago
    std::string last_error;
  };
  [[nodiscard]] const Stats& stats() const { return stats_; }
  [[nodiscard]] std::vector<PeerStatus> peers() const;

 private:
  struct Conn;
  struct Peer;
  Channel(ChannelOptions o, std::shared_ptr<const state::Keyring> keys, UniqueFd listener, uint16_t port);
  Peer& peer(uint32_t node);
  void connect_to(Peer& p, Clock::time_point now);
  void accept_all();
  void readable(Conn& c);
  void writable(Conn& c);
  void established(Conn& c);
  void flush_queue(Peer& p);
  bool write_frame(Conn& c, chan::Type t, const std::vector<uint8_t>& frame);
  void close(Conn& c, const std::string& why);
  void reap();
  Conn* live(const Peer& p) const;
  chan::Nonce fresh_nonce();

  ChannelOptions opt_;
  std::shared_ptr<const state::Keyring> keys_;
  UniqueFd listener_;
  uint16_t port_ = 0;
  std::vector<std::unique_ptr<Conn>> conns_;
  std::map<uint32_t, std::unique_ptr<Peer>> peers_;
  std::array<Handler, chan::kTypeSlots> handlers_{};
  Stats stats_;
};

}  // namespace anychain::ftc
