#include "daemon/ftc_recovery_service.h"

#include <fmt/format.h>

#include "common/log.h"

namespace anychain::daemon {

namespace chan = ftc::chan;

FtcRecoveryService::FtcRecoveryService(ftc::Channel& channel, LocalsFn locals, std::chrono::milliseconds timeout)
    : FtcRecoveryService(Link{[&channel](chan::Type t, ftc::Channel::Handler h) { channel.on(t, std::move(h)); },
                              [&channel](uint32_t node, const chan::Body& m) { return channel.send(node, m); }},
                         std::move(locals), timeout) {}

FtcRecoveryService::FtcRecoveryService(Link link, LocalsFn locals, std::chrono::milliseconds timeout)
    : ch_(std::move(link)), locals_(std::move(locals)), timeout_(timeout) {
  ch_.on(chan::Type::RecoverReq, [this](uint32_t node, const chan::Body& b) {
    const auto& req = std::get<chan::RecoverReq>(b);
    auto a = answer_recover_req(locals_(), req);
    ++stats_.requests_answered;
    stats_.records_fenced += a.fenced;
    stats_.records_sent += a.done.records;
    for (const auto& e : a.errors) {
      ++stats_.answer_errors;
      log::warn("ftc recovery: answering {} for instance {}: {}", node, req.instance, e);
    }
    for (const auto& m : a.batches)
      if (auto r = ch_.send(node, m); !r) log::warn("ftc recovery: send RECOVER: {}", r.error().str());
    if (auto r = ch_.send(node, a.done); !r) log::warn("ftc recovery: send RECOVER_DONE: {}", r.error().str());
  });
  ch_.on(chan::Type::Recover, [this](uint32_t node, const chan::Body& b) {
    const auto& m = std::get<chan::Recover>(b);
    if (Running* r = session_of_req(m.req)) send_reqs(r->s->on_recover(node, m));
  });
  ch_.on(chan::Type::RecoverDone, [this](uint32_t node, const chan::Body& b) {
    const auto& d = std::get<chan::RecoverDone>(b);
    auto it = req_owner_.find(d.req);
    if (it == req_owner_.end()) return;
    const uint16_t failed = it->second;
    if (Running* r = session_of_req(d.req)) send_reqs(r->s->on_done(node, d));
    finish_if_complete(failed);
  });
}

FtcRecoveryService::Running* FtcRecoveryService::session_of_req(uint32_t req) {
  auto it = req_owner_.find(req);
  if (it == req_owner_.end()) return nullptr;
  auto s = sessions_.find(it->second);
  return s == sessions_.end() ? nullptr : &s->second;
}

void FtcRecoveryService::send_reqs(const std::vector<std::pair<uint32_t, chan::RecoverReq>>& reqs) {
  for (const auto& [node, r] : reqs) {
    req_owner_[r.req] = r.instance;
    next_req_ = std::max(next_req_, r.req + 1);
    if (auto s = ch_.send(node, r); !s) log::warn("ftc recovery: send RECOVER_REQ to {}: {}", node, s.error().str());
  }
}

::anychain::Result<void> FtcRecoveryService::begin(uint16_t failed, uint8_t new_inc, ftc::Geometry geo,
                                                   std::set<uint32_t> holders, const nf::InstanceMaps* replacement,
                                                   bool nat, Clock::time_point detected) {
  if (sessions_.contains(failed)) return fail(fmt::format("instance {} is being recovered already", failed), EBUSY);
  if (!replacement) return fail("no replacement maps", EINVAL);
  const auto now = Clock::now();
  // request ids: this node's own range per session (a holder answers with the id it was asked)
  auto s = std::make_unique<RecoverySession>(failed, new_inc, std::move(geo), std::move(holders), next_req_, detected, now);
  next_req_ += 1u << 16;
  Running run{std::move(s), replacement, nat, now + timeout_, 0, unix_time_of(detected)};
  auto reqs = run.s->start(now);
  sessions_.emplace(failed, std::move(run));
  send_reqs(reqs);
  finish_if_complete(failed);
  return {};
}

void FtcRecoveryService::finish_if_complete(uint16_t failed) {
  auto it = sessions_.find(failed);
  if (it == sessions_.end() || !it->second.s->complete()) return;
  Running& run = it->second;
  Result res;
  res.failed = failed;
  res.new_inc = run.s->new_inc();
  res.holders_gone = run.gone;
  auto plan = run.s->plan();
  res.conflict = plan.conflict;
  if (!plan.conflict) {
    auto inst = run.s->install(*run.replacement, plan, Clock::now());
    for (const auto& t : plan.transfers)
      if (t.head && t.key.id == failed)
        if (auto node = run.s->node_of(t.source))
          res.head_sources.push_back({t.key.flow.spi, t.key.flow.hash, t.key.si, *node});
    res.heads = inst.heads;
    res.replicas = inst.replicas;
    res.lost = inst.lost;
    res.errors = std::move(inst.errors);
    res.errors.insert(res.errors.end(), run.s->holder_errors().begin(), run.s->holder_errors().end());
    if (run.nat) {
      if (auto n = rebuild_nat_derived(*run.replacement); n)
        res.nat_rebuilt = *n;
      else
        res.errors.push_back(n.error().str());
    }
    stats_.records_installed += res.heads + res.replicas;
    stats_.records_lost += res.lost;
  } else {
    ++stats_.recoveries_conflict;
  }
  ++stats_.recoveries;
  res.times = run.s->times();
  res.detected_at = run.detected_at;
  installed_at_[failed] = Clock::now();
  std::erase_if(req_owner_, [&](const auto& kv) { return kv.second == failed; });
  sessions_.erase(it);
  last_[failed] = res;
  log::info("ftc recovery of instance {} as incarnation {}: {} head and {} replica records installed, {} lost{}{}",
            failed, res.new_inc, res.heads, res.replicas, res.lost, res.conflict ? ", CONFLICT: another replacement won" : "",
            res.errors.empty() ? "" : fmt::format(", {} errors", res.errors.size()));
  if (on_recovered) on_recovered(last_[failed]);
}

void FtcRecoveryService::on_timer(Clock::time_point now) {
  std::vector<uint16_t> due;
  for (auto& [failed, run] : sessions_)
    if (now >= run.deadline) due.push_back(failed);
  for (uint16_t failed : due) {
    auto it = sessions_.find(failed);
    // every holder still pending in this round is given up (round 2, if it starts, gets its own
    // timeout)
    for (uint32_t node : std::set<uint32_t>(it->second.s->pending())) {
      ++it->second.gone;
      log::warn("ftc recovery of instance {}: node {:#x} did not answer in {} ms: not a source", failed, node,
                timeout_.count());
      send_reqs(it->second.s->forget(node));
    }
    it->second.deadline = now + timeout_;
    finish_if_complete(failed);
  }
}

void FtcRecoveryService::on_peer_down(uint32_t node) {
  for (auto& [failed, run] : sessions_)
    if (run.s->pending().contains(node)) run.interrupted.insert(node);
}

void FtcRecoveryService::on_peer_up(uint32_t node) {
  for (auto& [failed, run] : sessions_) {
    if (!run.interrupted.erase(node)) continue;
    auto again = run.s->reask(node);
    if (again.empty()) continue;
    ++stats_.requests_repeated;
    log::info("ftc recovery of instance {}: the connection to node {:#x} came back before its answer: asked again",
              failed, node);
    send_reqs(again);
  }
}

double FtcRecoveryService::unix_time_of(Clock::time_point t) {
  const auto wall = std::chrono::system_clock::now() - (Clock::now() - t);
  return std::chrono::duration<double>(wall.time_since_epoch()).count();
}

void FtcRecoveryService::rerouted(uint16_t failed, Clock::time_point now, double plane_ms) {
  auto it = last_.find(failed);
  auto at = installed_at_.find(failed);
  if (it == last_.end() || at == installed_at_.end()) return;
  it->second.times.rerouting_ms = std::chrono::duration<double, std::milli>(now - at->second).count();
  it->second.times.plane_ms = plane_ms;
  it->second.live_at = unix_time_of(now);
  installed_at_.erase(at);
}

}  // namespace anychain::daemon
