// A small "{}" formatter (g++ 12's libstdc++ has no <format>): each "{}" takes the next
// argument through operator<<; "{{" and "}}" are literal braces. Extra arguments are appended.
#pragma once

#include <sstream>
#include <string>
#include <string_view>

namespace anychain {

namespace detail {
inline void format_rest(std::ostringstream& os, std::string_view f) {
  for (size_t i = 0; i < f.size(); ++i) {
    if ((f[i] == '{' || f[i] == '}') && i + 1 < f.size() && f[i + 1] == f[i]) ++i;
    os << f[i];
  }
}
template <class T, class... Rest>
void format_rest(std::ostringstream& os, std::string_view f, const T& v, const Rest&... rest) {
  for (size_t i = 0; i < f.size(); ++i) {
    if (f[i] == '{' && i + 1 < f.size() && f[i + 1] == '}') {
      if constexpr (std::is_same_v<T, uint8_t> || std::is_same_v<T, int8_t>)
        os << static_cast<int>(v);
      else
        os << v;
      format_rest(os, f.substr(i + 2), rest...);
      return;
    }
    if ((f[i] == '{' || f[i] == '}') && i + 1 < f.size() && f[i + 1] == f[i]) ++i;
    os << f[i];
  }
  os << ' ' << v;
  (void)(os << ... << rest);
}
}  // namespace detail

template <class... Args>
std::string format(std::string_view f, const Args&... args) {
  std::ostringstream os;
  detail::format_rest(os, f, args...);
  return os.str();
}

}  // namespace anychain
