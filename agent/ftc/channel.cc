#include "ftc/channel.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/random.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "common/net.h"

namespace anychain::ftc {

using namespace std::chrono;

struct Channel::Conn {
  UniqueFd fd;
  bool outbound = false;
  bool connecting = false;  // non-blocking connect() in progress
  bool dead = false;        // closed, removed by reap()
  bool counted_up = false;  // established and counted in its peer's connections
  uint32_t node = 0;        // the peer (0 for an accepted connection until its HELLO)
  chan::Session s;
  std::vector<uint8_t> in, out;
  Clock::time_point last_rx{}, last_tx{};
  Conn(std::shared_ptr<const state::Keyring> k, uint32_t self, uint32_t peer, const chan::Nonce& n)
      : s(std::move(k), self, peer, n) {}
};

struct Channel::Peer {
  uint32_t node = 0;
  bool wanted = false;
  bool up = false;
  size_t live = 0;  // established connections
  std::deque<chan::Body> queue;
  Clock::time_point next_connect{};
  milliseconds backoff{0};
  uint64_t sent = 0, received = 0, downs = 0;
  std::optional<Clock::time_point> last_heard;
  std::string last_error;
};

namespace {
std::string addr_str(uint32_t a) {
  in_addr ia{htonl(a)};
  char b[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &ia, b, sizeof b);
  return b;
}
void no_delay(int fd) {
  int one = 1;
  (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}
}  // namespace

uint64_t Channel::Stats::rejected_total() const {
  uint64_t n = 0;
  for (auto v : rejected) n += v;
  return n;
}

Result<std::unique_ptr<Channel>> Channel::open(ChannelOptions o, std::shared_ptr<const state::Keyring> keys) {
  if (!keys) return fail("ftc channel: no key (ftc.key_file or state.keys)");
  if (o.self == 0) return fail("ftc channel: this node's endpoint is not known");
  if (o.interval.count() <= 0 || o.misses == 0) return fail("ftc channel: detect interval and misses must be positive");
  UniqueFd l(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!l) return fail("ftc channel: socket", errno);
  int one = 1;
  (void)setsockopt(l.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(o.port);
  sa.sin_addr.s_addr = o.bind_any ? htonl(INADDR_ANY) : htonl(o.self);
  if (bind(l.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0)
    return fail(fmt::format("ftc channel: bind {}:{}", o.bind_any ? "0.0.0.0" : addr_str(o.self), o.port), errno);
  if (listen(l.get(), 64) < 0) return fail("ftc channel: listen", errno);
  socklen_t len = sizeof sa;
  if (getsockname(l.get(), reinterpret_cast<sockaddr*>(&sa), &len) < 0) return fail("ftc channel: getsockname", errno);
  uint16_t port = ntohs(sa.sin_port);
  return std::unique_ptr<Channel>(new Channel(std::move(o), std::move(keys), std::move(l), port));
}

Channel::Channel(ChannelOptions o, std::shared_ptr<const state::Keyring> keys, UniqueFd listener, uint16_t port)
    : opt_(std::move(o)), keys_(std::move(keys)), listener_(std::move(listener)), port_(port) {}

Channel::~Channel() = default;

void Channel::on(chan::Type t, Handler h) {
  auto i = static_cast<size_t>(t);
  if (i < handlers_.size()) handlers_[i] = std::move(h);
}

chan::Nonce Channel::fresh_nonce() {
  chan::Nonce n{};
  size_t got = 0;
  while (got < n.size()) {
    ssize_t r = getrandom(n.data() + got, n.size() - got, 0);
    if (r > 0) got += static_cast<size_t>(r);
    else if (errno != EINTR) break;
  }
  return n;
}

Channel::Peer& Channel::peer(uint32_t node) {
  auto& p = peers_[node];
  if (!p) {
    p = std::make_unique<Peer>();
    p->node = node;
  }
  return *p;
}

Channel::Conn* Channel::live(const Peer& p) const {
  Conn* best = nullptr;
  for (const auto& c : conns_)
    if (!c->dead && c->node == p.node && c->s.established() && !c->connecting) {
      // one connection per pair: the one the lower node opened, when both exist
      bool preferred = c->outbound == (opt_.self < p.node);
      if (!best || preferred) best = c.get();
    }
  return best;
}

bool Channel::connected(uint32_t node) const {
  auto it = peers_.find(node);
  return it != peers_.end() && live(*it->second);
}

void Channel::set_keys(std::shared_ptr<const state::Keyring> keys) {
  if (!keys) return;
  keys_ = keys;
  for (auto& c : conns_) c->s.set_keys(keys);
}

void Channel::set_peers(const std::vector<uint32_t>& nodes) {
  for (auto& [n, p] : peers_) p->wanted = false;
  for (uint32_t n : nodes)
    if (n && n != opt_.self) peer(n).wanted = true;
}

Result<void> Channel::send(uint32_t node, const chan::Body& msg) {
  if (node == 0 || node == opt_.self) return fail("ftc channel: cannot send to node " + addr_str(node));
  Peer& p = peer(node);
  if (Conn* c = live(p)) {
    auto f = c->s.seal(msg);
    if (!f) {
      ++stats_.encode_failed;
      return unexpected(f.error());
    }
    if (!write_frame(*c, chan::type_of(msg), *f))
      return fail(fmt::format("ftc channel: {} is not reading (output over {} bytes)", addr_str(node), opt_.max_out_bytes));
    ++p.sent;
    return {};
  }
  if (p.queue.size() >= opt_.max_queued) {
    ++stats_.queue_full;
    return fail(fmt::format("ftc channel: {} messages wait for {}, dropped", p.queue.size(), addr_str(node)));
  }
  // encode now, so that a bad message fails here and not later
  if (auto b = chan::encode_body(msg); !b) {
    ++stats_.encode_failed;
    return unexpected(b.error());
  }
  p.queue.push_back(msg);
  bool pending = std::any_of(conns_.begin(), conns_.end(), [&](const auto& c) { return !c->dead && c->node == node; });
  if (!pending) connect_to(p, Clock::now());
  return {};
}

void Channel::connect_to(Peer& p, Clock::time_point now) {
  if (now < p.next_connect) return;
  p.backoff = std::clamp(p.backoff * 2, opt_.reconnect_min, opt_.reconnect_max);
  p.next_connect = now + p.backoff;
  ++stats_.connects;
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) {
    ++stats_.connect_failed;
    p.last_error = fmt::format("socket: {}", std::strerror(errno));
    return;
  }
  // from this node's address, so that the peer sees the endpoint it knows
  sockaddr_in me{};
  me.sin_family = AF_INET;
  me.sin_addr.s_addr = htonl(opt_.self);
  if (!opt_.bind_any) (void)bind(fd.get(), reinterpret_cast<sockaddr*>(&me), sizeof me);
  no_delay(fd.get());
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(opt_.port_of ? opt_.port_of(p.node) : opt_.port);
  sa.sin_addr.s_addr = htonl(p.node);
  int r = ::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  if (r < 0 && errno != EINPROGRESS) {
    ++stats_.connect_failed;
    p.last_error = fmt::format("connect {}:{}: {}", addr_str(p.node), ntohs(sa.sin_port), std::strerror(errno));
    return;
  }
  auto c = std::make_unique<Conn>(keys_, opt_.self, p.node, fresh_nonce());
  c->fd = std::move(fd);
  c->outbound = true;
  c->node = p.node;
  c->connecting = r < 0;
  c->last_rx = now;
  Conn& ref = *c;
  conns_.push_back(std::move(c));
  if (!ref.connecting) writable(ref);
}

void Channel::accept_all() {
  for (;;) {
    sockaddr_in sa{};
    socklen_t len = sizeof sa;
    int fd = accept4(listener_.get(), reinterpret_cast<sockaddr*>(&sa), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    ++stats_.accepted;
    no_delay(fd);
    // the peer is named by its HELLO (authenticated), not by the source address
    auto c = std::make_unique<Conn>(keys_, opt_.self, 0, fresh_nonce());
    c->fd = UniqueFd(fd);
    c->last_rx = Clock::now();
    auto h = c->s.hello(static_cast<uint32_t>(opt_.interval.count()));
    if (!h) {
      ++stats_.encode_failed;
      continue;
    }
    c->out = std::move(*h);
    c->last_tx = Clock::now();
    ++stats_.sent[static_cast<size_t>(chan::Type::Hello)];
    Conn& ref = *c;
    conns_.push_back(std::move(c));
    writable(ref);
  }
}

std::vector<pollfd> Channel::poll_fds() const {
  std::vector<pollfd> v;
  v.push_back({listener_.get(), POLLIN, 0});
  for (const auto& c : conns_) {
    if (c->dead) continue;
    short ev = POLLIN;
    if (c->connecting || !c->out.empty()) ev |= POLLOUT;
    v.push_back({c->fd.get(), ev, 0});
  }
  return v;
}

void Channel::on_event(int fd, short revents) {
  if (fd == listener_.get()) {
    accept_all();
    return;
  }
  for (size_t i = 0; i < conns_.size(); ++i) {
    Conn* c = conns_[i].get();
    if (c->dead || c->fd.get() != fd) continue;
    if (c->connecting && (revents & (POLLOUT | POLLERR | POLLHUP))) {
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err) {
        ++stats_.connect_failed;
        close(*c, fmt::format("connect: {}", std::strerror(err)));
        break;
      }
      c->connecting = false;
    }
    if (revents & POLLOUT) writable(*c);
    if (!c->dead && (revents & (POLLIN | POLLHUP | POLLERR))) readable(*c);
    break;
  }
  reap();
}

void Channel::writable(Conn& c) {
  if (c.dead || c.connecting) return;
  if (c.outbound && c.out.empty() && c.last_tx == Clock::time_point{}) {
    auto h = c.s.hello(static_cast<uint32_t>(opt_.interval.count()));
    if (!h) {
      ++stats_.encode_failed;
      close(c, "hello: " + h.error().str());
      return;
    }
    c.out = std::move(*h);
    ++stats_.sent[static_cast<size_t>(chan::Type::Hello)];
  }
  while (!c.out.empty()) {
    ssize_t n = ::send(c.fd.get(), c.out.data(), c.out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) break;
      close(c, fmt::format("send: {}", std::strerror(errno)));
      return;
    }
    c.out.erase(c.out.begin(), c.out.begin() + n);
    c.last_tx = Clock::now();
  }
}

bool Channel::write_frame(Conn& c, chan::Type t, const std::vector<uint8_t>& frame) {
  if (c.out.size() + frame.size() > opt_.max_out_bytes) {
    ++stats_.out_full;
    return false;
  }
  c.out.insert(c.out.end(), frame.begin(), frame.end());
  ++stats_.sent[static_cast<size_t>(t)];
  writable(c);
  return true;
}

void Channel::readable(Conn& c) {
  uint8_t buf[65536];
  for (;;) {
    ssize_t n = recv(c.fd.get(), buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0) {
      bool mid_frame = !c.in.empty();
      if (mid_frame) ++stats_.rejected[static_cast<size_t>(chan::Reject::Truncated)];
      close(c, mid_frame ? "closed by the peer inside a frame" : "closed by the peer");
      return;
    }
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) break;
      close(c, fmt::format("recv: {}", std::strerror(errno)));
      return;
    }
    c.in.insert(c.in.end(), buf, buf + n);
    if (static_cast<size_t>(n) < sizeof buf) break;
  }
  while (!c.dead) {
    bool was_established = c.s.established();
    auto m = c.s.next(c.in);
    if (!m) {
      ++stats_.rejected[static_cast<size_t>(m.error())];
      log::warn("ftc channel: refused a frame from {}: {}; closing the connection",
                c.node ? addr_str(c.node) : std::string("an unauthenticated peer"), chan::to_string(m.error()));
      close(c, std::string("refused: ") + chan::to_string(m.error()));
      return;
    }
    if (!*m) break;
    auto now = Clock::now();
    c.last_rx = now;
    chan::Type t = chan::type_of(**m);
    ++stats_.received[static_cast<size_t>(t)];
    if (!was_established && c.s.established()) {
      c.node = c.s.peer();
      established(c);
      if (c.dead) return;
    }
    Peer& p = peer(c.node);
    p.last_heard = now;
    ++p.received;
    if (auto& h = handlers_[static_cast<size_t>(t)]) h(c.node, **m);
  }
}

void Channel::established(Conn& c) {
  Peer& p = peer(c.node);
  c.counted_up = true;
  ++p.live;
  p.backoff = milliseconds{0};
  p.next_connect = {};
  p.last_error.clear();
  // a second connection of the pair: keep the one the lower node opened
  for (auto& o : conns_)
    if (o.get() != &c && !o->dead && o->node == c.node && o->s.established()) {
      bool c_preferred = c.outbound == (opt_.self < c.node);
      close(c_preferred ? *o : c, "duplicate connection");
      break;
    }
  if (!p.up && live(p)) {
    p.up = true;
    if (on_peer) on_peer(p.node, true);
  }
  flush_queue(p);
}

void Channel::flush_queue(Peer& p) {
  Conn* c = live(p);
  while (c && !p.queue.empty()) {
    chan::Body m = std::move(p.queue.front());
    p.queue.pop_front();
    auto f = c->s.seal(m);
    if (!f) {
      ++stats_.encode_failed;
      continue;
    }
    if (!write_frame(*c, chan::type_of(m), *f)) break;
    ++p.sent;
  }
}

void Channel::close(Conn& c, const std::string& why) {
  if (c.dead) return;
  c.dead = true;
  ++stats_.closed;
  c.fd.reset();
  if (!c.node) return;
  Peer& p = peer(c.node);
  p.last_error = why;
  if (c.counted_up) {
    c.counted_up = false;
    --p.live;
  }
  if (p.up && p.live == 0) {
    p.up = false;
    ++p.downs;
    log::info("ftc channel: {} down ({})", addr_str(p.node), why);
    if (on_peer) on_peer(p.node, false);
  }
}

void Channel::reap() {
  std::erase_if(conns_, [](const auto& c) { return c->dead; });
}

void Channel::on_timer(Clock::time_point now) {
  const auto dead_after = opt_.interval * opt_.misses;
  for (size_t i = 0; i < conns_.size(); ++i) {
    Conn& c = *conns_[i];
    if (c.dead) continue;
    if (now - c.last_rx > dead_after) {
      if (c.s.established()) ++stats_.detector_down;
      close(c, fmt::format("nothing heard for {} ms", duration_cast<milliseconds>(now - c.last_rx).count()));
      continue;
    }
    if (c.s.established() && !c.connecting && now - c.last_tx >= opt_.interval) {
      chan::Heartbeat hb{static_cast<uint64_t>(duration_cast<microseconds>(now.time_since_epoch()).count())};
      if (auto f = c.s.seal(hb); f) write_frame(c, chan::Type::Heartbeat, *f);
      c.last_tx = now;
    }
  }
  for (auto& [n, p] : peers_) {
    bool any = std::any_of(conns_.begin(), conns_.end(), [&](const auto& c) { return !c->dead && c->node == n; });
    if (!any && (p->wanted || !p->queue.empty())) connect_to(*p, now);
  }
  reap();
}

Channel::Clock::time_point Channel::next_timer() const {
  auto t = Clock::now() + opt_.interval / 2;
  for (const auto& [n, p] : peers_)
    if ((p->wanted || !p->queue.empty()) && !p->up) t = std::min(t, p->next_connect);
  return t;
}

std::vector<Channel::PeerStatus> Channel::peers() const {
  std::vector<PeerStatus> out;
  auto now = Clock::now();
  for (const auto& [n, p] : peers_) {
    PeerStatus s;
    s.node = n;
    s.wanted = p->wanted;
    s.up = p->up;
    s.connections = p->live;
    s.queued = p->queue.size();
    s.sent = p->sent;
    s.received = p->received;
    s.downs = p->downs;
    if (p->last_heard) s.last_heard = duration_cast<milliseconds>(now - *p->last_heard);
    s.last_error = p->last_error;
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace anychain::ftc
