#include "nf/ftc_control.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "anychain/ftc.h"
#include "anychain/maps.h"
#include "common/unique_fd.h"

namespace anychain::nf {

using json = nlohmann::json;

std::string ftc_control_path(const std::string& run_dir, const std::string& name) {
  return (std::filesystem::path(run_dir) / "ftc" / (name + ".json")).string();
}

json to_json(const FtcControl& c) {
  json peers = json::array();
  for (const auto& p : c.peers)
    peers.push_back({{"id", p.id}, {"incarnation", p.incarnation}, {"idle_timeout_s", p.idle_timeout_s}});
  return {{"version", 1}, {"f", c.f}, {"incarnation", c.incarnation}, {"peers", peers}, {"successors", c.successors}};
}

namespace {

Result<uint64_t> number(const json& j, const std::string& what, uint64_t lo, uint64_t hi) {
  if (!j.is_number_integer() || j.get<int64_t>() < 0)
    return fail(fmt::format("{}: a number {}..{}, not {}", what, lo, hi, j.dump()), EINVAL);
  uint64_t v = j.get<uint64_t>();
  if (v < lo || v > hi) return fail(fmt::format("{}: {} is out of range {}..{}", what, v, lo, hi), EINVAL);
  return v;
}

}  // namespace

Result<FtcControl> ftc_control_from_json(const json& j) {
  if (!j.is_object()) return fail("not a JSON object", EINVAL);
  for (const auto& [k, v] : j.items())
    if (k != "version" && k != "f" && k != "incarnation" && k != "peers" && k != "successors")
      return fail(fmt::format("unknown key '{}' (version, f, incarnation, peers, successors)", k), EINVAL);
  FtcControl c;
  if (j.contains("version")) {
    auto v = number(j["version"], "version", 1, 1);
    if (!v) return unexpected(v.error());
  }
  if (j.contains("f")) {
    auto v = number(j["f"], "f", AC_FTC_F_MIN, AC_FTC_F_MAX);
    if (!v) return unexpected(v.error());
    c.f = static_cast<uint8_t>(*v);
  }
  if (j.contains("incarnation")) {
    auto v = number(j["incarnation"], "incarnation", 0, 255);
    if (!v) return unexpected(v.error());
    c.incarnation = static_cast<uint8_t>(*v);
  }
  std::set<uint64_t> seen;
  if (j.contains("peers")) {
    if (!j["peers"].is_array()) return fail("peers: a list of {id, incarnation, idle_timeout_s}", EINVAL);
    for (size_t i = 0; i < j["peers"].size(); ++i) {
      const json& e = j["peers"][i];
      const std::string what = fmt::format("peers[{}]", i);
      if (!e.is_object() || !e.contains("id")) return fail(what + ": an object with an id", EINVAL);
      for (const auto& [k, v] : e.items())
        if (k != "id" && k != "incarnation" && k != "idle_timeout_s")
          return fail(fmt::format("{}: unknown key '{}' (id, incarnation, idle_timeout_s)", what, k), EINVAL);
      FtcPeer p;
      auto id = number(e["id"], what + ".id", 1, AC_MAX_INSTANCES - 1);
      if (!id) return unexpected(id.error());
      if (!seen.insert(*id).second) return fail(fmt::format("{}.id: {} listed twice", what, *id), EINVAL);
      p.id = static_cast<uint16_t>(*id);
      if (e.contains("incarnation")) {
        auto v = number(e["incarnation"], what + ".incarnation", 0, 255);
        if (!v) return unexpected(v.error());
        p.incarnation = static_cast<uint8_t>(*v);
      }
      if (e.contains("idle_timeout_s")) {
        auto v = number(e["idle_timeout_s"], what + ".idle_timeout_s", 0, 86400 * 365);
        if (!v) return unexpected(v.error());
        p.idle_timeout_s = static_cast<uint32_t>(*v);
      }
      c.peers.push_back(p);
    }
  }
  if (j.contains("successors")) {
    if (!j["successors"].is_array()) return fail("successors: a list of instance ids", EINVAL);
    for (size_t i = 0; i < j["successors"].size(); ++i) {
      auto v = number(j["successors"][i], fmt::format("successors[{}]", i), 1, AC_MAX_INSTANCES - 1);
      if (!v) return unexpected(v.error());
      c.successors.push_back(static_cast<uint16_t>(*v));
    }
  }
  return c;
}

Result<FtcControl> read_ftc_control(const std::string& path) {
  std::ifstream f(path);
  if (!f) return fail_errno(fmt::format("read {}", path));
  std::stringstream ss;
  ss << f.rdbuf();
  json j = json::parse(ss.str(), nullptr, false);
  if (j.is_discarded()) return fail(fmt::format("{}: not JSON", path), EINVAL);
  auto c = ftc_control_from_json(j);
  if (!c) return unexpected(wrap(c.error(), path));
  return c;
}

Result<void> write_ftc_control(const std::string& path, const FtcControl& c) {
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return fail(fmt::format("create {}: {}", dir.string(), ec.message()), ec.value());
  const std::string tmp = path + ".tmp";
  const std::string text = to_json(c).dump(1) + "\n";
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) return fail_errno(fmt::format("create {}", tmp));
  for (size_t off = 0; off < text.size();) {
    ssize_t n = ::write(fd.get(), text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail_errno(fmt::format("write {}", tmp));
    off += static_cast<size_t>(n);
  }
  fd.reset();
  if (::rename(tmp.c_str(), path.c_str()) != 0) return fail_errno(fmt::format("rename {} to {}", tmp, path));
  return {};
}

}  // namespace anychain::nf
