#include "nf/published.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/unique_fd.h"

namespace anychain::nf {

using json = nlohmann::json;

json to_json(const Published& p) {
  json j{{"name", p.name},       {"kind", std::string(to_string(p.kind))},
         {"instance_id", p.instance_id}, {"pid", p.pid},
         {"incarnation", p.incarnation}, {"iface", p.iface},
         {"ifindex", p.ifindex},   {"program", p.program},
         {"prog_id", p.prog_id},   {"link_id", p.link_id},
         {"maps", p.maps},         {"progs", p.progs}};
  if (p.crdt) {
    json objs = json::array();
    for (const auto& o : p.crdt->objects)
      objs.push_back({{"id", o.id}, {"kind", o.kind}, {"map", o.map}, {"cells", o.cells}, {"key_size", o.key_size},
                      {"rows", o.rows}, {"generation", o.generation}, {"map_id", o.map_id}, {"expire_s", o.expire_s}});
    j["crdt"] = {{"merge_prog_id", p.crdt->merge_prog_id}, {"ctl_map_id", p.crdt->ctl_map_id},
                 {"changes_map_id", p.crdt->changes_map_id}, {"stats_map_id", p.crdt->stats_map_id},
                 {"win_map_id", p.crdt->win_map_id}, {"window_s", p.crdt->window_s}, {"objects", objs}};
  } else {
    j["crdt"] = nullptr;
  }
  return j;
}

Result<Published> published_from_json(const json& j) {
  try {
    Published p;
    p.name = j.at("name").get<std::string>();
    auto k = parse_kind(j.at("kind").get<std::string>());
    if (!k) return fail(fmt::format("unknown kind '{}'", j.at("kind").get<std::string>()), EINVAL);
    p.kind = *k;
    p.instance_id = j.at("instance_id").get<uint32_t>();
    p.pid = j.at("pid").get<int>();
    p.incarnation = j.at("incarnation").get<uint64_t>();
    p.iface = j.at("iface").get<std::string>();
    p.ifindex = j.at("ifindex").get<int>();
    p.program = j.at("program").get<std::string>();
    p.prog_id = j.at("prog_id").get<uint32_t>();
    p.link_id = j.at("link_id").get<uint32_t>();
    p.maps = j.at("maps").get<std::map<std::string, uint32_t>>();
    p.progs = j.at("progs").get<std::map<std::string, uint32_t>>();
    if (j.contains("crdt") && !j["crdt"].is_null()) {
      const json& c = j["crdt"];
      p.crdt.emplace();
      p.crdt->merge_prog_id = c.at("merge_prog_id").get<uint32_t>();
      p.crdt->ctl_map_id = c.at("ctl_map_id").get<uint32_t>();
      p.crdt->changes_map_id = c.at("changes_map_id").get<uint32_t>();
      p.crdt->stats_map_id = c.at("stats_map_id").get<uint32_t>();
      p.crdt->win_map_id = c.value("win_map_id", 0u);
      p.crdt->window_s = c.value("window_s", 0u);
      if (c.contains("objects"))
        for (const json& o : c["objects"])
          p.crdt->objects.push_back({o.at("id").get<uint8_t>(), o.at("kind").get<std::string>(),
                                     o.at("map").get<std::string>(), o.at("cells").get<uint32_t>(),
                                     o.at("key_size").get<uint8_t>(), o.at("rows").get<uint8_t>(),
                                     o.at("generation").get<int>(), o.at("map_id").get<uint32_t>(),
                                     o.value("expire_s", 0u)});
    }
    return p;
  } catch (const json::exception& e) {
    return fail(fmt::format("malformed: {}", e.what()), EINVAL);
  }
}

std::string published_path(const std::string& run_dir, const std::string& name) {
  return (std::filesystem::path(run_dir) / (name + ".json")).string();
}

Result<nlohmann::json> read_json_file(const std::string& path) {
  std::ifstream f(path);
  if (!f) return fail_errno(fmt::format("read {}", path));
  std::stringstream ss;
  ss << f.rdbuf();
  json j = json::parse(ss.str(), nullptr, false);
  if (j.is_discarded()) return fail(fmt::format("{}: not JSON", path), EINVAL);
  return j;
}

Result<void> write_file_atomic(const std::string& path, const std::string& text) {
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return fail(fmt::format("create {}: {}", dir.string(), ec.message()), ec.value());
  std::string tmp = path + ".tmp";
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

Result<Published> read_published(const std::string& path) {
  auto j = read_json_file(path);
  if (!j) return unexpected(j.error());
  auto p = published_from_json(*j);
  if (!p) return unexpected(wrap(p.error(), path));
  return p;
}

Result<void> write_published(const std::string& path, const Published& p) {
  return write_file_atomic(path, to_json(p).dump(1) + "\n");
}

}  // namespace anychain::nf
