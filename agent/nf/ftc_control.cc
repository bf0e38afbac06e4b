#include "nf/ftc_control.h"

#include <fmt/format.h>

#include <filesystem>
#include <set>

#include "anychain/ftc.h"
#include "anychain/maps.h"
#include "nf/published.h"

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
  auto j = read_json_file(path);
  if (!j) return unexpected(j.error());
  auto c = ftc_control_from_json(*j);
  if (!c) return unexpected(wrap(c.error(), path));
  return c;
}

Result<void> write_ftc_control(const std::string& path, const FtcControl& c) {
  return write_file_atomic(path, to_json(c).dump(1) + "\n");
}

}  // namespace anychain::nf
