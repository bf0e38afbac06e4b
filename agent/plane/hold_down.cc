#include "plane/hold_down.h"

#include <set>

namespace anychain::plane {

std::vector<Instance> VnfHoldDown::apply(std::vector<Instance> current, Clock::time_point now,
                                         const std::function<bool(std::uint32_t)>& reachable) {
  auto unreachable = [&](std::uint32_t router) { return reachable && !reachable(router); };
  std::map<Key, Instance> live;
  std::set<Key> down;    // withdrawn by their own node: gone now, never held
  std::set<Key> freeze;  // FTC instances withdrawn (down, or their router unreachable)
  std::vector<Instance> out;
  for (auto& i : current) {
    i.held = false;
    i.recovering = false;
    Key key{i.router, i.info.instance_id};
    const bool known = live_.contains(key) || held_.contains(key) || recovering_.contains(key);
    if (i.info.ftc() && known && (i.info.down() || unreachable(i.router))) {
      freeze.insert(key);
      continue;
    }
    if (i.info.down()) {
      down.insert(key);
      continue;
    }
    live.emplace(key, i);
    out.push_back(i);
  }
  // a live or held FTC instance whose LSA vanished and whose router is unreachable: its node died
  for (const auto& [key, inst] : live_)
    if (!live.contains(key) && inst.info.ftc() && unreachable(key.first)) freeze.insert(key);
  for (const auto& [key, h] : held_)
    if (h.inst.info.ftc() && unreachable(key.first)) freeze.insert(key);
  for (const auto& key : freeze) {
    if (recovering_.contains(key)) continue;
    const Instance* last = nullptr;
    if (auto it = live_.find(key); it != live_.end()) last = &it->second;
    else if (auto h = held_.find(key); h != held_.end()) last = &h->second.inst;
    if (!last) continue;  // never seen live here: nothing to keep
    recovering_.emplace(key, Held{*last, now + ftc_hold_});
    ++ftc_.frozen;
  }
  // an instance id announced live again, by any router: its replacement (a standby elsewhere, a
  // restart in place, or itself) is back, the freeze ends
  std::set<std::uint32_t> live_ids;
  for (const auto& [key, inst] : live) live_ids.insert(key.second);
  std::erase_if(recovering_, [&](const auto& kv) {
    if (live_ids.contains(kv.first.second)) {
      ++ftc_.recovered;
      return true;
    }
    if (kv.second.until <= now) {
      ++ftc_.abandoned;
      abandoned_.push_back(kv.first.second);
      return true;
    }
    return false;
  });
  for (const auto& [key, inst] : live_)
    if (!live.contains(key) && !down.contains(key) && !freeze.contains(key) && !held_.contains(key))
      held_.emplace(key, Held{inst, now + hold_});
  std::erase_if(held_, [&](const auto& kv) {
    return live.contains(kv.first) || down.contains(kv.first) || freeze.contains(kv.first) || kv.second.until <= now;
  });
  for (const auto& [key, h] : held_) {
    out.push_back(h.inst);
    out.back().held = true;
  }
  for (const auto& [key, h] : recovering_) {
    out.push_back(h.inst);
    out.back().recovering = true;
  }
  live_ = std::move(live);
  return out;
}

std::optional<VnfHoldDown::Clock::time_point> VnfHoldDown::next_expiry() const {
  std::optional<Clock::time_point> t;
  for (const auto* m : {&held_, &recovering_})
    for (const auto& [key, h] : *m)
      if (!t || h.until < *t) t = h.until;
  return t;
}

}  // namespace anychain::plane
