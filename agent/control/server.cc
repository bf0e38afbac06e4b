#include "control/server.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <filesystem>

#include <fmt/format.h>

namespace anychain::control {
namespace {

Result<sockaddr_un> unix_addr(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(a.sun_path))
    return fail(fmt::format("socket path '{}' is empty or longer than {} bytes", path, sizeof(a.sun_path) - 1), ENAMETOOLONG);
  path.copy(a.sun_path, path.size());
  return a;
}

std::string response_line(const json& j) { return j.dump() + "\n"; }

}  // namespace

Server::Server(Handler& h, Options opts, UniqueFd fd, dev_t dev, ino_t ino)
    : handler_(&h), opts_(std::move(opts)), listen_(std::move(fd)), dev_(dev), ino_(ino) {}
Server::Server(Server&&) noexcept = default;
Server& Server::operator=(Server&&) noexcept = default;

Server::~Server() {
  if (!listen_) return;  // moved from
  clients_.clear();
  // remove the socket file only if it is still ours
  struct stat st{};
  if (::stat(opts_.path.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_) ::unlink(opts_.path.c_str());
}

Result<Server> Server::listen(Handler& h, Options opts) {
  auto addr = unix_addr(opts.path);
  if (!addr) return std::unexpected(addr.error());
  std::filesystem::path dir = std::filesystem::path(opts.path).parent_path();
  if (!dir.empty() && !std::filesystem::exists(dir)) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return fail(fmt::format("create {}: {}", dir.string(), ec.message()), ec.value());
    ::chmod(dir.c_str(), 0700);
  }
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return fail_errno("create the control socket");
  struct stat st{};
  if (::lstat(opts.path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return fail(fmt::format("{} exists and is not a socket", opts.path), EEXIST);
    // a live server answers connect(); a stale file from a crashed daemon does not
    UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (probe && ::connect(probe.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof(*addr)) == 0)
      return fail(fmt::format("another anychaind is listening on {}", opts.path), EADDRINUSE);
    ::unlink(opts.path.c_str());
  }
  // bind with a umask that leaves the socket owner-only from the start, then make sure
  mode_t old = ::umask(0177);
  int rc = ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof(*addr));
  int err = errno;
  ::umask(old);
  if (rc != 0) return fail_errno(fmt::format("bind {}", opts.path), err);
  if (::chmod(opts.path.c_str(), 0600) != 0) return fail_errno(fmt::format("chmod 0600 {}", opts.path));
  if (::listen(fd.get(), 16) != 0) return fail_errno(fmt::format("listen on {}", opts.path));
  if (::stat(opts.path.c_str(), &st) != 0) return fail_errno(fmt::format("stat {}", opts.path));
  return Server(h, std::move(opts), std::move(fd), st.st_dev, st.st_ino);
}

std::vector<pollfd> Server::poll_fds() const {
  std::vector<pollfd> out;
  out.push_back({listen_.get(), POLLIN, 0});
  for (const auto& [fd, c] : clients_) {
    short ev = c.closing ? 0 : POLLIN;
    if (!c.out.empty()) ev |= POLLOUT;
    out.push_back({fd, ev, 0});
  }
  return out;
}

void Server::on_event(int fd, short revents) {
  if (fd == listen_.get()) {
    if (revents & POLLIN) accept_all();
    reap();
    return;
  }
  auto it = clients_.find(fd);
  if (it == clients_.end()) return;
  if (revents & (POLLIN | POLLHUP | POLLERR)) read_from(it->second);
  if (revents & POLLOUT) flush(it->second);
  reap();
}

void Server::on_readable(int fd) { on_event(fd, POLLIN); }
void Server::on_writable(int fd) { on_event(fd, POLLOUT); }

void Server::accept_all() {
  for (;;) {
    UniqueFd c(::accept4(listen_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!c) return;  // EAGAIN: drained (other errors: the client is gone, nothing to do)
    Conn conn{std::move(c), {}, {}, false};
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(conn.fd.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.uid != opts_.allowed_uid) {
      conn.out = response_line(error_response_for_peer(cred.uid));
      conn.closing = true;
    } else if (clients_.size() >= opts_.max_clients) {
      conn.out = response_line(json{{"ok", false}, {"error", "too many control connections"}, {"code", EBUSY}});
      conn.closing = true;
    }
    int fd = conn.fd.get();
    auto& ref = clients_.emplace(fd, std::move(conn)).first->second;
    if (!ref.out.empty()) flush(ref);
  }
}

json Server::error_response_for_peer(uid_t uid) {
  return json{{"ok", false},
              {"error", fmt::format("permission denied: the anychaind control socket is for root only (peer uid {})", uid)},
              {"code", EPERM}};
}

void Server::read_from(Conn& c) {
  char buf[16384];
  // a bounded amount of work per event, so one busy client cannot hold the daemon's loop
  for (int round = 0; round < 16; ++round) {
    ssize_t n = ::read(c.fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        c.out.clear();
        c.closing = true;
      }
      break;
    }
    if (n == 0) {  // peer closed its side: answer what it sent, then close
      c.closing = true;
      break;
    }
    if (c.closing) continue;  // refused peer: discard
    c.in.append(buf, static_cast<size_t>(n));
    size_t start = 0;
    for (size_t nl; (nl = c.in.find('\n', start)) != std::string::npos; start = nl + 1) {
      std::string_view line(c.in.data() + start, nl - start);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
      if (line.size() > opts_.max_request) break;  // reported below
      c.out += response_line(dispatch(*handler_, line));
    }
    c.in.erase(0, start);
    if (c.in.size() > opts_.max_request) {
      c.out += response_line(json{{"ok", false},
                                  {"error", fmt::format("request larger than {} bytes", opts_.max_request)},
                                  {"code", E2BIG}});
      c.in.clear();
      c.closing = true;
      break;
    }
  }
  flush(c);
}

void Server::flush(Conn& c) {
  while (!c.out.empty()) {
    ssize_t n = ::send(c.fd.get(), c.out.data(), c.out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {  // peer gone
        c.out.clear();
        c.closing = true;
      }
      break;
    }
    c.out.erase(0, static_cast<size_t>(n));
  }
  if (c.out.size() > opts_.max_pending_output) {  // not reading its answers: drop it
    c.out.clear();
    c.closing = true;
  }
}

void Server::reap() {
  for (auto it = clients_.begin(); it != clients_.end();) {
    if (it->second.closing && it->second.out.empty())
      it = clients_.erase(it);
    else
      ++it;
  }
}

}  // namespace anychain::control
