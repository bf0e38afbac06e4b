#include "control/protocol.h"

#include <yaml-cpp/yaml.h>

#include <map>

#include <fmt/format.h>

namespace anychain::control {
namespace {

// JSON value -> YAML node with the same shape, so that entries from the socket go through the
// config file's parser. Scalars keep their text (numbers as written by nlohmann).
YAML::Node to_yaml_node(const json& j) {
  switch (j.type()) {
    case json::value_t::object: {
      YAML::Node n(YAML::NodeType::Map);
      for (const auto& [k, v] : j.items()) n[k] = to_yaml_node(v);
      return n;
    }
    case json::value_t::array: {
      YAML::Node n(YAML::NodeType::Sequence);
      for (const auto& v : j) n.push_back(to_yaml_node(v));
      return n;
    }
    case json::value_t::string: return YAML::Node(j.get<std::string>());
    case json::value_t::null: return YAML::Node(YAML::NodeType::Null);
    case json::value_t::boolean: return YAML::Node(j.get<bool>() ? "true" : "false");
    default: return YAML::Node(j.dump());
  }
}

std::string join_diags(const config::Diagnostics& d) {
  std::string out;
  for (const auto& e : d) out += (out.empty() ? "" : "; ") + e.message;
  return out;
}

json error_response(std::string msg, int code) {
  return json{{"ok", false}, {"error", std::move(msg)}, {"code", code ? code : EIO}};
}

json from_result(const Result<json>& r) {
  if (!r) return error_response(r.error().str(), r.error().code);
  return json{{"ok", true}, {"result", *r}};
}

template <class T>
Result<T> decode(const json& args, config::Parsed<T> (*from)(const json&)) {
  auto v = from(args);
  if (!v) return fail(join_diags(v.error()), EINVAL);
  return *v;
}

Result<std::string> name_arg(const json& args, const char* key = "name") {
  auto it = args.find(key);
  if (it == args.end() || !it->is_string() || it->get<std::string>().empty())
    return fail(fmt::format("missing string argument '{}'", key), EINVAL);
  return it->get<std::string>();
}

}  // namespace

json to_json(const config::Service& s) { return {{"name", s.name}, {"id", s.id}, {"anycast", s.anycast}}; }

json to_json(const config::Chain& c) {
  json j{{"name", c.name}, {"spi", c.spi}, {"services", c.services}};
  if (c.ftc) {
    json f = json::object();
    const config::FtcParams& p = *c.ftc;
    if (p.f) f["f"] = *p.f;
    if (p.buffer_frames || p.buffer_per_partition) {
      json b = json::object();
      if (p.buffer_frames) b["frames"] = *p.buffer_frames;
      if (p.buffer_per_partition) b["per_partition"] = *p.buffer_per_partition;
      f["buffer"] = b;
    }
    if (p.hold_timeout_ms) f["hold_timeout_ms"] = *p.hold_timeout_ms;
    if (p.propagate_after_ms) f["propagate_after_ms"] = *p.propagate_after_ms;
    j["ftc"] = f;
  }
  return j;
}

json to_json(const config::Policy& p) {
  json j{{"name", p.name}, {"chain", p.chain}, {"src", p.src}, {"dst", p.dst},
         {"proto", config::proto_name(p.proto)}, {"md_type", p.md_type}};
  if (auto s = config::port_range(p.sport_lo, p.sport_hi); !s.empty()) j["sport"] = s;
  if (auto s = config::port_range(p.dport_lo, p.dport_hi); !s.empty()) j["dport"] = s;
  if (p.symmetric) j["symmetric"] = *p.symmetric;
  return j;
}

json to_json(const config::Instance& i) {
  json j{{"name", i.name}, {"id", i.id}, {"service", i.service}, {"veth", i.veth},
         {"capacity", i.capacity}, {"nsh_aware", i.nsh_aware}};
  if (i.mac) j["mac"] = mac_str(*i.mac);
  if (!i.pid_file.empty()) j["pid_file"] = i.pid_file;
  if (!i.cgroup.empty()) j["cgroup"] = i.cgroup;
  if (i.nf) {
    const config::NfConfig& nf = *i.nf;
    j["nf"] = nf.kind;
    j["restart"] = nf.restart ? "always" : "never";
    if (nf.kind == "nat") {
      j["nat"] = {{"address", nf.nat_address}, {"ports", fmt::format("{}-{}", nf.nat_port_lo, nf.nat_port_hi)}};
      if (nf.idle_timeout_s) j["nat"]["idle_timeout_s"] = *nf.idle_timeout_s;
    } else if (nf.kind == "monitor" && nf.idle_timeout_s) {
      j["monitor"] = {{"idle_timeout_s", *nf.idle_timeout_s}};
    } else if (nf.kind == "ids") {
      j["ids"] = {{"threshold", nf.ids_threshold}, {"action", nf.ids_drop ? "drop" : "pass"}, {"window_s", nf.window_s},
                  {"filter", fmt::format("{}x{}", nf.ids_filter_hashes, nf.ids_filter_cells)},
                  {"sketch", fmt::format("{}x{}", nf.ids_sketch_rows, nf.ids_sketch_width)}, {"flagged", nf.ids_flagged},
                  {"flag_expire_s", nf.ids_flag_expire_s}};
    } else if (nf.kind == "ratelimit") {
      j["ratelimit"] = {{"limit", nf.rl_limit}, {"unit", nf.rl_packets ? "packets" : "bytes"}, {"window_s", nf.window_s}};
    } else if (nf.kind == "firewall") {
      json rules = json::array();
      for (const auto& r : nf.fw_rules) {
        json x{{"action", r.drop ? "drop" : "pass"}, {"src", r.src}, {"dst", r.dst}, {"proto", config::proto_name(r.proto)}};
        if (auto p = config::port_range(r.sport_lo, r.sport_hi); !p.empty()) x["sport"] = p;
        if (auto p = config::port_range(r.dport_lo, r.dport_hi); !p.empty()) x["dport"] = p;
        rules.push_back(x);
      }
      j["firewall"] = {{"default", nf.fw_default_drop ? "drop" : "pass"}, {"rules", rules}};
    }
    if (nf.replica_records) j["ftc"]["replica_records"] = *nf.replica_records;
    if (nf.reorder_wait_us) j["ftc"]["reorder_wait_us"] = *nf.reorder_wait_us;
  }
  return j;
}

config::Parsed<config::Service> service_from_json(const json& j) { return config::parse_service(to_yaml_node(j)); }
config::Parsed<config::Chain> chain_from_json(const json& j) { return config::parse_chain(to_yaml_node(j)); }
config::Parsed<config::Policy> policy_from_json(const json& j) { return config::parse_policy(to_yaml_node(j)); }
config::Parsed<config::Instance> instance_from_json(const json& j) { return config::parse_instance(to_yaml_node(j)); }

namespace {

// The protocol's commands: each decodes its args and calls the Handler (the header lists them).
using Command = json (*)(Handler& h, json& args);

template <Result<json> (Handler::*call)()>
json plain_cmd(Handler& h, json&) { return from_result((h.*call)()); }

template <Result<json> (Handler::*del)(const std::string&)>
json del_cmd(Handler& h, json& args) {
  auto n = name_arg(args);
  return n ? from_result((h.*del)(*n)) : from_result(std::unexpected(n.error()));
}

template <class T, config::Parsed<T> (*from)(const json&), Result<json> (Handler::*add)(const T&)>
json add_cmd(Handler& h, json& args) {
  auto v = decode(args, from);
  return v ? from_result((h.*add)(*v)) : from_result(std::unexpected(v.error()));
}

json attach_cmd(Handler& h, json& args) {
  auto ifname = name_arg(args, "ifname");
  if (!ifname) return from_result(std::unexpected(ifname.error()));
  auto mode = parse_xdp_mode(args.value("mode", std::string("auto")));
  if (!mode) return from_result(std::unexpected(mode.error()));
  std::optional<bool> classify;
  if (args.contains("classify")) {
    if (!args["classify"].is_boolean()) return error_response("attach: 'classify' must be true or false", EINVAL);
    classify = args["classify"].get<bool>();
  }
  return from_result(h.attach(*ifname, *mode, classify));
}

json detach_cmd(Handler& h, json& args) {
  auto ifname = name_arg(args, "ifname");
  return ifname ? from_result(h.detach(*ifname)) : from_result(std::unexpected(ifname.error()));
}

json policy_add_cmd(Handler& h, json& args) {
  int index = -1;
  if (args.contains("index")) {
    const json& ix = args["index"];
    if (!ix.is_number_integer() || ix.get<long long>() < -1 || ix.get<long long>() > AC_MAX_POLICIES)
      return error_response(fmt::format("'index' must be an integer -1..{}", AC_MAX_POLICIES), EINVAL);
    index = ix.get<int>();
    args.erase("index");
  }
  auto v = decode(args, policy_from_json);
  return v ? from_result(h.policy_add(*v, index)) : from_result(std::unexpected(v.error()));
}

const std::map<std::string_view, Command> kCommands = {
    {"status", plain_cmd<&Handler::status>},
    {"topology", plain_cmd<&Handler::topology>},
    {"reload", plain_cmd<&Handler::reload>},
    {"attach", attach_cmd},
    {"detach", detach_cmd},
    {"service_add", add_cmd<config::Service, service_from_json, &Handler::service_add>},
    {"service_del", del_cmd<&Handler::service_del>},
    {"service_list", plain_cmd<&Handler::service_list>},
    {"chain_add", add_cmd<config::Chain, chain_from_json, &Handler::chain_add>},
    {"chain_del", del_cmd<&Handler::chain_del>},
    {"chain_list", plain_cmd<&Handler::chain_list>},
    {"policy_add", policy_add_cmd},
    {"policy_del", del_cmd<&Handler::policy_del>},
    {"policy_list", plain_cmd<&Handler::policy_list>},
    {"instance_add", add_cmd<config::Instance, instance_from_json, &Handler::instance_add>},
    {"instance_del", del_cmd<&Handler::instance_del>},
    {"instance_list", plain_cmd<&Handler::instance_list>},
};

}  // namespace

json dispatch(Handler& h, std::string_view line) {
  json req;
  try {
    req = json::parse(line);
  } catch (const json::exception& e) {
    return error_response(fmt::format("malformed request (not JSON): {}", e.what()), EPROTO);
  }
  if (!req.is_object() || !req.contains("cmd") || !req["cmd"].is_string())
    return error_response("malformed request: expected {\"cmd\": \"...\", \"args\": {...}}", EPROTO);
  json args = req.value("args", json::object());
  if (args.is_null()) args = json::object();
  if (!args.is_object()) return error_response("malformed request: 'args' must be an object", EPROTO);
  const std::string cmd = req["cmd"].get<std::string>();

  auto it = kCommands.find(cmd);
  if (it == kCommands.end()) return error_response(fmt::format("unknown command '{}'", cmd), ENOSYS);
  try {
    return it->second(h, args);
  } catch (const json::exception& e) {
    // an argument of the wrong JSON type (e.g. "mode": 3)
    return error_response(fmt::format("bad arguments for {}: {}", cmd, e.what()), EINVAL);
  } catch (const std::exception& e) {
    // yaml-cpp surprises, a Handler that throws
    return error_response(fmt::format("{} failed: {}", cmd, e.what()), EIO);
  }
}

}  // namespace anychain::control
