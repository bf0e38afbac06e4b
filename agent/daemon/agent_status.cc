// What anychaind reports: status (ports, slow path, OSPF, service plane, local instances,
// built-in NFs, warnings), a service's selection and the topology the CLI shows. Apart from
// agent.cc, which runs the daemon, because it only reads the agent's state.
#include <arpa/inet.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <ctime>

#include "anychain/nsh.h"
#include "daemon/agent.h"

namespace anychain::daemon {

namespace {

std::string ip_str(uint32_t host_order) {
  in_addr a{htonl(host_order)};
  char b[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &a, b, sizeof b);
  return b;
}

std::string iso_time(std::chrono::system_clock::time_point t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  char b[32];
  std::strftime(b, sizeof b, "%FT%TZ", std::gmtime(&tt));
  return b;
}

}  // namespace

nlohmann::json Agent::status() const {
  nlohmann::json j;
  nlohmann::json warnings = nlohmann::json::array();
  // FTC's logs ride in the NSH, which can then grow to its largest (docs/ftc.md 2.6)
  j["interfaces"] = ports_->status(spec_.inner_mtu, spec_.ftc_chains.empty() ? AC_NSH_MD1_LEN : AC_NSH_MAX_LEN, warnings);
  if (slow_) {
    j["slow_path"] = slow_->status();
  } else {
    j["slow_path"] = {{"state", spec_.slow_path ? "failed: " + slow_error_ : "off (node.slow_path: false)"}};
    warnings.push_back(fmt::format("no slow path ({}): packets too big for their next hop are dropped (drop_too_big)",
                                   spec_.slow_path ? slow_error_ : "node.slow_path: false"));
  }
  if (ftc_) j["ftc_buffer"] = ftc_->status();
  if (ftc_channel_) j["ftc_channel"] = ftc_channel_->status();
  else if (spec_.ftc_channel) j["ftc_channel"] = {{"error", ftc_channel_error_}};
  if (!ftc_channel_error_.empty()) warnings.push_back("ftc channel: " + ftc_channel_error_);
  for (auto& w : ftc_share_warnings(spec_)) warnings.push_back(std::move(w));
  if (ftc_fwd_) j["ftc_forwarder"] = ftc_fwd_->status();
  if (!spec_.ftc_chains.empty()) {
    const auto& fs = sync_->ftc_stats();
    const auto& hc = hold_.ftc_counts();
    j["ftc_freeze"] = {{"recovery_hold_ms", spec_.ftc_recovery_hold.count()}, {"recovering_now", hold_.recovering()},
                       {"frozen", hc.frozen}, {"replaced", hc.recovered}, {"expired", hc.abandoned},
                       {"instances_frozen", fs.frozen}, {"instances_resumed", fs.resumed},
                       {"placements_repointed", fs.placements_repointed}, {"instances_abandoned", fs.abandoned},
                       {"ftc_partitions_abandoned", fs.partitions_abandoned}};
    nlohmann::json incs = nlohmann::json::object();
    for (const auto& [id, inc] : ftc_inc_) incs[std::to_string(id)] = inc;
    nlohmann::json rec = {{"started", ftc_recoveries_started_}, {"without_state", ftc_recoveries_unrecovered_},
                          {"conflicts", ftc_recoveries_conflict_}, {"running", ftc_replacements_.size()}};
    if (ftc_recovery_) {
      const auto& st = ftc_recovery_->stats();
      rec["requests_answered"] = st.requests_answered;
      rec["records_sent"] = st.records_sent;
      rec["records_fenced"] = st.records_fenced;
      rec["answer_errors"] = st.answer_errors;
      rec["recoveries"] = st.recoveries;
      rec["records_installed"] = st.records_installed;
      rec["records_lost"] = st.records_lost;
      rec["requests_repeated"] = st.requests_repeated;
      nlohmann::json last = nlohmann::json::object();
      for (const auto& [id, r] : ftc_recovery_->last())
        last[std::to_string(id)] = {{"incarnation", r.new_inc}, {"conflict", r.conflict}, {"heads", r.heads},
                                    {"replicas", r.replicas}, {"lost", r.lost}, {"nat_rebuilt", r.nat_rebuilt},
                                    {"holders_gone", r.holders_gone}, {"errors", r.errors},
                                    {"detection_ms", r.times.detection_ms}, {"transfer_ms", r.times.transfer_ms},
                                    {"rerouting_ms", r.times.rerouting_ms}, {"rerouting_plane_ms", r.times.plane_ms}, {"detected_at", r.detected_at},
                                    {"live_at", r.live_at}};
      rec["last"] = last;
    }
    j["ftc_recovery"] = rec;
    j["ftc_resync"] = ftc_resync_status();
    j["ftc_control"] = {{"writes", ftc_control_writes_}, {"errors", ftc_control_errors_},
                        {"problems", ftc_control_problems_}, {"incarnations", incs},
                        {"restarts", ftc_restarts_}, {"last_restart_ms", ftc_last_restart_ms_}};
    if (!spec_.standbys.empty() || !ftc_standby_active_.empty()) j["ftc_standby"] = ftc_standby_status();
  }
  if (state_)
    j["state"] = state_->status();
  else if (spec_.state)
    j["state"] = {{"error", state_error_}};
  if (!state_error_.empty()) warnings.push_back("state replication: " + state_error_);
  j["agent"] = {{"state", "running"}, {"pin_root", spec_.dataplane.pin_root},
                {"stats_map_id", dp_.map_id("ac_stats")},
                {"nsh_endpoint", ip_str(ntohl(spec_.nsh_endpoint.s_addr))},
                {"nsh_endpoint_present", endpoint_present_}};
  const auto& st = ospf_->stats();
  auto self = self_router();
  j["ospf"] = {{"server", fmt::format("{}:{}", spec_.ospf.server_addr, spec_.ospf.server_port)},
               {"connected", ospf_->connected()},
               {"ready", ospf_->ready()},
               {"lsdb_trusted", lsdb_trusted_},
               {"router_id", self ? ip_str(*self) : ""},
               {"lsdb_size", ospf_->lsdb().size()},
               {"connects", st.connects},
               {"disconnects", st.disconnects},
               {"notifications", st.notifications},
               {"rejected_lsas", st.rejected_lsas},
               {"bad_messages", st.bad_messages},
               {"originations", st.originations},
               {"reoriginations", st.reoriginations},
               {"last_error", ospf_->last_error()}};
  j["recompute"] = {{"count", recomputations_},
                    {"last", last_recompute_ ? iso_time(*last_recompute_) : ""},
                    {"last_compute_ms", last_compute_ms_},
                    {"last_apply_ms", last_apply_ms_},
                    {"services", last_report_.services},
                    {"instances", last_report_.instances},
                    {"errors", last_report_.errors},
                    {"plane_error", last_plane_error_}};
  if (last_view_)
    j["plane"] = {{"routers", last_view_->routers},
                  {"unreachable_instances", last_view_->unreachable_instances},
                  {"down_instances", last_view_->down_instances},
                  {"superseded_instances", last_view_->superseded.size()},
                  {"malformed_vnf_lsas", last_view_->stats.malformed_vnf_lsas},
                  {"malformed_router_lsas", last_view_->stats.malformed_router_lsas},
                  {"malformed_network_lsas", last_view_->stats.malformed_network_lsas},
                  {"one_way_links", last_view_->stats.one_way_links}};
  nlohmann::json local = nlohmann::json::array();
  for (const auto& [id, l] : monitor_->loads()) {
    nlohmann::json e = {{"id", id}, {"alive", l.alive}, {"pps", l.pps}, {"cpu", l.cpu}, {"load", l.load},
                        {"cost", l.announced}, {"fresh_cost", l.fresh_cost}, {"announced", l.announced_once && l.alive}};
    // the dataplane's liveness signal: packets handed to it, chain traffic back from it
    if (auto c = dp_.instance_stats(id)) e["delivered_packets"] = c->packets;
    if (auto c = dp_.instance_returned(id)) e["returned_packets"] = c->packets;
    e["up_held"] = held_up_.contains(id);  // alive, its up waits for its down in the LSDB
    if (auto lv = liveness_.find(id); lv != liveness_.end() && !lv->second.alive()) {
      e["down_reason"] = lv->second.reason();
      if (auto r = lv->second.retry_at())
        e["retry_in_s"] = std::round(std::chrono::duration<double>(*r - Clock::now()).count() * 10) / 10;
    }
    local.push_back(e);
  }
  j["local_instances"] = local;
  j["nf"] = nf_ ? nf_->status() : nlohmann::json::array();
  if (!endpoint_present_)
    warnings.push_back(fmt::format("NSH endpoint {} is not an address of this node", ip_str(ntohl(spec_.nsh_endpoint.s_addr))));
  j["warnings"] = warnings;
  return j;
}

// Where the instance of service_id is chosen at each (SPI, SI) that uses it: SI 255 by the node
// that classifies the flow, a later SI by the node of the instance that served the previous
// service, each with its own weights (docs/wcmp-policy.md, "Where a service is chosen").
nlohmann::json Agent::selection(uint32_t service_id) const {
  auto service_name = [&](uint32_t sid) {
    for (const auto& s : spec_.services)
      if (s.id == sid) return s.name;
    return fmt::format("#{}", sid);
  };
  nlohmann::json out = nlohmann::json::array();
  for (const auto& p : spec_.paths) {
    if (p.last_hop || p.service_id != service_id) continue;
    bool here = false;
    std::string why;
    if (p.si == 255) {
      std::vector<std::string> ifs;
      for (const auto& i : spec_.interfaces)
        if (i.classify) ifs.push_back(i.name);
      here = !ifs.empty();
      why = here ? fmt::format("this node classifies flows into the chain (on {})", fmt::join(ifs, ", "))
                 : "chosen by the node that classifies the flow (this node classifies on no interface)";
    } else {
      auto prev = std::find_if(spec_.paths.begin(), spec_.paths.end(), [&](const dataplane::PathEntry& q) {
        return q.spi == p.spi && q.si == p.si + 1;
      });
      uint32_t prev_sid = prev != spec_.paths.end() ? prev->service_id : 0;
      std::vector<std::string> mine;
      for (const auto& i : spec_.instances)
        if (i.service_id == prev_sid) mine.push_back(fmt::format("{} ({})", i.name, i.id));
      here = !mine.empty();
      why = here ? fmt::format("after this node's instance {} of {}", fmt::join(mine, ", "), service_name(prev_sid))
                 : fmt::format("chosen by the node of the {} instance that served the flow (this node has none)",
                               service_name(prev_sid));
    }
    out.push_back({{"spi", p.spi}, {"si", p.si}, {"chosen_here", here}, {"why", why}});
  }
  return out;
}

nlohmann::json Agent::topology() const {
  nlohmann::json j;
  // Routers and services from the same run (the last recomputation): the view is what the maps
  // hold, never a mix of a fresh LSDB and the plane computed before it changed.
  nlohmann::json routers = nlohmann::json::array();
  auto self = self_router();
  if (last_view_)
    for (const auto& r : last_view_->router_dist) {
      nlohmann::json e = {{"router_id", ip_str(r.router_id)}, {"self", self && r.router_id == *self}};
      if (r.dist == plane::kUnreachable) e["reachable"] = false;
      else e["cost"] = r.dist;
      routers.push_back(e);
    }
  if (last_recompute_)
    j["computed_ms_ago"] = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now() - *last_recompute_).count();
  j["recompute_pending"] = throttle_.due().has_value();
  j["routers"] = routers;
  const char* rule = "";
  switch (spec_.wcmp.mode) {
    case plane::WcmpMode::BottleneckResidual:
      rule = spec_.wcmp.include_links ? "min(vnf_cost, bottleneck)" : "vnf_cost";
      break;
    case plane::WcmpMode::InverseCost: rule = "inverse_scale / path_cost"; break;
    case plane::WcmpMode::EqualCostMultipath: rule = "1 for the lowest path_cost, else 0"; break;
  }
  j["weight_rule"] = spec_.wcmp.floor ? fmt::format("max({}, {})", rule, spec_.wcmp.floor) : std::string(rule);
  nlohmann::json services = nlohmann::json::array();
  for (const auto& [id, s] : sync_->services()) {
    nlohmann::json inst = nlohmann::json::array();
    uint64_t total = 0;
    for (const auto& i : s.instances) total += i.weight;
    for (const auto& i : s.instances) {
      nlohmann::json e = {{"id", i.id}, {"router", ip_str(i.router)}, {"local", i.local}, {"nsh_aware", i.nsh_aware},
                          {"endpoint", ip_str(i.endpoint)}, {"network_cost", i.network_cost},
                          {"bottleneck", nullptr}, {"vnf_cost", i.vnf_cost}, {"path_cost", i.path_cost},
                          {"weight", i.weight}, {"share", total ? static_cast<double>(i.weight) / total : 0.0},
                          {"held", i.held}, {"recovering", i.recovering}};
      if (!i.local && i.link_bottleneck != plane::kNoBottleneck) e["bottleneck"] = i.link_bottleneck;
      if (spec_.wcmp.mode == plane::WcmpMode::BottleneckResidual)
        e["limited_by"] = spec_.wcmp.include_links && !i.local && i.link_bottleneck < i.vnf_cost ? "link" : "vnf";
      inst.push_back(e);
    }
    nlohmann::json sel = selection(id);
    bool here = std::any_of(sel.begin(), sel.end(), [](const nlohmann::json& x) { return x["chosen_here"].get<bool>(); });
    services.push_back({{"id", id}, {"name", s.name}, {"chosen_here", here}, {"selection", sel},
                        {"instances", inst}, {"last_moved", s.last_moved}});
  }
  j["services"] = services;
  // announcements of an instance id that another router's announcement of it supersedes (plane::keeps_instance)
  nlohmann::json sup = nlohmann::json::array();
  if (last_view_)
    for (const auto& x : last_view_->superseded)
      sup.push_back({{"id", x.info.instance_id}, {"router", ip_str(x.router)}, {"incarnation", x.info.incarnation},
                     {"held", x.held}, {"recovering", x.recovering}, {"kept_on", ip_str(x.by)}});
  j["superseded"] = sup;
  return j;
}

}  // namespace anychain::daemon
