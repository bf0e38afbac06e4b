#include "control/config_store.h"

#include <algorithm>

#include <fmt/format.h>

namespace anychain::control {
namespace {

std::string joined(const config::Diagnostics& d) {
  std::string out;
  for (const auto& e : d) out += (out.empty() ? "" : "\n") + e.str();
  return out;
}

template <class T>
bool has_name(const std::vector<T>& v, const std::string& name) {
  return std::any_of(v.begin(), v.end(), [&](const T& e) { return e.name == name; });
}

template <class T>
json list(const std::vector<T>& v) {
  json out = json::array();
  for (const auto& e : v) out.push_back(to_json(e));
  return out;
}

// Remove the named entry from v; returns it, or ENOENT.
template <class T>
Result<T> take(std::vector<T>& v, const std::string& name, const char* what) {
  auto it = std::find_if(v.begin(), v.end(), [&](const T& e) { return e.name == name; });
  if (it == v.end()) return fail(fmt::format("no {} named '{}'", what, name), ENOENT);
  T out = *it;
  v.erase(it);
  return out;
}

}  // namespace

Result<ConfigStore> ConfigStore::load(const std::string& path) {
  auto c = config::load_file(path);
  if (!c) return fail(joined(c.error()), EINVAL);
  return ConfigStore(std::move(*c), path);
}

Result<void> ConfigStore::reload() {
  if (path_.empty()) return fail("no config file to reload", EINVAL);
  auto c = config::load_file(path_);
  if (!c) return fail(joined(c.error()), EINVAL);
  config_ = std::move(*c);
  return {};
}

Result<void> ConfigStore::commit(config::Config next) {
  if (auto d = config::validate(next, path_); !d.empty()) {
    std::string msg;
    for (const auto& e : d) msg += (msg.empty() ? "" : "; ") + e.message;
    return fail(msg, EINVAL);
  }
  if (!path_.empty())
    if (auto r = config::save_file(next, path_); !r) return std::unexpected(r.error());
  config_ = std::move(next);
  return {};
}

#define ANYCHAIN_ADD(list_member, what)                                                    \
  if (has_name(config_.list_member, e.name)) return fail(fmt::format(what " '{}' already exists", e.name), EEXIST); \
  config::Config next = config_;                                                                 \
  next.list_member.push_back(e);                                                                 \
  next.list_member.back().mark = {};                                                             \
  if (auto r = commit(std::move(next)); !r) return std::unexpected(r.error());                   \
  return to_json(e);

#define ANYCHAIN_DEL(list_member, what)                                                          \
  config::Config next = config_;                                                                 \
  auto e = take(next.list_member, name, what);                                                   \
  if (!e) return std::unexpected(e.error());                                                     \
  if (auto r = commit(std::move(next)); !r)                                                      \
    return fail(fmt::format("cannot delete " what " '{}': {}", name, r.error().message), r.error().code); \
  return to_json(*e);

Result<json> ConfigStore::add_service(const config::Service& e) { ANYCHAIN_ADD(services, "service") }
Result<json> ConfigStore::del_service(const std::string& name) { ANYCHAIN_DEL(services, "service") }
json ConfigStore::list_services() const { return list(config_.services); }

Result<json> ConfigStore::add_chain(const config::Chain& e) { ANYCHAIN_ADD(chains, "chain") }
Result<json> ConfigStore::del_chain(const std::string& name) { ANYCHAIN_DEL(chains, "chain") }
json ConfigStore::list_chains() const { return list(config_.chains); }

Result<json> ConfigStore::add_instance(const config::Instance& e) { ANYCHAIN_ADD(instances, "instance") }
Result<json> ConfigStore::del_instance(const std::string& name) { ANYCHAIN_DEL(instances, "instance") }
json ConfigStore::list_instances() const { return list(config_.instances); }

Result<json> ConfigStore::add_policy(const config::Policy& e, int index) {
  if (has_name(config_.policies, e.name)) return fail(fmt::format("policy '{}' already exists", e.name), EEXIST);
  if (index < -1 || index > static_cast<int>(config_.policies.size()))
    return fail(fmt::format("policy index {} out of range 0..{}", index, config_.policies.size()), EINVAL);
  config::Config next = config_;
  auto pos = index < 0 ? next.policies.end() : next.policies.begin() + index;
  auto it = next.policies.insert(pos, e);
  it->mark = {};
  if (auto r = commit(std::move(next)); !r) return std::unexpected(r.error());
  return to_json(e);
}
Result<json> ConfigStore::del_policy(const std::string& name) { ANYCHAIN_DEL(policies, "policy") }
json ConfigStore::list_policies() const { return list(config_.policies); }

namespace {
json iface_json(const config::Interface& i) {
  return {{"name", i.name}, {"mode", to_string(i.mode)}, {"classify", i.classify}};
}
}  // namespace

Result<json> ConfigStore::record_attach(const std::string& ifname, XdpMode mode,
                                        std::optional<bool> classify) {
  if (ifname.empty() || ifname.size() >= 16 || ifname.find('/') != std::string::npos)
    return fail(fmt::format("bad interface name '{}'", ifname), EINVAL);
  config::Config next = config_;
  auto it = std::find_if(next.interfaces.begin(), next.interfaces.end(),
                         [&](const config::Interface& i) { return i.name == ifname; });
  if (it == next.interfaces.end()) {
    next.interfaces.push_back({ifname, mode, classify.value_or(false), {}});
    it = next.interfaces.end() - 1;
  } else {
    it->mode = mode;
    if (classify) it->classify = *classify;
  }
  json out = iface_json(*it);
  if (auto r = commit(std::move(next)); !r) return std::unexpected(r.error());
  return out;
}

Result<json> ConfigStore::record_detach(const std::string& ifname) {
  config::Config next = config_;
  auto it = std::find_if(next.interfaces.begin(), next.interfaces.end(),
                         [&](const config::Interface& i) { return i.name == ifname; });
  if (it == next.interfaces.end()) return fail(fmt::format("interface '{}' is not in the config", ifname), ENOENT);
  json out = iface_json(*it);
  next.interfaces.erase(it);
  if (auto r = commit(std::move(next)); !r) return std::unexpected(r.error());
  return out;
}

json ConfigStore::list_interfaces() const {
  json out = json::array();
  for (const auto& i : config_.interfaces) out.push_back(iface_json(i));
  return out;
}

#undef ANYCHAIN_ADD
#undef ANYCHAIN_DEL

}  // namespace anychain::control
