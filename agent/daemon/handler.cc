#include "daemon/handler.h"

#include <fmt/format.h>

#include "daemon/from_config.h"
#include "slowpath/slowpath.h"

namespace anychain::daemon {

Result<void> DaemonHandler::apply() {
  auto spec = spec_from_config(store_.config());
  if (!spec) return unexpected(spec.error());
  spec->flush_on_exit = agent_.spec().flush_on_exit;
  return agent_.reload(std::move(*spec));
}

Result<json> DaemonHandler::then_apply(Result<json> r) {
  if (!r) return r;
  if (auto a = apply(); !a) return unexpected(a.error());
  return r;
}

Result<json> DaemonHandler::status() { return agent_.status(); }
Result<json> DaemonHandler::topology() { return agent_.topology(); }

Result<json> DaemonHandler::reload() {
  if (auto r = store_.reload(); !r) return unexpected(r.error());
  if (auto a = apply(); !a) return unexpected(a.error());
  return json{{"reloaded", store_.path()}};
}

Result<json> DaemonHandler::attach(const std::string& ifname, XdpMode mode,
                                   std::optional<bool> classify) {
  auto a = agent_.dataplane().attach(ifname, mode);
  if (!a) return unexpected(a.error());
  if (auto r = store_.record_attach(ifname, mode, classify); !r) return r;
  if (auto r = apply(); !r) return unexpected(r.error());
  return json{{"ifname", a->ifname}, {"ifindex", a->ifindex}, {"mode", std::string(to_string(a->mode))},
              {"prog_id", a->prog_id}, {"dispatcher", a->dispatcher}};
}

Result<json> DaemonHandler::detach(const std::string& ifname) {
  // ports the daemon owns by itself: detached here, they would be attached again at once
  for (const auto& i : agent_.spec().instances)
    if (i.veth == ifname)
      return fail(fmt::format("{} is the veth of instance '{}': anychaind keeps it attached while the instance is "
                              "configured (anychain instance del {})",
                              ifname, i.name, i.name),
                  EBUSY);
  if (ifname == slowpath::kFastIf)
    return fail(fmt::format("{} is the slow path's interface, owned by anychaind (node.slow_path: false turns the "
                            "slow path off; docs/slow-path.md)",
                            ifname),
                EBUSY);
  if (auto r = dataplane::Dataplane::detach(ifname); !r) return unexpected(r.error());
  if (auto r = store_.record_detach(ifname); !r) return r;
  if (auto r = apply(); !r) return unexpected(r.error());
  return json{{"ifname", ifname}, {"detached", true}};
}

Result<json> DaemonHandler::service_add(const config::Service& s) { return then_apply(store_.add_service(s)); }
Result<json> DaemonHandler::service_del(const std::string& n) { return then_apply(store_.del_service(n)); }
Result<json> DaemonHandler::service_list() { return store_.list_services(); }
Result<json> DaemonHandler::instance_add(const config::Instance& i) {
  if (i.standby_for)
    if (auto r = agent_.check_standby(i.name, *i.standby_for, i.service); !r) return unexpected(r.error());
  return then_apply(store_.add_instance(i));
}
Result<json> DaemonHandler::instance_del(const std::string& n) { return then_apply(store_.del_instance(n)); }
Result<json> DaemonHandler::instance_list() { return store_.list_instances(); }
Result<json> DaemonHandler::chain_add(const config::Chain& c) { return then_apply(store_.add_chain(c)); }
Result<json> DaemonHandler::chain_del(const std::string& n) { return then_apply(store_.del_chain(n)); }
Result<json> DaemonHandler::chain_list() { return store_.list_chains(); }
Result<json> DaemonHandler::policy_add(const config::Policy& p, int index) {
  return then_apply(store_.add_policy(p, index));
}
Result<json> DaemonHandler::policy_del(const std::string& n) { return then_apply(store_.del_policy(n)); }
Result<json> DaemonHandler::policy_list() { return store_.list_policies(); }

}  // namespace anychain::daemon
