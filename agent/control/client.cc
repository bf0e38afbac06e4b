#include "control/client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <fmt/format.h>

namespace anychain::control {
namespace {

using Clock = std::chrono::steady_clock;

// Wait for events on fd until the deadline.
Result<void> wait_for(int fd, short events, Clock::time_point deadline, const char* what) {
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return fail(fmt::format("timed out waiting for anychaind to {}", what), ETIMEDOUT);
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, static_cast<int>(left));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail_errno("poll the control socket");
    if (n > 0) return {};
  }
}

}  // namespace

bool daemon_absent(const Error& e) { return e.code == ENOENT || e.code == ECONNREFUSED; }

Result<Client> Client::connect(const std::string& path, std::chrono::milliseconds timeout) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(a.sun_path)) return fail(fmt::format("bad socket path '{}'", path), ENAMETOOLONG);
  path.copy(a.sun_path, path.size());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return fail_errno("create a socket");
  auto deadline = Clock::now() + timeout;
  int rc;
  // EAGAIN: the server's backlog is full; try again until the deadline
  while ((rc = ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a)) != 0 && errno == EAGAIN &&
         Clock::now() < deadline)
    ::poll(nullptr, 0, 10);
  if (rc != 0) {
    int err = errno;
    if (err == EAGAIN) return fail_errno(fmt::format("anychaind does not accept connections on {}", path), ETIMEDOUT);
    if (err == EINPROGRESS) {
      if (auto w = wait_for(fd.get(), POLLOUT, deadline, "accept the connection"); !w)
        return std::unexpected(w.error());
      socklen_t len = sizeof err;
      ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
      if (err == 0) return Client(std::move(fd), timeout);
    }
    if (err == ENOENT || err == ECONNREFUSED)
      return fail_errno(fmt::format("anychaind is not running (no listener on {})", path), err);
    if (err == EACCES) return fail_errno(fmt::format("cannot connect to {} (the control socket is root only)", path), err);
    return fail_errno(fmt::format("connect to {}", path), err);
  }
  return Client(std::move(fd), timeout);
}

Result<json> Client::request(const json& req) {
  auto deadline = Clock::now() + timeout_;
  std::string out = req.dump() + "\n";
  for (size_t off = 0; off < out.size();) {
    ssize_t n = ::send(fd_.get(), out.data() + off, out.size() - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        if (auto w = wait_for(fd_.get(), POLLOUT, deadline, "read the request"); !w) return std::unexpected(w.error());
        continue;
      }
      return fail_errno("send to anychaind");
    }
    off += static_cast<size_t>(n);
  }
  for (;;) {
    if (auto nl = buf_.find('\n'); nl != std::string::npos) {
      std::string line = buf_.substr(0, nl);
      buf_.erase(0, nl + 1);
      try {
        json r = json::parse(line);
        if (!r.is_object() || !r.contains("ok")) return fail("malformed response from anychaind", EPROTO);
        return r;
      } catch (const json::exception& e) {
        return fail(fmt::format("malformed response from anychaind: {}", e.what()), EPROTO);
      }
    }
    if (auto w = wait_for(fd_.get(), POLLIN, deadline, "answer"); !w) return std::unexpected(w.error());
    char b[16384];
    ssize_t n = ::recv(fd_.get(), b, sizeof b, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) return fail_errno("read from anychaind");
    if (n == 0) return fail("anychaind closed the connection without an answer", ECONNRESET);
    buf_.append(b, static_cast<size_t>(n));
  }
}

Result<json> Client::call(std::string_view cmd, const json& args) {
  auto r = request(json{{"cmd", cmd}, {"args", args}});
  if (!r) return r;
  if (r->value("ok", false)) return r->value("result", json());
  int code = (*r)["code"].is_number_integer() ? (*r)["code"].get<int>() : EIO;
  return fail((*r).value("error", std::string("anychaind reported an error")), code);
}

int Client::peer_pid() const {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd_.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return 0;
  return cred.pid;
}

}  // namespace anychain::control
