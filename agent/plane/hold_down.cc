#include "plane/hold_down.h"

#include <set>

namespace anychain::plane {

std::vector<Instance> VnfHoldDown::apply(std::vector<Instance> current, Clock::time_point now) {
  std::map<Key, Instance> live;
  std::set<Key> down;  // withdrawn by their own node: gone now, never held
  std::vector<Instance> out;
  for (auto& i : current) {
    i.held = false;
    Key key{i.router, i.info.instance_id};
    if (i.info.down()) {
      down.insert(key);
      continue;
    }
    live.emplace(key, i);
    out.push_back(i);
  }
  for (const auto& [key, inst] : live_)
    if (!live.contains(key) && !down.contains(key) && !held_.contains(key)) held_.emplace(key, Held{inst, now + hold_});
  std::erase_if(held_, [&](const auto& kv) {
    return live.contains(kv.first) || down.contains(kv.first) || kv.second.until <= now;
  });
  for (const auto& [key, h] : held_) {
    out.push_back(h.inst);
    out.back().held = true;
  }
  live_ = std::move(live);
  return out;
}

std::optional<VnfHoldDown::Clock::time_point> VnfHoldDown::next_expiry() const {
  std::optional<Clock::time_point> t;
  for (const auto& [key, h] : held_)
    if (!t || h.until < *t) t = h.until;
  return t;
}

}  // namespace anychain::plane
