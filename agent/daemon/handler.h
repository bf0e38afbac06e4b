// anychaind's control-socket handler: configuration changes go through the ConfigStore
// (validated and persisted to the config file) and are then applied to the running agent.
#pragma once

#include "control/config_store.h"
#include "control/protocol.h"
#include "daemon/agent.h"

namespace anychain::daemon {

using json = nlohmann::json;

class DaemonHandler : public control::Handler {
 public:
  DaemonHandler(control::ConfigStore& store, Agent& agent) : store_(store), agent_(agent) {}

  Result<json> status() override;
  Result<json> topology() override;
  Result<json> reload() override;
  Result<json> attach(const std::string& ifname, XdpMode mode, std::optional<bool> classify) override;
  Result<json> detach(const std::string& ifname) override;
  Result<json> service_add(const config::Service& s) override;
  Result<json> service_del(const std::string& name) override;
  Result<json> service_list() override;
  Result<json> instance_add(const config::Instance& i) override;
  Result<json> instance_del(const std::string& name) override;
  Result<json> instance_list() override;
  Result<json> chain_add(const config::Chain& c) override;
  Result<json> chain_del(const std::string& name) override;
  Result<json> chain_list() override;
  Result<json> policy_add(const config::Policy& p, int index) override;
  Result<json> policy_del(const std::string& name) override;
  Result<json> policy_list() override;

  // Apply the store's current configuration to the agent.
  Result<void> apply();

 private:
  Result<json> then_apply(Result<json> r);
  control::ConfigStore& store_;
  Agent& agent_;
};

}  // namespace anychain::daemon
