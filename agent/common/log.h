// Leveled logging to stderr (the journal under systemd): "anychaind: <level>: message".
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>

#include <fmt/format.h>

namespace anychain::log {

enum class Level { Error = 0, Warn, Info, Debug };

inline Level& threshold() {
  static Level l = Level::Info;
  return l;
}
inline bool parse_level(std::string_view s, Level& out) {
  if (s == "error") out = Level::Error;
  else if (s == "warn" || s == "warning") out = Level::Warn;
  else if (s == "info") out = Level::Info;
  else if (s == "debug") out = Level::Debug;
  else return false;
  return true;
}

template <class... A>
void write(Level l, fmt::format_string<A...> f, A&&... a) {
  if (l > threshold()) return;
  static constexpr const char* names[] = {"error", "warning", "info", "debug"};
  // <N> prefixes are read by journald as syslog priorities
  static constexpr int prio[] = {3, 4, 6, 7};
  static const bool journal = std::getenv("JOURNAL_STREAM") != nullptr;
  std::string line = (journal ? "<" + std::to_string(prio[static_cast<int>(l)]) + ">" : std::string()) +
                     "anychaind: " + names[static_cast<int>(l)] + ": " + fmt::format(f, std::forward<A>(a)...) + "\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}
// The format string is checked at compile time ({fmt}).
template <class... A> void error(fmt::format_string<A...> f, A&&... a) { write(Level::Error, f, std::forward<A>(a)...); }
template <class... A> void warn(fmt::format_string<A...> f, A&&... a) { write(Level::Warn, f, std::forward<A>(a)...); }
template <class... A> void info(fmt::format_string<A...> f, A&&... a) { write(Level::Info, f, std::forward<A>(a)...); }
template <class... A> void debug(fmt::format_string<A...> f, A&&... a) { write(Level::Debug, f, std::forward<A>(a)...); }

}  // namespace anychain::log
