// Leveled logging to stderr (the journal under systemd): "anychaind: <level>: message".
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/format.h"

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
void write(Level l, std::string_view f, const A&... a) {
  if (l > threshold()) return;
  static constexpr const char* names[] = {"error", "warning", "info", "debug"};
  // <N> prefixes are read by journald as syslog priorities
  static constexpr int prio[] = {3, 4, 6, 7};
  static const bool journal = std::getenv("JOURNAL_STREAM") != nullptr;
  std::string line = (journal ? "<" + std::to_string(prio[static_cast<int>(l)]) + ">" : std::string()) +
                     "anychaind: " + names[static_cast<int>(l)] + ": " + format(f, a...) + "\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}
template <class... A> void error(std::string_view f, const A&... a) { write(Level::Error, f, a...); }
template <class... A> void warn(std::string_view f, const A&... a) { write(Level::Warn, f, a...); }
template <class... A> void info(std::string_view f, const A&... a) { write(Level::Info, f, a...); }
template <class... A> void debug(std::string_view f, const A&... a) { write(Level::Debug, f, a...); }

}  // namespace anychain::log
