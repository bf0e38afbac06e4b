#include "ftc/store.h"

#include <algorithm>

#include <fmt/format.h>

namespace anychain::ftc {

void apply_writes(Kv& kv, const std::vector<Write>& writes) {
  for (const auto& w : writes) {
    auto k = std::make_pair(w.table, w.key);
    if (w.del)
      kv.erase(k);
    else
      kv[k] = w.value;
  }
}

const char* outcome_str(Outcome o) {
  switch (o) {
    case Outcome::Applied: return "applied";
    case Outcome::Satisfied: return "satisfied";
    case Outcome::Gap: return "gap";
    case Outcome::Stale: return "stale";
  }
  return "?";
}

std::optional<Bytes> Transaction::get(uint8_t table, const Bytes& key) const {
  auto it = rec_.kv.find({table, key});
  if (it == rec_.kv.end()) return std::nullopt;
  return it->second;
}

Result<void> Transaction::stage(Write w) {
  if (w.key.empty() || w.key.size() > AC_FTC_KEY_MAX)
    return fail(fmt::format("key of {} bytes (1..{})", w.key.size(), AC_FTC_KEY_MAX));
  if (w.value.size() > AC_FTC_VAL_MAX)
    return fail(fmt::format("value of {} bytes (at most {})", w.value.size(), AC_FTC_VAL_MAX));
  auto k = std::make_pair(w.table, w.key);
  bool exists = rec_.kv.count(k);
  // as in BPF, a key deleted by this transaction keeps its slot until the commit
  size_t deleted = std::count_if(writes_.begin(), writes_.end(), [&](const Write& x) {
    return x.del && !(x.table == w.table && x.key == w.key);
  });
  if (!w.del && !exists && rec_.kv.size() + deleted >= AC_ST_SLOTS)
    return fail(fmt::format("partition holds {} keys already", AC_ST_SLOTS));
  std::vector<Write> next = writes_;
  auto same = std::find_if(next.begin(), next.end(), [&](const Write& x) { return x.table == w.table && x.key == w.key; });
  if (same != next.end())
    *same = w;
  else
    next.push_back(w);
  Log probe;
  probe.writes = next;
  if (probe.value_len() > AC_FTC_LOG_MAX)
    return fail(fmt::format("log over the size limit: {} bytes > {}", probe.value_len(), AC_FTC_LOG_MAX));
  writes_ = std::move(next);
  apply_writes(rec_.kv, {w});
  return {};
}

Result<void> Transaction::put(uint8_t table, Bytes key, Bytes value) {
  return stage(Write{table, false, std::move(key), std::move(value)});
}

Result<void> Transaction::del(uint8_t table, const Bytes& key) {
  if (!rec_.kv.count({table, key})) return {};
  return stage(Write{table, true, key, {}});
}

Result<Log> Store::transact(Flow flow, uint8_t si, const TxFn& fn) {
  RecordKey key{id_, si, flow};
  auto it = head_.find(key);
  if (it == head_.end()) {
    if (head_.size() >= max_head_) return fail(fmt::format("instance {}: head store full ({} records)", id_, max_head_));
    it = head_.emplace(key, Record{0, inc_, 1, {}}).first;
  }
  Record& rec = it->second;
  Transaction tx(rec);
  fn(tx);
  Log log;
  log.mbox = Mbox{id_, inc_, si};
  log.held = 1;
  if (tx.wrote()) {
    rec.seq += 1;
    rec.inc = inc_;
    log.count = 1;
    log.writes = std::move(tx.writes_);
  } else {
    log.count = 0;
  }
  log.seq = rec.seq;
  return log;
}

Result<Outcome> Store::apply(const RecordKey& key, const Log& log, uint8_t held_after) {
  auto it = replica_.find(key);
  bool have = it != replica_.end();
  auto o = ac_ftc_order(have, have ? it->second.inc : 0, have ? it->second.seq : 0, log.mbox.inc, log.seq,
                        log.count, log.stub());
  switch (o) {
    case AC_FTC_STALE: return Outcome::Stale;
    case AC_FTC_GAP: return Outcome::Gap;
    case AC_FTC_SATISFIED:
      if (have && it->second.inc != log.mbox.inc && !ac_ftc_inc_older(log.mbox.inc, it->second.inc))
        it->second.inc = log.mbox.inc;
      return Outcome::Satisfied;
    case AC_FTC_APPLY:
      break;
  }
  if (!have) {
    if (replica_.size() >= max_replica_)
      return fail(fmt::format("instance {}: replica store full ({} records)", id_, max_replica_));
    it = replica_.emplace(key, Record{}).first;
  }
  Record& r = it->second;
  apply_writes(r.kv, log.writes);
  r.seq = log.seq;
  r.inc = log.mbox.inc;
  r.held = held_after;
  return Outcome::Applied;
}

namespace {
bool newer(const Record& a, const Record& b) {
  if (a.inc != b.inc) return !ac_ftc_inc_older(a.inc, b.inc);
  return !ac_ftc_seq_le(a.seq, b.seq);
}
}  // namespace

bool Store::install_replica(const RecordKey& key, const Record& rec) {
  auto it = replica_.find(key);
  if (it != replica_.end() && !newer(rec, it->second)) return false;
  if (it == replica_.end() && replica_.size() >= max_replica_) return false;
  Record r = rec;
  if (it != replica_.end()) r.held = it->second.held;
  replica_[key] = r;
  return true;
}

bool Store::install_head(const RecordKey& key, const Record& rec) {
  auto it = head_.find(key);
  if (it != head_.end() && !newer(rec, it->second)) return false;
  if (it == head_.end() && head_.size() >= max_head_) return false;
  Record r = rec;
  r.held = 1;
  head_[key] = r;
  return true;
}

void Store::fence(const RecordKey& key, uint8_t inc) {
  auto it = replica_.find(key);
  if (it != replica_.end() && !ac_ftc_inc_older(inc, it->second.inc)) it->second.inc = inc;
}

const Record* Store::head(const RecordKey& key) const {
  auto it = head_.find(key);
  return it == head_.end() ? nullptr : &it->second;
}

const Record* Store::replica(const RecordKey& key) const {
  auto it = replica_.find(key);
  return it == replica_.end() ? nullptr : &it->second;
}

}  // namespace anychain::ftc
