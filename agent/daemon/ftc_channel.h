// anychaind's FTC channel (docs/ftc.md 4.4): the ftc::Channel of this node, opened when a chain
// uses FTC, with its keys from ftc.key_file or else the state: section's keyring, its heartbeats
// and detector from ftc.detect. Other parts of the daemon register handlers by message type
// (on()) and send to a node (send()); a message to this node itself is handed to its handler at
// once (the chain's ingress and egress on one node). status() is `anychain status`'s
// "ftc_channel".
#pragma once

#include <poll.h>

#include <functional>
#include <memory>
#include <set>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ftc/channel.h"

namespace anychain::daemon {

struct FtcChannelSpec {
  uint32_t self = 0;                       // this node's NSH endpoint (host order)
  uint16_t port = 4796;
  std::chrono::milliseconds interval{100};
  uint32_t misses = 3;
  std::string key_file;                    // keys from this file when set
  std::vector<state::KeySpec> keys;        // else these (state.keys)
  uint8_t send_key = 0;
  bool operator==(const FtcChannelSpec& o) const;
};

// A key file: one key per line, "ID HEX" (id 1..255) or a lone "HEX" (id 1); '#' starts a
// comment. The first key is the send key.
Result<std::pair<std::vector<state::KeySpec>, uint8_t>> load_ftc_keys(const std::string& path);

class FtcChannel {
 public:
  static Result<std::unique_ptr<FtcChannel>> open(const FtcChannelSpec& spec);
  // New keys (rotation without closing connections); a new port, node or detector reopens.
  Result<void> reconfigure(const FtcChannelSpec& spec);

  void on(ftc::chan::Type t, ftc::Channel::Handler h);
  Result<void> send(uint32_t node, const ftc::chan::Body& msg);
  void set_peers(const std::vector<uint32_t>& nodes) { ch_->set_peers(nodes); }

  std::vector<pollfd> poll_fds() const { return ch_->poll_fds(); }
  void on_event(int fd, short ev) { ch_->on_event(fd, ev); }
  void on_timer() { ch_->on_timer(); }
  ftc::Channel::Clock::time_point next_timer() const { return ch_->next_timer(); }
  [[nodiscard]] uint32_t self() const { return spec_.self; }
  // Nodes the heartbeat detector declared down (silent for ftc.detect's misses x interval, the
  // failure input of docs/ftc.md 7.1), until they are heard again; a connection that merely
  // closed (an agent restarting) is not in it. on_detected is called when the set changes.
  [[nodiscard]] const std::set<uint32_t>& detected_down() const { return detected_; }
  std::function<void()> on_detected;
  // Every connection state change of a peer node (up: a live connection; down: its last one
  // closed, whatever closed it), after the channel's own bookkeeping.
  std::function<void(uint32_t node, bool up)> on_peer;
  ftc::Channel& channel() { return *ch_; }
  nlohmann::json status() const;

 private:
  FtcChannel() = default;
  static Result<std::shared_ptr<const state::Keyring>> keyring(const FtcChannelSpec& spec);
  Result<void> open_channel();
  FtcChannelSpec spec_;
  std::unique_ptr<ftc::Channel> ch_;
  std::array<ftc::Channel::Handler, ftc::chan::kTypeSlots> handlers_{};
  uint64_t local_ = 0, send_failed_ = 0;
  std::set<uint32_t> detected_;
  uint64_t detector_seen_ = 0;           // ch_'s detector_down when last looked at
  std::string last_send_error_;
};

}  // namespace anychain::daemon
