#include "daemon/liveness.h"

#include <fmt/format.h>

#include <algorithm>

namespace anychain::daemon {

bool StallDetector::observe(uint64_t delivered, uint64_t answered, Clock::time_point now) {
  if (!started_) {
    started_ = true;
    answering_ = false;
    base_delivered_ = last_delivered_ = delivered;
    last_answered_ = answered;
    unanswered_ = 0;
    silent_since_.reset();
    last_seen_ = now;
    return false;
  }
  if (delivered < last_delivered_) base_delivered_ = delivered;  // the counter was reset
  answering_ = answered != last_answered_;
  if (answering_) {
    // everything up to here may have been answered: count afresh from now
    base_delivered_ = delivered;
    silent_since_.reset();
  } else if (delivered > base_delivered_ && !silent_since_) {
    silent_since_ = last_seen_;  // packets went in after the previous look, nothing came back
  }
  unanswered_ = delivered - base_delivered_;
  last_delivered_ = delivered;
  last_answered_ = answered;
  last_seen_ = now;
  return window_.count() > 0 && silent_since_ && now - *silent_since_ >= window_ && unanswered_ >= min_packets_;
}

void InstanceLiveness::revive() {
  alive_ = true;
  reason_.clear();
  stalled_ = false;
  stall_.restart();
}

bool InstanceLiveness::update(const LivenessProbe& p, Clock::time_point now) {
  const bool was = alive_;
  std::string hard;
  if (!p.link_problem.empty())
    hard = p.link_problem;
  else if (p.process && !*p.process)
    hard = p.pid ? fmt::format("its process (pid {}, from pid_file) is gone", p.pid) : "its pid_file names no process";
  else if (p.cgroup && !*p.cgroup)
    hard = "its cgroup holds no process";
  else if (p.supervised && !*p.supervised)
    hard = "its NF process is not running";
  if (!hard.empty()) {
    alive_ = false;
    reason_ = std::move(hard);
    stalled_ = retrying_ = false;
    backoff_ = kRetryFirst;
    stall_.restart();
    return was;
  }
  if (!alive_ && !stalled_) {  // every hard source is fine again
    revive();
    return true;
  }
  if (stalled_) {
    // chain traffic came back from it since the verdict (held packets it answered late)
    bool spoke = p.answered && answered_at_stall_ && *p.answered > *answered_at_stall_;
    bool new_process = p.pid != 0 && p.pid != pid_at_stall_;
    if (!spoke && !new_process && now < retry_at_) return false;
    retrying_ = !spoke && !new_process;
    if (!retrying_) backoff_ = kRetryFirst;
    revive();
    return true;
  }
  if (!p.delivered || !p.answered) return false;
  bool stalled = stall_.observe(*p.delivered, *p.answered, now);
  if (stall_.answering()) {
    retrying_ = false;
    backoff_ = kRetryFirst;
  }
  if (!stalled) return false;
  backoff_ = retrying_ ? std::min(backoff_ * 2, kRetryMax) : kRetryFirst;
  stalled_ = true;
  alive_ = false;
  retry_at_ = now + backoff_;
  answered_at_stall_ = p.answered;
  pid_at_stall_ = p.pid;
  reason_ = fmt::format("answered none of {} packets for {:.1f} s (dataplane); tried again in {} s",
                        stall_.unanswered(), std::chrono::duration<double>(stall_.window()).count(),
                        std::chrono::duration_cast<std::chrono::seconds>(backoff_).count());
  return true;
}

void DownFirst::down_sent(uint32_t id, std::optional<int32_t> lsdb_seq, Clock::time_point now) {
  pending_[id] = Pending{.seq = lsdb_seq, .since = now};
}

void DownFirst::lsdb_has(uint32_t id, std::optional<int32_t> seq, const ospf::VnfInfo& lsa) {
  auto it = pending_.find(id);
  if (it == pending_.end() || !seq || !(lsa.down() || lsa.standby())) return;
  // sequence numbers are signed and grow (RFC 2328 12.1.6): a newer copy is the one originated
  // after the down was handed over, and flagged down it is that down (or a later one)
  if (!it->second.seq || *seq > *it->second.seq) pending_.erase(it);
}

bool DownFirst::holds(uint32_t id, Clock::time_point now) const {
  auto it = pending_.find(id);
  return it != pending_.end() && now - it->second.since < kMaxWait;
}

bool DownFirst::timed_out(uint32_t id, Clock::time_point now) const {
  auto it = pending_.find(id);
  return it != pending_.end() && now - it->second.since >= kMaxWait;
}

}  // namespace anychain::daemon
