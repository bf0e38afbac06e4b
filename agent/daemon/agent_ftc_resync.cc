// The agent's part of FTC re-requests (docs/ftc.md 4.3): the socket the local NFs ask on
// (<run_dir>/ftc/resync.sock, nf/resync.h) and the FtcResyncService on the node's FTC channel,
// which fetches the record from the head's node and installs it into the asking NF's maps. The
// head's node is the NSH endpoint its VNF LSA announces (the last plane computation).
#include "common/log.h"
#include "daemon/agent.h"

namespace anychain::daemon {

void Agent::sync_ftc_resync() {
  if (ftc_resync_ && ftc_resync_on_ == ftc_channel_.get()) return;
  ftc_resync_.reset();
  ftc_resync_on_ = ftc_channel_.get();
  if (!ftc_channel_ || !nf_) {
    ftc_resync_sock_.reset();
    return;
  }
  FtcRecoveryService::Link link{
      [this](ftc::chan::Type t, ftc::Channel::Handler h) {
        if (ftc_channel_) ftc_channel_->on(t, std::move(h));
      },
      [this](uint32_t node, const ftc::chan::Body& m) -> Result<void> {
        if (!ftc_channel_) return fail("ftc channel closed", ENOTCONN);
        if (node != ftc_channel_->self()) return ftc_channel_->send(node, m);
        ftc_local_q_.push_back(m);  // the head is on this node: answered from the loop
        return {};
      }};
  auto node_of = [this](uint16_t id) -> std::optional<uint32_t> {
    if (!last_view_) return std::nullopt;
    for (const auto& r : last_view_->services)
      for (const auto& c : r.candidates)
        if (c.info.instance_id == id && c.info.nsh_endpoint) return c.info.nsh_endpoint;
    return std::nullopt;
  };
  ftc_resync_ = std::make_unique<FtcResyncService>(std::move(link), [this] { return ftc_local_holders(); }, node_of);
  if (!ftc_resync_sock_) {
    auto l = nf::ResyncListener::open(nf::resync_socket_path(nf_->options().run_dir));
    if (!l) {
      log::error("ftc resync: {}: the NFs' gaps are not re-requested", l.error().str());
      return;
    }
    ftc_resync_sock_ = std::move(*l);
    log::info("ftc resync: the NFs ask on {}", ftc_resync_sock_->path());
  }
}

// The local FTC NFs' maps, kept open while the same process runs (opened again after a restart):
// what the recovery service answers RECOVER_REQ from and the re-request service RESYNC_REQ. A
// running NF counts whether or not it is alive as an instance: withdrawn (its veth down, taken for
// dead) it still holds its replicas, and a node that answered "no record" for it made a recovery
// install nothing and report nothing lost (ftc_recovery_lab_test.py, holder_withdrawn).
std::vector<LocalHolder> Agent::ftc_local_holders() {
  std::vector<LocalHolder> out;
  if (!nf_) return out;
  for (const auto& i : spec_.instances) {
    if (!i.ftc || !i.nf || !nf_->running(i.nf->name)) {
      if (i.nf) ftc_local_maps_.erase(i.nf->name);
      continue;
    }
    // a running FTC instance whose maps cannot be opened is reported, never skipped: its node's
    // answers then say Failed rather than "no record"
    auto pub = nf::read_published(nf::published_path(nf_->options().run_dir, i.nf->name));
    if (!pub) {
      ftc_local_maps_.erase(i.nf->name);
      out.push_back({static_cast<uint16_t>(i.id), nullptr, pub.error().str()});
      continue;
    }
    auto it = ftc_local_maps_.find(i.nf->name);
    if (it == ftc_local_maps_.end() || it->second.published().pid != pub->pid ||
        it->second.published().prog_id != pub->prog_id) {
      auto m = nf::InstanceMaps::open(*pub);
      if (!m) {
        ftc_local_maps_.erase(i.nf->name);
        out.push_back({static_cast<uint16_t>(i.id), nullptr, m.error().str()});
        continue;
      }
      it = ftc_local_maps_.insert_or_assign(i.nf->name, std::move(*m)).first;
    }
    out.push_back({static_cast<uint16_t>(i.id), &it->second});
  }
  return out;
}

void Agent::ftc_resync_receive() {
  if (!ftc_resync_sock_) return;
  const auto now = Clock::now();
  ftc_resync_sock_->receive([&](const nf::ResyncAsk& a) {
    if (!ftc_resync_) return;
    if (auto r = ftc_resync_->ask(a, now); !r) log::debug("ftc resync: {}", r.error().str());
  });
}

nlohmann::json Agent::ftc_resync_status() const {
  nlohmann::json j = ftc_resync_ ? ftc_resync_->status() : nlohmann::json::object();
  j["socket"] = ftc_resync_sock_ ? ftc_resync_sock_->path() : std::string{};
  if (ftc_resync_sock_) {
    j["datagrams"] = ftc_resync_sock_->received;
    j["datagrams_malformed"] = ftc_resync_sock_->malformed;
    j["datagram_error"] = ftc_resync_sock_->last_error;
  }
  return j;
}

}  // namespace anychain::daemon
