// Leveled logging to stderr: "2026/11/28 00:13:14.123 anychaind: <level>: message" (the time as
// FRR's daemons write it, local time with milliseconds), or, under systemd (JOURNAL_STREAM set),
// "<prio>anychaind: <level>: message", the journal adding the time itself.
#pragma once

#include <sys/time.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
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

// "2026/11/28 00:13:14.123 " (local time; empty if the clock cannot be read).
inline std::string stamp() {
  timeval tv{};
  tm t{};
  char buf[32];
  if (gettimeofday(&tv, nullptr) != 0 || !localtime_r(&tv.tv_sec, &t) || !std::strftime(buf, sizeof buf, "%Y/%m/%d %H:%M:%S", &t))
    return {};
  return fmt::format("{}.{:03d} ", buf, static_cast<int>(tv.tv_usec / 1000));
}

template <class... A>
void write(Level l, fmt::format_string<A...> f, A&&... a) {
  if (l > threshold()) return;
  static constexpr const char* names[] = {"error", "warning", "info", "debug"};
  // <N> prefixes are read by journald as syslog priorities
  static constexpr int prio[] = {3, 4, 6, 7};
  static const bool journal = std::getenv("JOURNAL_STREAM") != nullptr;
  std::string line = (journal ? "<" + std::to_string(prio[static_cast<int>(l)]) + ">" : stamp()) +
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
