// The control socket's server side: poll()-driven, never blocks the daemon's loop.
//
//   auto srv = control::Server::listen(handler, {.path = "/run/anychain/anychaind.sock"});
//   for (;;) {
//     std::vector<pollfd> fds = srv->poll_fds();          // + the daemon's own fds
//     poll(fds.data(), fds.size(), timeout);
//     for (auto& p : fds) if (p.revents) srv->on_event(p.fd, p.revents);
//   }
//
// Every socket is non-blocking. Requests are read as they arrive (a line at most max_request
// bytes, else the client gets an E2BIG error and is disconnected), each complete line is
// dispatched to the Handler and its response queued; queued output is written when the socket
// is writable (poll_fds() asks for POLLOUT then), and a client that lets more than
// max_pending_output bytes pile up is disconnected. Peers are checked with SO_PEERCRED on
// accept: a peer whose uid is not allowed_uid (root) gets an EPERM error line and is closed.
#pragma once

#include <poll.h>
#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/unique_fd.h"
#include "control/protocol.h"

namespace anychain::control {

class Server {
 public:
  struct Options {
    std::string path = kDefaultSocket;
    size_t max_request = kMaxRequest;
    size_t max_clients = 32;
    size_t max_pending_output = 4 << 20;
    uid_t allowed_uid = 0;
  };

  // Create the socket's directory (0700) if missing, replace a stale socket (refuses when
  // another server still answers on it), bind, chmod 0600, listen.
  static Result<Server> listen(Handler& h, Options opts);

  Server(Server&&) noexcept;
  Server& operator=(Server&&) noexcept;
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  ~Server();  // closes every connection and removes the socket file

  // The listening socket and every client, with the events to poll for.
  std::vector<pollfd> poll_fds() const;
  // Handle poll()'s revents for fd (from poll_fds()). Unknown fds are ignored.
  void on_event(int fd, short revents);
  void on_readable(int fd);
  void on_writable(int fd);

  const std::string& path() const { return opts_.path; }
  int listen_fd() const { return listen_.get(); }
  size_t clients() const { return clients_.size(); }

 private:
  struct Conn {
    UniqueFd fd;
    std::string in;
    std::string out;
    bool closing = false;  // close once out is flushed
  };
  Server(Handler& h, Options opts, UniqueFd fd, dev_t dev, ino_t ino);
  void accept_all();
  void read_from(Conn& c);
  void flush(Conn& c);
  void reap();
  static json error_response_for_peer(uid_t uid);

  Handler* handler_;
  Options opts_;
  UniqueFd listen_;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  std::map<int, Conn> clients_;
};

}  // namespace anychain::control
