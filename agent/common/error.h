// Errors as values: every fallible call returns Result<T>, carrying errno and context.
#pragma once

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <version>

#if defined(__cpp_lib_expected)
#include <expected>
#else
#include <optional>
#include <type_traits>
#include <variant>
#endif

namespace anychain {

struct Error {
  int code = 0;         // errno value, or 0 for errors that are not system errors
  std::string message;  // what failed, naming the input

  std::string str() const {
    if (code == 0) return message;
    return message + ": " + std::strerror(code);
  }
};

#if defined(__cpp_lib_expected)
using std::expected;
using std::unexpected;
#else
// Fallback for toolchains whose standard library lacks <expected> (clang 14 with libstdc++
// 12 builds the fuzz targets): the subset of std::expected this code uses.
template <class E>
class unexpected {
 public:
  explicit unexpected(E e) : e_(std::move(e)) {}
  E& error() & { return e_; }
  E&& error() && { return std::move(e_); }

 private:
  E e_;
};
template <class E>
unexpected(E) -> unexpected<E>;

template <class T, class E>
class expected {
 public:
  expected() requires std::is_default_constructible_v<T> : v_(std::in_place_index<0>) {}
  template <class U = T>
    requires std::is_constructible_v<T, U&&> && (!std::is_same_v<std::remove_cvref_t<U>, expected>)
  expected(U&& u) : v_(std::in_place_index<0>, std::forward<U>(u)) {}
  template <class G>
  expected(unexpected<G> u) : v_(std::in_place_index<1>, std::move(u).error()) {}
  [[nodiscard]] bool has_value() const { return v_.index() == 0; }
  explicit operator bool() const { return has_value(); }
  T& operator*() & { return std::get<0>(v_); }
  const T& operator*() const& { return std::get<0>(v_); }
  T&& operator*() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &std::get<0>(v_); }
  const T* operator->() const { return &std::get<0>(v_); }
  T& value() & { return std::get<0>(v_); }
  const E& error() const& { return std::get<1>(v_); }
  E& error() & { return std::get<1>(v_); }

 private:
  std::variant<T, E> v_;
};

template <class E>
class expected<void, E> {
 public:
  expected() = default;
  template <class G>
  expected(unexpected<G> u) : e_(std::move(u).error()) {}
  [[nodiscard]] bool has_value() const { return !e_.has_value(); }
  explicit operator bool() const { return has_value(); }
  void operator*() const {}
  const E& error() const& { return *e_; }
  E& error() & { return *e_; }

 private:
  std::optional<E> e_;
};
#endif

template <class T = void>
using Result = expected<T, Error>;

inline unexpected<Error> fail(std::string msg, int code = 0) { return unexpected<Error>(Error{code, std::move(msg)}); }
// errno (or a negative libbpf return) as an error
inline unexpected<Error> fail_errno(std::string msg, int err = errno) {
  return unexpected<Error>(Error{err < 0 ? -err : err, std::move(msg)});
}
// Prefix the message of an error (for propagating with more detail).
inline Error wrap(Error e, const std::string& prefix) {
  e.message = prefix + ": " + e.message;
  return e;
}

}  // namespace anychain
