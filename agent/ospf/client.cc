#include "ospf/client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>
#include <fmt/format.h>

#include "common/log.h"

namespace anychain::ospf {
namespace {

using std::chrono::duration_cast;
using std::chrono::milliseconds;

Result<sockaddr_in> make_addr(const std::string& ip, std::uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  if (::inet_pton(AF_INET, ip.c_str(), &sa.sin_addr) != 1)
    return fail(fmt::format("bad IPv4 address '{}'", ip), EINVAL);
  return sa;
}

Result<UniqueFd> tcp_socket() {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return fail("socket()", errno);
  int one = 1;
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
    return fail("setsockopt(SO_REUSEADDR)", errno);
  return fd;
}

int remaining_ms(Client::Clock::time_point deadline) {
  auto left = duration_cast<milliseconds>(deadline - Client::Clock::now()).count();
  return static_cast<int>(std::clamp<long long>(left, 0, 1'000'000));
}

// poll() one fd for `events` until the deadline. Returns true if ready.
Result<bool> wait_fd(int fd, short events, Client::Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, remaining_ms(deadline));
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail("poll()", errno);
    }
    return n > 0;
  }
}

Result<void> set_nonblocking(int fd, bool on) {
  int fl = ::fcntl(fd, F_GETFL);
  if (fl < 0) return fail("fcntl(F_GETFL)", errno);
  fl = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
  if (::fcntl(fd, F_SETFL, fl) < 0) return fail("fcntl(F_SETFL)", errno);
  return {};
}

}  // namespace

Client::Client(ClientConfig cfg) : cfg_(std::move(cfg)), backoff_(cfg_.backoff_initial) {}

Result<void> Client::open_channels() {
  if (cfg_.local_port == 0xFFFF) return fail("local port P must leave room for P+1", EINVAL);
  // ospfd refuses to connect back when P+1 equals its own API port.
  if (cfg_.local_port + 1 == cfg_.server_port) return fail("local port P+1 must differ from the server port", EINVAL);
  auto server = make_addr(cfg_.server_addr, cfg_.server_port);
  auto local_sync = make_addr(cfg_.local_addr, cfg_.local_port);
  auto local_async = make_addr(cfg_.local_addr, static_cast<std::uint16_t>(cfg_.local_port + 1));
  if (!server) return unexpected(server.error());
  if (!local_sync) return unexpected(local_sync.error());
  if (!local_async) return unexpected(local_async.error());

  // 1. Listener for ospfd's reverse connection, before anything else.
  auto listener = tcp_socket();
  if (!listener) return unexpected(listener.error());
  if (::bind(listener->get(), reinterpret_cast<const sockaddr*>(&*local_async), sizeof *local_async) < 0)
    return fail(fmt::format("bind async listener {}:{}", cfg_.local_addr, cfg_.local_port + 1), errno);
  if (::listen(listener->get(), 4) < 0) return fail("listen on async port", errno);

  // 2. Sync socket bound to P, connected to ospfd.
  auto sync = tcp_socket();
  if (!sync) return unexpected(sync.error());
  if (::bind(sync->get(), reinterpret_cast<const sockaddr*>(&*local_sync), sizeof *local_sync) < 0)
    return fail(fmt::format("bind sync socket {}:{}", cfg_.local_addr, cfg_.local_port), errno);
  if (auto ok = set_nonblocking(sync->get(), true); !ok) return ok;
  auto deadline = Clock::now() + cfg_.connect_timeout;
  if (::connect(sync->get(), reinterpret_cast<const sockaddr*>(&*server), sizeof *server) < 0) {
    if (errno != EINPROGRESS)
      return fail(fmt::format("connect to ospfd {}:{}", cfg_.server_addr, cfg_.server_port), errno);
    auto ready = wait_fd(sync->get(), POLLOUT, deadline);
    if (!ready) return unexpected(ready.error());
    if (!*ready) return fail("connect to ospfd timed out", ETIMEDOUT);
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(sync->get(), SOL_SOCKET, SO_ERROR, &err, &len) < 0) return fail("getsockopt(SO_ERROR)", errno);
    if (err != 0) return fail(fmt::format("connect to ospfd {}:{}", cfg_.server_addr, cfg_.server_port), err);
  }
  if (auto ok = set_nonblocking(sync->get(), false); !ok) return ok;
  int one = 1;
  ::setsockopt(sync->get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

  // 3. Accept ospfd's connection back to P+1 (only from the server's address).
  for (;;) {
    auto ready = wait_fd(listener->get(), POLLIN, deadline);
    if (!ready) return unexpected(ready.error());
    if (!*ready) return fail("ospfd did not connect back to the async port", ETIMEDOUT);
    sockaddr_in peer{};
    socklen_t plen = sizeof peer;
    UniqueFd conn(::accept4(listener->get(), reinterpret_cast<sockaddr*>(&peer), &plen, SOCK_CLOEXEC));
    if (!conn) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return fail("accept async connection", errno);
    }
    if (peer.sin_addr.s_addr != server->sin_addr.s_addr && server->sin_addr.s_addr != htonl(INADDR_ANY))
      continue;  // not ospfd: drop it
    async_ = std::move(conn);
    break;
  }
  sync_ = std::move(*sync);
  sync_dec_.reset();
  async_dec_.reset();
  return {};
}

Result<void> Client::connect() {
  if (connected()) return {};
  reconnect_at_.reset();
  auto fail_connect = [&](Error e) -> Result<void> {
    ++stats_.connect_failures;
    last_error_ = e.str();
    sync_.reset();
    async_.reset();
    ready_ = false;
    schedule_reconnect();
    return unexpected(std::move(e));
  };
  if (auto ok = open_channels(); !ok) return fail_connect(wrap(ok.error(), "open API channels"));
  ++generation_;
  ready_ = false;
  using namespace api;
  auto step = [&](Body b, const char* what) -> Result<void> {
    auto rc = request(std::move(b));
    if (!rc) return unexpected(wrap(rc.error(), what));
    if (*rc != 0)
      return fail(fmt::format("{}: ospfd answered {}", what, to_string(static_cast<ApiErr>(*rc))), EIO);
    return {};
  };
  LsdbFilter filter{cfg_.typemask, Origin::Any, {}};
  if (auto ok = step(RegisterOpaqueType{10, cfg_.opaque_type}, "REGISTER_OPAQUETYPE"); !ok)
    return fail_connect(ok.error());
  if (auto ok = step(RegisterEvent{filter}, "REGISTER_EVENT"); !ok) return fail_connect(ok.error());
  if (auto ok = step(SyncLsdb{filter}, "SYNC_LSDB"); !ok) return fail_connect(ok.error());
  if (!connected()) return fail_connect(Error{ECONNRESET, "connection lost during setup"});
  sweep_at_ = Clock::now() + cfg_.resync_grace;
  // READY_NOTIFY normally follows the registration at once. Without it (e.g. no area is up
  // yet) the session stays: the LSDB keeps being mirrored and the LSAs are originated when
  // READY_NOTIFY arrives.
  if (auto ok = wait_ready(); !ok) {
    if (!connected()) return fail_connect(ok.error());
    last_error_ = ok.error().str();
  }
  ++stats_.connects;
  backoff_ = cfg_.backoff_initial;
  originate_pending_ = true;
  conn_events_.push_back(true);
  after_io();
  return {};
}

Result<void> Client::wait_ready() {
  auto deadline = Clock::now() + cfg_.ready_timeout;
  while (!ready_) {
    if (!connected()) return fail("connection lost waiting for READY_NOTIFY", ECONNRESET);
    auto r = wait_fd(async_.get(), POLLIN, deadline);
    if (!r) return unexpected(r.error());
    if (!*r) return fail("no READY_NOTIFY for our opaque type", ETIMEDOUT);
    read_async();
  }
  return {};
}

void Client::disconnect() {
  bool was = connected();
  sync_.reset();
  async_.reset();
  ready_ = false;
  reconnect_at_.reset();
  sweep_at_.reset();
  if (was) {
    ++stats_.disconnects;
    if (on_connection) on_connection(false);
  }
}

void Client::reconnect_soon() {
  if (connected()) return;
  backoff_ = cfg_.backoff_initial;
  reconnect_at_ = Clock::now();
}

void Client::lost_connection(const std::string& why) {
  bool was = connected();
  last_error_ = why;
  sync_.reset();
  async_.reset();
  ready_ = false;
  sweep_at_.reset();
  if (was) ++stats_.disconnects;
  schedule_reconnect();
  if (was) conn_events_.push_back(false);
}

void Client::schedule_reconnect() {
  reconnect_at_ = Clock::now() + backoff_;
  backoff_ = std::min(backoff_ * 2, cfg_.backoff_max);
}

std::vector<int> Client::fds() const {
  std::vector<int> out;
  if (sync_) out.push_back(sync_.get());
  if (async_) out.push_back(async_.get());
  return out;
}

std::optional<Client::Clock::time_point> Client::next_timer() const {
  std::optional<Clock::time_point> t = reconnect_at_;
  if (sweep_at_ && (!t || *sweep_at_ < *t)) t = sweep_at_;
  for (const auto& [id, at] : reoriginate_)
    if (!t || at < *t) t = at;
  return t;
}

void Client::on_timer(Clock::time_point now) {
  if (sweep_at_ && now >= *sweep_at_) {
    sweep_at_.reset();
    if (connected() && lsdb_.sweep(generation_) > 0) lsdb_dirty_ = true;
  }
  if (reconnect_at_ && now >= *reconnect_at_) {
    reconnect_at_.reset();
    (void)connect();  // failure reschedules itself
  }
  after_io();
}

void Client::on_readable(int fd) {
  if (async_ && fd == async_.get())
    read_async();
  else if (sync_ && fd == sync_.get())
    read_sync_unsolicited();
  after_io();
}

void Client::poll_once(milliseconds max_wait) {
  auto now = Clock::now();
  auto deadline = now + max_wait;
  if (auto t = next_timer(); t && *t < deadline) deadline = *t;
  std::array<pollfd, 2> p{};
  nfds_t n = 0;
  for (int fd : fds()) p[n++] = pollfd{fd, POLLIN, 0};
  int rc = ::poll(p.data(), n, remaining_ms(deadline));
  if (rc > 0) {
    for (nfds_t i = 0; i < n; ++i)
      if (p[i].revents != 0) on_readable(p[i].fd);
  }
  on_timer(Clock::now());
}

Result<void> Client::send_message(const api::Message& m) {
  auto buf = api::encode(m);
  if (!buf) return unexpected(buf.error());
  // One send call for the whole message; ospfd does blocking reads and a half-written
  // request would stall it. A blocking socket only returns short on a signal or an error.
  std::size_t off = 0;
  while (off < buf->size()) {
    ssize_t n = ::send(sync_.get(), buf->data() + off, buf->size() - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(fmt::format("send {}", api::to_string(m.type())), errno);
    }
    off += static_cast<std::size_t>(n);
  }
  return {};
}

Result<std::int8_t> Client::request(api::Body body) {
  if (!connected()) return fail("not connected to ospfd", ENOTCONN);
  std::uint32_t seq = next_seq_;
  next_seq_ = next_seq_ >= 0x7FFFFFFFu ? 1 : next_seq_ + 1;
  api::Message m{seq, std::move(body)};
  auto type = m.type();
  if (auto ok = send_message(m); !ok) {
    lost_connection(ok.error().str());
    return unexpected(ok.error());
  }
  auto deadline = Clock::now() + cfg_.request_timeout;
  std::array<std::uint8_t, 4096> buf{};
  for (;;) {
    // Replies already buffered first.
    for (;;) {
      auto next = sync_dec_.next();
      if (!next) {
        ++stats_.bad_messages;
        if (next.error().code == EPROTO) {
          lost_connection("sync channel: " + next.error().str());
          return unexpected(next.error());
        }
        continue;
      }
      if (!*next) break;
      const auto& msg = **next;
      if (const auto* rep = std::get_if<api::Reply>(&msg.body); rep && msg.seq == seq) return rep->errcode;
      ++stats_.stale_replies;
    }
    if (!connected()) return fail("connection lost", ECONNRESET);
    std::array<pollfd, 2> p{pollfd{sync_.get(), POLLIN, 0}, pollfd{async_.get(), POLLIN, 0}};
    int rc = ::poll(p.data(), p.size(), remaining_ms(deadline));
    if (rc < 0) {
      if (errno == EINTR) continue;
      return fail("poll()", errno);
    }
    if (rc == 0) {
      auto e = Error{ETIMEDOUT, fmt::format("no REPLY to {} seq {}", api::to_string(type), seq)};
      lost_connection(e.str());  // state with ospfd is unknown now: start over
      return unexpected(e);
    }
    if (p[1].revents != 0) {
      read_async();  // never let ospfd block on the notification channel
      if (!connected()) return fail("connection lost", ECONNRESET);
    }
    if (p[0].revents != 0) {
      ssize_t n = ::recv(sync_.get(), buf.data(), buf.size(), 0);
      if (n <= 0) {
        if (n < 0 && errno == EINTR) continue;
        auto e = Error{n == 0 ? ECONNRESET : errno, "ospfd closed the sync channel"};
        lost_connection(e.str());
        return unexpected(e);
      }
      sync_dec_.feed(ByteView(buf.data(), static_cast<std::size_t>(n)));
    }
  }
}

void Client::read_sync_unsolicited() {
  std::array<std::uint8_t, 4096> buf{};
  ssize_t n = ::recv(sync_.get(), buf.data(), buf.size(), MSG_DONTWAIT);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
    lost_connection("ospfd closed the sync channel");
    return;
  }
  if (n < 0) return;
  sync_dec_.feed(ByteView(buf.data(), static_cast<std::size_t>(n)));
  for (;;) {
    auto next = sync_dec_.next();
    if (!next) {
      ++stats_.bad_messages;
      if (next.error().code == EPROTO) {
        lost_connection("sync channel: " + next.error().str());
        return;
      }
      continue;
    }
    if (!*next) break;
    ++stats_.stale_replies;  // a reply nobody waits for any more
  }
}

void Client::read_async() {
  std::array<std::uint8_t, 16384> buf{};
  for (;;) {
    if (!async_) return;
    ssize_t n = ::recv(async_.get(), buf.data(), buf.size(), MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      lost_connection(fmt::format("async channel: {}", std::strerror(errno)));
      return;
    }
    if (n == 0) {
      lost_connection("ospfd closed the async channel");
      return;
    }
    async_dec_.feed(ByteView(buf.data(), static_cast<std::size_t>(n)));
    for (;;) {
      auto next = async_dec_.next();
      if (!next) {
        ++stats_.bad_messages;
        if (next.error().code == EPROTO) {
          lost_connection("async channel: " + next.error().str());
          return;
        }
        continue;
      }
      if (!*next) break;
      handle_notification(**next);
    }
  }
}

void Client::handle_notification(const api::Message& m) {
  ++stats_.notifications;
  auto apply = [&](const Result<LsdbChange>& r) {
    if (!r) {
      ++stats_.rejected_lsas;
      last_error_ = r.error().str();
    } else if (*r != LsdbChange::None) {
      lsdb_dirty_ = true;
    }
  };
  if (const auto* rdy = std::get_if<api::ReadyNotify>(&m.body)) {
    if (rdy->lsa_type == 10 && rdy->opaque_type == cfg_.opaque_type) {
      ready_ = true;
      originate_pending_ = true;
    }
  } else if (const auto* up = std::get_if<api::LsaUpdateNotify>(&m.body)) {
    apply(lsdb_.apply_update(up->area, up->lsa, up->is_self, generation_));
    if (auto h = parse_lsa_header(up->lsa)) {
      log_vnf_lsa("update", *h);
      if (up->is_self && h->age < kMaxAge) self_router_ = h->adv_router;
      if (h->age >= kMaxAge)
        flushed(up->area, *h, up->is_self);
      else if (self_router_ && h->adv_router == *self_router_ && h->type == 10 &&
               opaque_type_of(h->id) == cfg_.opaque_type)
        reoriginate_.erase(opaque_id_of(h->id));  // a newer copy: it was replaced, not flushed
    }
  } else if (const auto* del = std::get_if<api::LsaDeleteNotify>(&m.body)) {
    apply(lsdb_.apply_delete(del->area, del->lsa));
    if (auto h = parse_lsa_header(del->lsa)) {
      log_vnf_lsa("delete", *h);
      flushed(del->area, *h, del->is_self);
    }
  }
  // Interface/neighbour/router-id notifications are not used by the service plane.
}

// A VNF LSA's arrival, at debug level: when it reached this node, to line up with the ospfd logs.
void Client::log_vnf_lsa(const char* what, const LsaHeader& h) const {
  if (log::threshold() < log::Level::Debug || h.type != 10 || opaque_type_of(h.id) != cfg_.opaque_type) return;
  in_addr adv{.s_addr = htonl(h.adv_router)};
  char a[INET_ADDRSTRLEN] = "?";
  inet_ntop(AF_INET, &adv, a, sizeof a);
  log::debug("lsdb: {} of VNF LSA {} from {}, seq {:#x}, age {}", what, opaque_id_of(h.id), a,
             static_cast<std::uint32_t>(h.seq), h.age);
}

// One of our VNF LSAs left the LSDB without our asking (we erase an instance from local_ before
// deleting its LSA). That happens when a restarted ospfd receives its predecessor's copy from a
// neighbour before we re-originated: it flushes that stale copy, and with it the instance from
// the whole area. Originate it again, above the flushed sequence number, unless a newer copy
// shows up within kReplaceWait (ospfd also announces every update of an LSA as DELETE(old)
// followed by UPDATE(new)).
void Client::flushed(std::uint32_t area, const LsaHeader& h, bool is_self) {
  bool ours = is_self || (self_router_ && h.adv_router == *self_router_);
  if (!ours || area != cfg_.area || h.type != 10 || opaque_type_of(h.id) != cfg_.opaque_type) return;
  std::uint32_t id = opaque_id_of(h.id);
  if (local_.contains(id)) reoriginate_.try_emplace(id, Clock::now() + kReplaceWait);
}

Result<void> Client::originate(const VnfInfo& v) {
  auto lsa = build_vnf_lsa(v, cfg_.opaque_type);
  if (!lsa) return unexpected(lsa.error());
  auto rc = request(api::OriginateRequest{0, cfg_.area, std::move(*lsa)});
  if (!rc) return unexpected(wrap(rc.error(), fmt::format("originate instance {}", v.instance_id)));
  if (*rc != 0)
    return fail(fmt::format("originate instance {}: ospfd answered {}", v.instance_id,
                                 api::to_string(static_cast<api::ApiErr>(*rc))), EIO);
  ++stats_.originations;
  return {};
}

Result<void> Client::originate_all() {
  Result<void> result;
  for (const auto& [id, v] : local_) {
    if (!ready()) return fail("connection lost while originating", ENOTCONN);
    if (auto ok = originate(v); !ok && result) result = ok;
  }
  return result;
}

void Client::after_io() {
  if (in_callback_) return;
  in_callback_ = true;
  if (ready() && originate_pending_) {
    originate_pending_ = false;
    reoriginate_.clear();
    if (auto ok = originate_all(); !ok) last_error_ = ok.error().str();
  }
  for (auto now = Clock::now(); ready() && !reoriginate_.empty();) {
    auto due = std::find_if(reoriginate_.begin(), reoriginate_.end(), [&](const auto& kv) { return kv.second <= now; });
    if (due == reoriginate_.end()) break;
    std::uint32_t id = due->first;
    reoriginate_.erase(due);
    auto it = local_.find(id);
    if (it == local_.end()) continue;
    ++stats_.reoriginations;
    if (auto ok = originate(it->second); !ok) last_error_ = ok.error().str();
  }
  while (lsdb_dirty_ || !conn_events_.empty()) {
    auto events = std::exchange(conn_events_, {});
    for (bool up : events)
      if (on_connection) on_connection(up);
    if (lsdb_dirty_) {
      lsdb_dirty_ = false;
      if (on_lsdb_changed) on_lsdb_changed(lsdb_);
    }
  }
  in_callback_ = false;
}

Result<void> Client::announce(const VnfInfo& v) {
  auto lsa = build_vnf_lsa(v, cfg_.opaque_type);  // validate before storing
  if (!lsa) return unexpected(lsa.error());
  local_[v.instance_id] = v;
  if (!ready()) return {};  // originated once ready
  auto ok = originate(v);
  after_io();
  return ok;
}

Result<void> Client::withdraw(std::uint32_t instance_id) {
  if (local_.erase(instance_id) == 0) return fail(fmt::format("instance {} not announced", instance_id), ENOENT);
  if (!ready()) return {};  // ospfd already flushed it when we lost the connection
  auto rc = request(api::DeleteRequest{cfg_.area, 10, cfg_.opaque_type, 0, instance_id});
  after_io();
  if (!rc) return unexpected(wrap(rc.error(), fmt::format("delete instance {}", instance_id)));
  if (*rc != 0)
    return fail(fmt::format("delete instance {}: ospfd answered {}", instance_id,
                                 api::to_string(static_cast<api::ApiErr>(*rc))), EIO);
  return {};
}

}  // namespace anychain::ospf
