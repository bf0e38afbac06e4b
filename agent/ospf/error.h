// Errors as values for the agent's control plane: an errno-style code plus context.
#pragma once

#include <cerrno>
#include <cstring>
#include <expected>
#include <string>
#include <utility>

namespace anychain::ospf {

struct Error {
  int code = 0;         // errno value (EBADMSG, EPROTO, ETIMEDOUT, ...)
  std::string context;  // human-readable: what failed and why

  [[nodiscard]] std::string what() const {
    return context + " (" + std::strerror(code) + ")";
  }
};

template <class T>
using Result = std::expected<T, Error>;

inline std::unexpected<Error> fail(int code, std::string context) {
  return std::unexpected<Error>(Error{code, std::move(context)});
}

// Prefix the context of an error (for propagating with more detail).
inline Error wrap(Error e, const std::string& prefix) {
  e.context = prefix + ": " + e.context;
  return e;
}

}  // namespace anychain::ospf
