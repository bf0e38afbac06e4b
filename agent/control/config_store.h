// ConfigStore: the add/del/list half of the control protocol, on a config::Config, with
// whole-config validation and persistence. anychaind's Handler can delegate *_add/_del/_list
// to it and then re-apply the new config to the dataplane:
//
//   Result<json> service_add(const config::Service& s) override {
//     auto r = store_.add_service(s);        // validated and saved to the config file
//     if (r) apply(store_.config());         // the daemon's own re-programming
//     return r;
//   }
//
// Every change is made on a copy, checked with config::validate() (duplicates, references:
// a service still used by a chain or an instance cannot be deleted, a policy needs its chain,
// ...), written atomically to the file (config::save_file) and only then adopted, so the
// file and the in-memory config never disagree. Errors: EEXIST (name in use), ENOENT (no such
// name), EINVAL (the change would make the config invalid; the message says why), or the
// errno of a failed write.
#pragma once

#include <optional>
#include <string>

#include "common/error.h"
#include "config/config.h"
#include "control/protocol.h"

namespace anychain::control {

class ConfigStore {
 public:
  // path empty: kept in memory only.
  ConfigStore(config::Config c, std::string path) : config_(std::move(c)), path_(std::move(path)) {}
  // Load and validate a file; errors are the file's diagnostics, one per line.
  static Result<ConfigStore> load(const std::string& path);

  const config::Config& config() const { return config_; }
  const std::string& path() const { return path_; }

  // Re-read the file (reload / SIGHUP): adopted only if it is valid.
  Result<void> reload();

  // Each returns the entry in its JSON shape (to_json).
  Result<json> add_service(const config::Service& s);
  Result<json> del_service(const std::string& name);
  json list_services() const;

  Result<json> add_chain(const config::Chain& c);
  Result<json> del_chain(const std::string& name);
  json list_chains() const;

  Result<json> add_policy(const config::Policy& p, int index = -1);  // -1 appends
  Result<json> del_policy(const std::string& name);
  json list_policies() const;

  // attach/detach through the daemon: record the interface in interfaces: (added, or its mode
  // updated; classify is kept for a known interface unless given) or drop it, and persist.
  // Returns the entry as {"name", "mode", "classify"}; detach of an unrecorded name is ENOENT.
  Result<json> record_attach(const std::string& ifname, XdpMode mode,
                             std::optional<bool> classify = std::nullopt);
  Result<json> record_detach(const std::string& ifname);
  json list_interfaces() const;

  Result<json> add_instance(const config::Instance& i);
  Result<json> del_instance(const std::string& name);
  json list_instances() const;

 private:
  // Validate next, persist it, adopt it.
  Result<void> commit(config::Config next);

  config::Config config_;
  std::string path_;
};

}  // namespace anychain::control
