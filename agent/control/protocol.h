// anychaind's control protocol: the Handler the daemon implements, and the wire format.
//
// Transport: a Unix stream socket (default /run/anychain/anychaind.sock, mode 0600; the server
// also refuses peers whose SO_PEERCRED uid is not 0). Newline-delimited JSON, one request per
// line, answered in order, one response line per request; a connection may carry any number
// of requests. A request line is at most kMaxRequest bytes.
//
//   request:  {"cmd": "<command>", "args": {...}}            ("args" may be omitted: {})
//   success:  {"ok": true, "result": <command's result>}
//   failure:  {"ok": false, "error": "<what failed>", "code": <errno value>}
//
// Error codes are errno values: EINVAL (22) bad arguments or an invalid config change,
// ENOENT (2) no such name, EEXIST (17) name or id already in use, ENOSYS (38) unknown command,
// E2BIG (7) request too large, EPROTO (71) malformed request, EPERM (1) peer is not root,
// anything else from the failed operation (e.g. ENODEV for a missing interface).
//
// Commands, their args, and what the Server passes to the Handler (docs/cli.md has examples):
//
//   status                                  -> Handler::status()
//   topology                                -> Handler::topology()
//   reload                                  -> Handler::reload()    (re-read the config file)
//   attach   {"ifname": s, "mode": "native"|"generic"|"auto" (default auto), "classify": b (optional)}
//   detach   {"ifname": s}
//   service_add  {"name", "id", "anycast"}                         (docs/config.md: services)
//   chain_add    {"name", "spi", "services": [names]}              (chains)
//   policy_add   {"name", "chain", "src", "dst", "proto", "sport", "dport", "symmetric",
//                 "md_type", "index" (optional: position in the ordered list, default last)}
//   instance_add {"name", "id", "service", "veth", "mac", "capacity", "nsh_aware",
//                 "pid_file", "cgroup", "nf", "restart", "nat", "monitor", "firewall"}
//                                                                  (instances; docs/nf.md)
//   service_del / chain_del / policy_del / instance_del  {"name": s}
//   service_list / chain_list / policy_list / instance_list        (no args)
//
// The *_add args are validated with the config file's own rules (config::parse_service(), ...)
// before the Handler sees them, so a Handler receives well-formed entries and only has to
// check them against the whole config (ConfigStore does that, and persists the change).
//
// Results (what the CLI prints; a Handler may add fields, the CLI shows unknown ones as is):
//   *_list      -> a JSON array of entries in the *_add shape (ConfigStore::list_*()), with
//                  ports as "N" or "N-M" strings, proto as a name, mac only when set
//   *_add/_del  -> the entry added or removed
//   attach      -> {"ifname", "ifindex", "mode", "prog_id"} (the daemon should also record the
//                  interface in its config: ConfigStore::record_attach/record_detach)
//   detach      -> {"ifname"}
//   status      -> an object; the CLI prints it as indented key: value lines. Suggested keys:
//                  "node" {nsh_endpoint, pin_root}, "uptime_s", "config" (file path),
//                  "interfaces" [{name, mode, classify, attached, prog_id}],
//                  "ospf" {connected, neighbours, lsas}, "services"/"chains"/"policies"/
//                  "instances" (counts or lists)
//   topology    -> an object; suggested: "routers" [...], "vnfs" [{instance, service, node,
//                  cost}], "services" [{name, candidates: [{instance, path_cost, weight}]}]
//   reload      -> an object describing what changed (free-form), e.g. {"config": path}
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "common/error.h"
#include "config/config.h"
#include "common/net.h"

namespace anychain::control {

using json = nlohmann::json;

inline constexpr const char* kDefaultSocket = "/run/anychain/anychaind.sock";
inline constexpr size_t kMaxRequest = 64 * 1024;

// Implemented by anychaind. Called on the daemon's thread from Server::on_readable(); a call
// should not block for long (every connected client waits on it). A returned Error becomes
// {"ok": false, "error": error.str(), "code": error.code (EIO when 0)}.
class Handler {
 public:
  virtual ~Handler() = default;

  virtual Result<json> status() = 0;
  virtual Result<json> topology() = 0;
  virtual Result<json> reload() = 0;
  // classify: mark the interface as classifying (unset: keep what the config says)
  virtual Result<json> attach(const std::string& ifname, XdpMode mode, std::optional<bool> classify) = 0;
  virtual Result<json> detach(const std::string& ifname) = 0;

  virtual Result<json> service_add(const config::Service& s) = 0;
  virtual Result<json> service_del(const std::string& name) = 0;
  virtual Result<json> service_list() = 0;

  virtual Result<json> instance_add(const config::Instance& i) = 0;
  virtual Result<json> instance_del(const std::string& name) = 0;
  virtual Result<json> instance_list() = 0;

  virtual Result<json> chain_add(const config::Chain& c) = 0;
  virtual Result<json> chain_del(const std::string& name) = 0;
  virtual Result<json> chain_list() = 0;

  // index: position in the ordered policy list (0 = first); -1 appends.
  virtual Result<json> policy_add(const config::Policy& p, int index) = 0;
  virtual Result<json> policy_del(const std::string& name) = 0;
  virtual Result<json> policy_list() = 0;
};

// Decode one request line and call the Handler; returns the response object. Never throws.
// Exposed for tests and for a daemon that wants to serve the protocol another way.
json dispatch(Handler& h, std::string_view line);

// Entries <-> JSON (the *_add args and *_list items).
json to_json(const config::Service& s);
json to_json(const config::Chain& c);
json to_json(const config::Policy& p);
json to_json(const config::Instance& i);
config::Parsed<config::Service> service_from_json(const json& j);
config::Parsed<config::Chain> chain_from_json(const json& j);
config::Parsed<config::Policy> policy_from_json(const json& j);
config::Parsed<config::Instance> instance_from_json(const json& j);

}  // namespace anychain::control
