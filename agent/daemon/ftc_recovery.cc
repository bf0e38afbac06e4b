#include "daemon/ftc_recovery.h"

#include <algorithm>
#include <cstring>

#include <bpf/bpf.h>
#include <netinet/in.h>

#include <fmt/format.h>

#include "anychain/nf.h"
#include "dataplane/dataplane.h"

namespace anychain::daemon {

namespace chan = ftc::chan;

ftc::Record record_from_nf(const ac_st_rec& r) {
  ftc::Record out;
  out.seq = r.seq;
  out.inc = r.inc;
  out.held = r.held;
  for (const auto& s : r.slot) {
    if (!(s.flags & AC_ST_USED)) continue;
    const uint8_t kl = std::min<uint8_t>(s.klen, AC_FTC_KEY_MAX), vl = std::min<uint8_t>(s.vlen, AC_FTC_VAL_MAX);
    out.kv[{s.table, ftc::Bytes(s.key, s.key + kl)}] = ftc::Bytes(s.val, s.val + vl);
  }
  return out;
}

Result<ac_st_rec> record_to_nf(const ftc::Record& r) {
  ac_st_rec out{};
  if (r.kv.size() > AC_ST_SLOTS) return fail(fmt::format("a record of {} keys (at most {})", r.kv.size(), AC_ST_SLOTS), EINVAL);
  out.seq = r.seq;
  out.inc = r.inc;
  out.held = r.held;
  out.flags = AC_ST_REC_VALID;
  size_t i = 0;
  for (const auto& [tk, v] : r.kv) {
    const auto& [table, key] = tk;
    if (key.empty() || key.size() > AC_FTC_KEY_MAX || v.size() > AC_FTC_VAL_MAX)
      return fail(fmt::format("a key of {} or a value of {} bytes (at most {} and {})", key.size(), v.size(),
                              AC_FTC_KEY_MAX, AC_FTC_VAL_MAX),
                  EINVAL);
    auto& s = out.slot[i++];
    s.table = table;
    s.flags = AC_ST_USED;
    s.klen = static_cast<uint8_t>(key.size());
    s.vlen = static_cast<uint8_t>(v.size());
    std::memcpy(s.key, key.data(), key.size());
    std::memcpy(s.val, v.data(), v.size());
  }
  return out;
}

namespace {

ftc::RecordKey key_of(const ac_st_rkey& k) {
  return {static_cast<uint16_t>(k.id), static_cast<uint8_t>(k.spi_si & 0xff), {k.spi_si >> 8, k.hash}};
}

// Records into RECOVER batches of at most chan::kMaxBatch bytes
void batch(HolderAnswer& a, uint32_t req, std::vector<chan::RecordEntry> entries) {
  chan::Recover cur{.req = req, .batch = 0, .records = {}};
  size_t bytes = 0;
  for (auto& e : entries) {
    const size_t n = chan::entry_size(e);
    if (!cur.records.empty() && bytes + n > chan::kMaxBatch) {
      a.batches.push_back(std::move(cur));
      cur = chan::Recover{.req = req, .batch = static_cast<uint32_t>(a.batches.size()), .records = {}};
      bytes = 0;
    }
    cur.records.push_back(std::move(e));
    bytes += n;
  }
  if (!cur.records.empty()) a.batches.push_back(std::move(cur));
}

}  // namespace

HolderAnswer answer_recover_req(const std::vector<LocalHolder>& locals, const chan::RecoverReq& req) {
  HolderAnswer a;
  a.done.req = req.req;
  std::vector<chan::RecordEntry> out;
  bool conflict = false, failed = false;
  std::set<std::pair<uint32_t, uint32_t>> flows;  // (spi, hash) of round 2
  for (const auto& f : req.flows) flows.insert({f.spi, f.hash});
  auto wanted_mbox = [&](uint32_t id, uint8_t si) {
    for (const auto& [mid, msi] : req.mboxes)
      if (msi == si && (mid == 0 || mid == id)) return true;
    return false;
  };
  for (const auto& l : locals) {
    if (l.id == req.instance) continue;  // the failed instance's own maps are gone (or stale)
    if (!l.maps) {
      if (!l.error.empty()) {
        a.errors.push_back(fmt::format("instance {}: its maps: {}", l.id, l.error));
        failed = true;
      }
      continue;
    }
    auto reps = l.maps->replica_records();
    if (!reps) {
      a.errors.push_back(fmt::format("instance {}: {}", l.id, reps.error().str()));
      failed = true;
      continue;
    }
    for (auto& [k, rec] : *reps) {
      if (!(rec.flags & AC_ST_REC_VALID)) continue;
      const auto key = key_of(k);
      if (req.round == 1) {
        if (key.id != req.instance) continue;
        // fence first (docs/ftc.md 7.5): from now on a log of the old incarnation is STALE here
        if (ac_ftc_inc_older(req.new_inc, rec.inc)) {
          conflict = true;  // a newer replacement fenced it already
        } else if (rec.inc != req.new_inc) {
          rec.inc = req.new_inc;
          if (auto r = l.maps->install_replica(k, rec); !r) {
            a.errors.push_back(fmt::format("instance {}: fence: {}", l.id, r.error().str()));
            failed = true;
            continue;
          }
          ++a.fenced;
        }
      } else {
        if (!flows.contains({key.flow.spi, key.flow.hash}) || !wanted_mbox(key.id, key.si)) continue;
      }
      out.push_back({key, chan::Role::Replica, record_from_nf(rec)});
    }
    if (req.round == 2) {
      auto heads = l.maps->head_records();
      if (!heads) {
        a.errors.push_back(fmt::format("instance {}: {}", l.id, heads.error().str()));
        failed = true;
        continue;
      }
      for (const auto& [k, rec] : *heads) {
        if (!(rec.flags & AC_ST_REC_VALID)) continue;
        const uint8_t si = static_cast<uint8_t>(k.spi_si & 0xff);
        if (!flows.contains({k.spi_si >> 8, k.hash}) || !wanted_mbox(l.id, si)) continue;
        out.push_back({ftc::RecordKey{l.id, si, {k.spi_si >> 8, k.hash}}, chan::Role::Head, record_from_nf(rec)});
      }
    }
  }
  a.done.records = static_cast<uint32_t>(out.size());
  batch(a, req.req, std::move(out));
  a.done.batches = static_cast<uint32_t>(a.batches.size());
  a.done.status = conflict ? chan::RecoverStatus::Conflict : failed ? chan::RecoverStatus::Failed : chan::RecoverStatus::Ok;
  return a;
}

Result<size_t> rebuild_nat_derived(const nf::InstanceMaps& nat) {
  const int ports = nat.fd("nf_nat_ports"), rev = nat.fd("nf_nat_rev");
  if (ports < 0 || rev < 0) return fail("not a NAT instance: no nf_nat_ports or nf_nat_rev", EINVAL);
  auto heads = nat.head_records();
  if (!heads) return unexpected(heads.error());
  size_t n = 0;
  for (const auto& [k, rec] : *heads) {
    if (!(rec.flags & AC_ST_REC_VALID)) continue;
    for (const auto& s : rec.slot) {
      // table 1: the 5-tuple (src 4, dst 4, proto 1, sport 2, dport 2) -> external address 4, port 2
      if (!(s.flags & AC_ST_USED) || s.table != AC_NF_TABLE_FLOW || s.klen != 13 || s.vlen < 6) continue;
      ac_nf_nat_rkey rk{};
      ac_nf_nat_rval rv{};
      std::memcpy(&rv.inside, s.key, 4);
      std::memcpy(&rk.remote, s.key + 4, 4);
      rk.proto = s.key[8];
      std::memcpy(&rv.inside_port, s.key + 9, 2);
      if (rk.proto != IPPROTO_ICMP) std::memcpy(&rk.remote_port, s.key + 11, 2);
      std::memcpy(&rk.port, s.val + 4, 2);
      rv.spi_si = k.spi_si;
      rv.hash = k.hash;
      if (bpf_map_update_elem(rev, &rk, &rv, BPF_ANY) != 0) return fail_errno("write nf_nat_rev");
      const uint32_t port = static_cast<uint32_t>(s.val[4]) << 8 | s.val[5];
      uint32_t word = port / 64;
      uint64_t bits = 0;
      if (bpf_map_lookup_elem(ports, &word, &bits) != 0) return fail_errno("read nf_nat_ports");
      bits |= 1ULL << (port % 64);
      if (bpf_map_update_elem(ports, &word, &bits, BPF_ANY) != 0) return fail_errno("write nf_nat_ports");
      ++n;
    }
  }
  return n;
}

RecoverySession::RecoverySession(uint16_t failed, uint8_t new_inc, ftc::Geometry geo, std::set<uint32_t> holders,
                                 uint32_t first_req, Clock::time_point detected, Clock::time_point now)
    : failed_(failed), new_inc_(new_inc), geo_(std::move(geo)), holders_(std::move(holders)), next_req_(first_req),
      detected_(detected) {
  times_.detection_ms = std::chrono::duration<double, std::milli>(now - detected_).count();
}

std::optional<uint32_t> RecoverySession::node_of(uint16_t holder) const {
  for (const auto& [node, id] : holder_ids_)
    if (id == holder) return node;
  return std::nullopt;
}

uint16_t RecoverySession::holder_of(uint32_t node) {
  auto [it, fresh] = holder_ids_.try_emplace(node, static_cast<uint16_t>(holder_ids_.size() + 1));
  return it->second;
}

std::vector<std::pair<uint32_t, chan::RecoverReq>> RecoverySession::start(Clock::time_point now) {
  started_ = now;
  round_ = 1;
  std::vector<std::pair<uint32_t, chan::RecoverReq>> out;
  round_req_ = chan::RecoverReq{.req = 0, .instance = failed_, .new_inc = new_inc_, .round = 1, .mboxes = {}, .flows = {}};
  for (uint32_t node : holders_) {
    chan::RecoverReq r = round_req_;
    r.req = next_req_++;
    req_of_[r.req] = node;
    round_req_of_[node] = r.req;
    pending_.insert(node);
    out.push_back({node, r});
  }
  if (out.empty()) return next_round();
  return out;
}

std::vector<std::pair<uint32_t, chan::RecoverReq>> RecoverySession::next_round() {
  if (round_ == 2) return {};
  round_ = 2;
  // round 2: the flows X headed (its head records, known from round 1) at the SIs it replicated
  std::map<uint32_t, std::set<uint32_t>> flows;  // spi -> hashes
  for (const auto& h : holdings_)
    if (h.key.id == failed_) flows[h.key.flow.spi].insert(h.key.flow.hash);
  chan::RecoverReq r{.req = 0, .instance = failed_, .new_inc = new_inc_, .round = 2, .mboxes = {}, .flows = {}};
  for (const auto& [spi, hashes] : flows) {
    auto g = geo_.replicated_sis.find(spi);
    if (g == geo_.replicated_sis.end()) continue;
    for (uint8_t si : g->second)
      if (std::find(r.mboxes.begin(), r.mboxes.end(), std::pair<uint16_t, uint8_t>{0, si}) == r.mboxes.end())
        r.mboxes.push_back({0, si});
    for (uint32_t h : hashes) r.flows.push_back({spi, h});
  }
  std::vector<std::pair<uint32_t, chan::RecoverReq>> out;
  if (r.mboxes.empty() || r.flows.empty()) return out;  // nothing replicated (a head-only X, or no flows)
  round_req_ = r;
  for (uint32_t node : holders_) {
    r.req = next_req_++;
    req_of_[r.req] = node;
    round_req_of_[node] = r.req;
    pending_.insert(node);
    out.push_back({node, r});
  }
  return out;
}

std::vector<std::pair<uint32_t, chan::RecoverReq>> RecoverySession::on_recover(uint32_t node, const chan::Recover& m) {
  auto it = req_of_.find(m.req);
  if (it == req_of_.end() || it->second != node) return {};  // not ours, or from another node
  const uint16_t holder = holder_of(node);
  for (const auto& e : m.records) {
    ftc::Holding h{.holder = holder, .alive = true, .key = e.key, .rec = e.rec};
    holdings_.push_back(std::move(h));
    holding_req_.push_back(m.req);
  }
  return {};
}

std::vector<std::pair<uint32_t, chan::RecoverReq>> RecoverySession::on_done(uint32_t node, const chan::RecoverDone& d) {
  auto it = req_of_.find(d.req);
  if (it == req_of_.end() || it->second != node) return {};
  if (d.status == chan::RecoverStatus::Conflict) conflict_ = true;
  if (d.status == chan::RecoverStatus::Failed)
    holder_errors_.push_back(fmt::format("holder {:#x} (round {}) could not read every store it runs: its records may "
                                         "be missing (the holder's log says which)",
                                         node, round_));
  pending_.erase(node);
  if (pending_.empty() && round_ == 1) return next_round();
  return {};
}

std::vector<std::pair<uint32_t, chan::RecoverReq>> RecoverySession::forget(uint32_t node) {
  if (!pending_.erase(node)) return {};
  if (pending_.empty() && round_ == 1) return next_round();
  return {};
}

std::vector<std::pair<uint32_t, chan::RecoverReq>> RecoverySession::reask(uint32_t node) {
  if (!pending_.contains(node)) return {};
  // the node's request of this round (it is pending: not done) is void, and so is what it sent
  // for it
  const uint32_t old = round_req_of_.at(node);
  req_of_.erase(old);
  size_t w = 0;
  for (size_t i = 0; i < holdings_.size(); ++i)
    if (holding_req_[i] != old) {
      if (w != i) {
        holdings_[w] = std::move(holdings_[i]);
        holding_req_[w] = holding_req_[i];
      }
      ++w;
    }
  holdings_.resize(w);
  holding_req_.resize(w);
  chan::RecoverReq r = round_req_;
  r.req = next_req_++;
  req_of_[r.req] = node;
  round_req_of_[node] = r.req;
  return {{node, r}};
}

ftc::RecoveryPlan RecoverySession::plan() const {
  auto p = ftc::plan_recovery(failed_, new_inc_, holdings_, geo_);
  p.conflict = p.conflict || conflict_;
  return p;
}

RecoverySession::Installed RecoverySession::install(const nf::InstanceMaps& replacement, const ftc::RecoveryPlan& plan,
                                                    Clock::time_point now) {
  Installed out;
  out.lost = plan.lost.size();
  auto jiffies = dataplane::current_jiffies();
  for (const auto& t : plan.transfers) {
    ftc::Record rec = t.rec;
    if (t.head) {
      rec.inc = new_inc_;  // the replacement continues the partition under its incarnation
      rec.held = 1;
    }
    auto nrec = record_to_nf(rec);
    if (!nrec) {
      out.errors.push_back(fmt::format("record of {} SI {} flow {}:{:#x}: {}", t.key.id, t.key.si, t.key.flow.spi,
                                       t.key.flow.hash, nrec.error().str()));
      continue;
    }
    nrec->last_used = jiffies ? *jiffies : 0;
    const uint32_t spi_si = spi_si_of(t.key.flow.spi, t.key.si);
    Result<void> r;
    if (t.head)
      r = replacement.install_head(ac_st_pkey{spi_si, t.key.flow.hash}, *nrec);
    else
      r = replacement.install_replica(ac_st_rkey{t.key.id, spi_si, t.key.flow.hash}, *nrec);
    if (!r) {
      out.errors.push_back(r.error().str());
      continue;
    }
    ++(t.head ? out.heads : out.replicas);
  }
  installed_ = now;
  times_.transfer_ms = std::chrono::duration<double, std::milli>(installed_ - started_).count();
  return out;
}

void RecoverySession::rerouted(Clock::time_point now) {
  times_.rerouting_ms = std::chrono::duration<double, std::milli>(now - installed_).count();
}

}  // namespace anychain::daemon
