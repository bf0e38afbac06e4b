// Client for FRR ospfd's OSPF API server (ospfd -a, TCP 2607), implemented from the protocol
// facts in the shared design notes. A poll()-driven object: the owner polls fds(), calls
// on_readable() for readable ones and on_timer() at next_timer(); poll_once() does both.
//
// Connection: the sync socket is bound to local port P and a listener on P+1 is opened
// before connecting to ospfd, which connects back to P+1 for asynchronous notifications.
// After connecting the client registers its opaque type (10/T), registers for LSDB events,
// asks for an LSDB dump, and once READY_NOTIFY arrives originates one VNF LSA per local
// instance. When ospfd goes away it reconnects with exponential backoff and, since ospfd
// flushes a client's LSAs on disconnect, re-originates all of them at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ospf/api_msg.h"
#include "common/error.h"
#include "common/unique_fd.h"
#include "ospf/lsa.h"
#include "ospf/lsdb.h"

namespace anychain::ospf {

struct ClientConfig {
  std::string server_addr = "127.0.0.1";
  std::uint16_t server_port = api::kServerPort;
  std::string local_addr = "127.0.0.1";  // sync socket and async listener bind here
  std::uint16_t local_port = 4000;       // sync socket port P; async listener on P+1
  std::uint8_t opaque_type = kDefaultVnfOpaqueType;
  std::uint32_t area = 0;  // area (host order) our VNF LSAs are originated in
  std::uint16_t typemask = api::typemask_bit(1) | api::typemask_bit(2) | api::typemask_bit(10);
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds request_timeout{2000};
  std::chrono::milliseconds ready_timeout{2000};
  std::chrono::milliseconds backoff_initial{200};
  // anychaind sets this to a third of the peers' hold-down (docs/agent.md, "ospfd restarts")
  std::chrono::milliseconds backoff_max{8000};
  // After a resync, entries the dump did not confirm are dropped after this grace period.
  std::chrono::milliseconds resync_grace{1000};
};

struct ClientStats {
  std::uint64_t connects = 0;
  std::uint64_t connect_failures = 0;
  std::uint64_t disconnects = 0;
  std::uint64_t notifications = 0;
  std::uint64_t bad_messages = 0;   // undecodable API messages
  std::uint64_t rejected_lsas = 0;  // LSAs the LSDB mirror refused as malformed
  std::uint64_t originations = 0;
  std::uint64_t reoriginations = 0;  // of our LSAs flushed without our asking (a restarted ospfd)
  std::uint64_t stale_replies = 0;
};

class Client {
 public:
  using Clock = std::chrono::steady_clock;

  explicit Client(ClientConfig cfg);
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Connects now (blocking, bounded by the configured timeouts). On failure a reconnect is
  // scheduled with backoff and the error is returned. Success means registered and syncing;
  // ready() tells whether READY_NOTIFY has arrived (waited for up to ready_timeout).
  Result<void> connect();
  // Closes both channels; no reconnect is scheduled. ospfd flushes our LSAs.
  void disconnect();
  // ospfd is probably back (its pid file was rewritten): if not connected, try again at the next
  // on_timer(), with the backoff started over.
  void reconnect_soon();

  [[nodiscard]] bool connected() const { return bool(sync_) && bool(async_); }
  [[nodiscard]] bool ready() const { return connected() && ready_; }

  // poll() integration.
  [[nodiscard]] std::vector<int> fds() const;
  void on_readable(int fd);
  [[nodiscard]] std::optional<Clock::time_point> next_timer() const;
  void on_timer(Clock::time_point now);
  // Polls fds and timers for at most `max_wait`, handling whatever is ready.
  void poll_once(std::chrono::milliseconds max_wait);

  // Local VNF instances: originated now if ready, else once READY_NOTIFY arrives, and again
  // after every reconnect. Calling announce() with an existing instance id updates it.
  Result<void> announce(const VnfInfo& v);
  Result<void> withdraw(std::uint32_t instance_id);
  [[nodiscard]] const std::map<std::uint32_t, VnfInfo>& local() const { return local_; }

  [[nodiscard]] const Lsdb& lsdb() const { return lsdb_; }
  [[nodiscard]] const ClientStats& stats() const { return stats_; }
  [[nodiscard]] const ClientConfig& config() const { return cfg_; }
  // Why the last connection attempt, request or rejected LSA failed ("" if none yet).
  [[nodiscard]] const std::string& last_error() const { return last_error_; }

  // Called (not re-entrantly) after one or more LSDB changes were applied.
  std::function<void(const Lsdb&)> on_lsdb_changed;
  // Called on connect (true) and on loss of the connection (false); like on_lsdb_changed it
  // is delivered from the top-level entry points, never from inside a request.
  std::function<void(bool)> on_connection;

  // One request with its REPLY (seq-matched, with timeout); async notifications that arrive
  // meanwhile are processed. Returns the reply's errcode (0 OK). Public for tests/tools.
  Result<std::int8_t> request(api::Body body);

 private:
  Result<void> open_channels();
  Result<void> send_message(const api::Message& m);
  Result<void> originate(const VnfInfo& v);
  Result<void> originate_all();
  void read_async();
  void read_sync_unsolicited();
  void handle_notification(const api::Message& m);
  void lost_connection(const std::string& why);
  void log_vnf_lsa(const char* what, const LsaHeader& h) const;
  void flushed(std::uint32_t area, const LsaHeader& h, bool is_self);
  void schedule_reconnect();
  void after_io();  // deferred work: originate on ready, callbacks
  Result<void> wait_ready();

  ClientConfig cfg_;
  UniqueFd sync_;
  UniqueFd async_;
  api::StreamDecoder sync_dec_;
  api::StreamDecoder async_dec_;
  std::uint32_t next_seq_ = 1;
  bool ready_ = false;
  bool originate_pending_ = false;
  bool lsdb_dirty_ = false;
  bool in_callback_ = false;
  std::vector<bool> conn_events_;  // pending on_connection() deliveries
  std::uint64_t generation_ = 0;
  std::optional<Clock::time_point> reconnect_at_;
  std::optional<Clock::time_point> sweep_at_;
  std::chrono::milliseconds backoff_;
  std::map<std::uint32_t, VnfInfo> local_;
  // local instances whose LSA was flushed under us, and when to originate it again
  static constexpr std::chrono::milliseconds kReplaceWait{200};
  std::map<std::uint32_t, Clock::time_point> reoriginate_;
  std::optional<std::uint32_t> self_router_;  // adv-router of the LSAs ospfd calls ours
  Lsdb lsdb_;
  ClientStats stats_;
  std::string last_error_;
};

}  // namespace anychain::ospf
