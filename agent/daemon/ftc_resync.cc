#include "daemon/ftc_resync.h"

#include <fmt/format.h>

#include "common/log.h"
#include "dataplane/dataplane.h"

namespace anychain::daemon {

namespace chan = ftc::chan;

bool resync_newer(const ac_st_rec& a, const ac_st_rec& b) {
  if (!(b.flags & AC_ST_REC_VALID)) return true;
  if (a.inc != b.inc) return !ac_ftc_inc_older(a.inc, b.inc);
  return !ac_ftc_seq_le(a.seq, b.seq);
}

FtcResyncService::FtcResyncService(FtcRecoveryService::Link link, LocalsFn locals, NodeOfFn node_of,
                                   std::chrono::milliseconds timeout)
    : ch_(std::move(link)), locals_(std::move(locals)), node_of_(std::move(node_of)), timeout_(timeout) {
  ch_.on(chan::Type::ResyncReq, [this](uint32_t node, const chan::Body& b) { answer(node, std::get<chan::ResyncReq>(b)); });
  ch_.on(chan::Type::Resync, [this](uint32_t node, const chan::Body& b) { install(node, std::get<chan::Resync>(b)); });
}

Result<void> FtcResyncService::ask(const nf::ResyncAsk& a, Clock::time_point now) {
  ++stats_.asks;
  const ftc::Mbox mbox = ftc::Mbox::of(a.mbox);
  auto refuse = [&](std::string why, int err) -> Result<void> {
    ++stats_.asks_refused;
    last_error_ = why;
    return fail(std::move(why), err);
  };
  bool local = false;
  for (const auto& l : locals_()) local = local || l.id == a.from;
  if (!local) return refuse(fmt::format("re-request by instance {}: not an FTC NF of this node", a.from), ENOENT);
  auto node = node_of_(mbox.id);
  if (!node || !*node)
    return refuse(fmt::format("re-request by instance {}: the node of middlebox {} is unknown", a.from, mbox.id),
                  EHOSTUNREACH);
  for (const auto& [id, p] : pending_)
    if (p.from == a.from && p.req.flow == ftc::Flow{a.spi, a.hash} && p.req.mbox.same(mbox)) {
      ++stats_.asks_pending;  // the answer to the outstanding request installs it
      return {};
    }
  chan::ResyncReq req{.req = next_req_++, .flow = {a.spi, a.hash}, .mbox = mbox, .have = a.have};
  if (next_req_ == 0) next_req_ = 1;
  pending_[req.req] = Pending{a.from, *node, req, now};
  if (auto r = ch_.send(*node, req); !r) {
    pending_.erase(req.req);
    ++stats_.send_failed;
    last_error_ = r.error().str();
    return unexpected(r.error());
  }
  ++stats_.requests_sent;
  return {};
}

// As the head's node: the head record of the middlebox (a local instance) for the partition, read
// under its lock; NONE when the middlebox is not here or has no such record.
void FtcResyncService::answer(uint32_t node, const chan::ResyncReq& r) {
  chan::Resync out{.req = r.req, .flow = r.flow, .mbox = r.mbox, .record = std::nullopt};
  for (const auto& l : locals_()) {
    if (l.id != r.mbox.id || !l.maps) continue;
    auto rec = l.maps->head_record(ac_st_pkey{spi_si_of(r.flow.spi, r.mbox.si), r.flow.hash});
    if (!rec) {
      ++stats_.answer_errors;
      log::warn("ftc resync: instance {}: {}", l.id, rec.error().str());
      break;
    }
    if (*rec) out.record = record_from_nf(**rec);
    break;
  }
  ++(out.record ? stats_.answered : stats_.answered_none);
  if (auto s = ch_.send(node, out); !s) {
    ++stats_.send_failed;
    last_error_ = s.error().str();
  }
}

// As the asking node: the answer installed into the asking NF's replica record, if newer.
void FtcResyncService::install(uint32_t node, const chan::Resync& m) {
  ++stats_.answers;
  auto it = pending_.find(m.req);
  if (it == pending_.end()) {  // never asked, given up, or answered already
    ++stats_.refused_unknown;
    last_error_ = fmt::format("RESYNC {} from {:#x} (middlebox {}, SPI {}, hash {:#x}) answers no request", m.req, node,
                              m.mbox.id, m.flow.spi, m.flow.hash);
    return;
  }
  const Pending p = it->second;
  if (node != p.node || m.flow != p.req.flow || !m.mbox.same(p.req.mbox)) {
    ++stats_.refused_mismatch;  // the request stays: the right answer may still come
    last_error_ = fmt::format("RESYNC {} from {:#x} names middlebox {} SI {} SPI {} hash {:#x}, asked {:#x} for {} SI {}"
                              " SPI {} hash {:#x}",
                              m.req, node, m.mbox.id, m.mbox.si, m.flow.spi, m.flow.hash, p.node, p.req.mbox.id,
                              p.req.mbox.si, p.req.flow.spi, p.req.flow.hash);
    return;
  }
  pending_.erase(it);
  if (!m.record) {
    ++stats_.none;
    return;
  }
  auto rec = record_to_nf(*m.record);
  if (!rec) {
    ++stats_.refused_record;
    last_error_ = fmt::format("RESYNC {} from {:#x}: {}", m.req, node, rec.error().str());
    return;
  }
  const nf::InstanceMaps* maps = nullptr;
  for (const auto& l : locals_())
    if (l.id == p.from) maps = l.maps;
  if (!maps) {
    ++stats_.install_failed;
    last_error_ = fmt::format("RESYNC {}: instance {} is gone", m.req, p.from);
    return;
  }
  const ac_st_rkey key{p.req.mbox.id, spi_si_of(p.req.flow.spi, p.req.mbox.si), p.req.flow.hash};
  auto cur = maps->replica_record(key);
  if (!cur) {
    ++stats_.install_failed;
    last_error_ = cur.error().str();
    return;
  }
  if (*cur && !resync_newer(*rec, **cur)) {
    ++stats_.stale;  // the missing log arrived meanwhile, or the head is behind what we hold
    return;
  }
  // a replica's position is kept (the head's record says held 1); new: the first replica's
  rec->held = *cur ? (*cur)->held : uint8_t{2};
  auto jiffies = dataplane::current_jiffies();
  rec->last_used = jiffies ? *jiffies : 0;
  if (auto w = maps->install_replica(key, *rec); !w) {
    ++stats_.install_failed;
    last_error_ = w.error().str();
    return;
  }
  ++stats_.installed;
}

void FtcResyncService::on_timer(Clock::time_point now) {
  stats_.timeouts += std::erase_if(pending_, [&](const auto& kv) { return now - kv.second.at >= timeout_; });
}

nlohmann::json FtcResyncService::status() const {
  const Stats& s = stats_;
  return {{"asks", s.asks},
          {"asks_refused", s.asks_refused},
          {"asks_pending", s.asks_pending},
          {"requests_sent", s.requests_sent},
          {"send_failed", s.send_failed},
          {"timeouts", s.timeouts},
          {"pending", pending_.size()},
          {"answered", s.answered},
          {"answered_none", s.answered_none},
          {"answer_errors", s.answer_errors},
          {"answers", s.answers},
          {"installed", s.installed},
          {"none", s.none},
          {"stale", s.stale},
          {"refused_unknown", s.refused_unknown},
          {"refused_mismatch", s.refused_mismatch},
          {"refused_record", s.refused_record},
          {"install_failed", s.install_failed},
          {"last_error", last_error_}};
}

}  // namespace anychain::daemon
