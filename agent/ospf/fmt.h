// Minimal "{}" formatter (g++ 12's libstdc++ has no <format>). Each "{}" takes the next
// argument; 8-bit integers print as numbers.
#pragma once

#include <cstdint>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>

namespace anychain::ospf {
namespace detail {
template <class T>
void put_arg(std::ostringstream& os, const T& v) {
  if constexpr (std::is_integral_v<T> && sizeof(T) == 1 && !std::is_same_v<T, bool>)
    os << static_cast<int>(v);
  else
    os << v;
}
}  // namespace detail

template <class... A>
std::string fmt(std::string_view f, const A&... args) {
  std::ostringstream os;
  std::size_t pos = 0;
  auto one = [&](const auto& v) {
    auto at = f.find("{}", pos);
    if (at == std::string_view::npos) return;
    os << f.substr(pos, at - pos);
    detail::put_arg(os, v);
    pos = at + 2;
  };
  (one(args), ...);
  os << f.substr(pos);
  return os.str();
}

}  // namespace anychain::ospf
