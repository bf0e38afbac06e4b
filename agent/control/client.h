// The control socket's client side (blocking, every call bounded by a timeout), for the CLI.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "common/error.h"
#include "common/unique_fd.h"
#include "control/protocol.h"

namespace anychain::control {

class Client {
 public:
  // Errors: ENOENT / ECONNREFUSED when no daemon listens (the CLI's exit code 3),
  // EACCES when the socket is root-only and we are not root, ETIMEDOUT.
  static Result<Client> connect(const std::string& path = kDefaultSocket,
                                std::chrono::milliseconds timeout = std::chrono::seconds(10));

  // Send {"cmd": cmd, "args": args}; return "result" of an ok response, or the response's
  // error as Error{code, message}. Transport failures carry their errno (EPIPE, ETIMEDOUT,
  // ECONNRESET, EPROTO for a response that is not JSON).
  Result<json> call(std::string_view cmd, const json& args = json::object());

  // The raw exchange: one request object out, one response object back.
  Result<json> request(const json& req);

  // The daemon's process id as the kernel saw it connect (SO_PEERCRED), 0 if unknown.
  int peer_pid() const;

 private:
  Client(UniqueFd fd, std::chrono::milliseconds timeout) : fd_(std::move(fd)), timeout_(timeout) {}
  UniqueFd fd_;
  std::chrono::milliseconds timeout_;
  std::string buf_;
};

// True for the errors of Client::connect() that mean "no daemon is running".
bool daemon_absent(const Error& e);

}  // namespace anychain::control
