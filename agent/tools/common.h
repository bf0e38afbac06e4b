// Small helpers shared by the lab tools: clocks, an owned fd, stop signals, JSON and atomic
// file replacement.
#pragma once

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>
#include <cstdint>
#include <optional>
#include <expected>
#include <string>
#include <string_view>
#include <vector>

#include "common/options.h"
#include "common/unique_fd.h"

namespace anychain::tools {

using anychain::parse_command_line;

std::uint64_t mono_ns();  // CLOCK_MONOTONIC
std::uint64_t real_ns();  // CLOCK_REALTIME

using Fd = anychain::UniqueFd;

// "what: strerror(errno)" for the current errno.
std::string errno_text(std::string_view what);

// SIGTERM/SIGINT set a flag (no SA_RESTART, so blocking calls return EINTR).
void install_stop_signals();
bool stop_requested();

// The tools' JSON documents keep their keys in the order written (docs/tools.md lists them so).
using Json = nlohmann::ordered_json;

// Writes `content` to `path` through a temporary file and rename(2), so readers never see a
// half-written file.
std::expected<void, std::string> write_file_atomic(const std::string& path,
                                                   std::string_view content);

}  // namespace anychain::tools
