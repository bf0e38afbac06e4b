// Errors as values: every fallible call returns Result<T>, carrying errno and context.
#pragma once

#include <cerrno>
#include <cstring>
#include <expected>
#include <string>
#include <utility>

namespace anychain {

struct Error {
  int code = 0;         // errno value, or 0 for errors that are not system errors
  std::string message;  // what failed, naming the input

  std::string str() const {
    if (code == 0) return message;
    return message + ": " + std::strerror(code);
  }
};

template <class T = void>
using Result = std::expected<T, Error>;

inline std::unexpected<Error> fail(std::string msg, int code = 0) {
  return std::unexpected(Error{code, std::move(msg)});
}
// errno (or a negative libbpf return) as an error
inline std::unexpected<Error> fail_errno(std::string msg, int err = errno) {
  return std::unexpected(Error{err < 0 ? -err : err, std::move(msg)});
}

}  // namespace anychain
