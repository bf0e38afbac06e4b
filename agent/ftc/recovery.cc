#include "ftc/recovery.h"

#include <algorithm>
#include <set>

namespace anychain::ftc {

namespace {

// a is a better source than b
bool better(const Holding& a, const Holding& b) {
  if (a.rec.inc != b.rec.inc) return ac_ftc_inc_older(b.rec.inc, a.rec.inc);
  if (a.rec.seq != b.rec.seq) return ac_ftc_seq_le(b.rec.seq, a.rec.seq);
  if (a.rec.held != b.rec.held) return a.rec.held < b.rec.held;
  return a.holder < b.holder;  // deterministic
}

}  // namespace

RecoveryPlan plan_recovery(uint16_t failed, uint8_t new_inc, const std::vector<Holding>& holdings,
                           const Geometry& geo) {
  RecoveryPlan plan;
  plan.failed = failed;
  plan.new_inc = new_inc;
  for (const auto& h : holdings)
    if (h.key.id == failed && ac_ftc_inc_older(new_inc, h.rec.inc)) plan.conflict = true;

  // the best alive holding per record, and the records known at all
  std::map<RecordKey, const Holding*> best;
  std::set<RecordKey> known;
  auto wanted_head = [&](const Holding& h) { return h.key.id == failed; };
  for (const auto& h : holdings) {
    if (!wanted_head(h)) continue;
    known.insert(h.key);
    if (!h.alive || h.holder == failed) continue;
    auto& b = best[h.key];
    if (!b || better(h, *b)) b = &h;
  }
  std::set<Flow> flows;
  for (const auto& k : known) flows.insert(k.flow);
  for (const auto& h : holdings) {
    if (h.key.id == failed || !flows.count(h.key.flow)) continue;
    auto g = geo.replicated_sis.find(h.key.flow.spi);
    if (g == geo.replicated_sis.end() ||
        std::find(g->second.begin(), g->second.end(), h.key.si) == g->second.end())
      continue;
    known.insert(h.key);
    if (!h.alive || h.holder == failed) continue;
    auto& b = best[h.key];
    if (!b || better(h, *b)) b = &h;
  }
  for (const auto& k : known) {
    auto it = best.find(k);
    if (it == best.end()) {
      plan.lost.push_back(k);
      continue;
    }
    plan.transfers.push_back({k, it->second->holder, k.id == failed, it->second->rec});
  }
  return plan;
}

}  // namespace anychain::ftc
