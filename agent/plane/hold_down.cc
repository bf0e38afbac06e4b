#include "plane/hold_down.h"

namespace anychain::plane {

std::vector<Instance> VnfHoldDown::apply(std::vector<Instance> current, Clock::time_point now) {
  std::map<Key, Instance> live;
  for (auto& i : current) {
    i.held = false;
    live.emplace(Key{i.router, i.info.instance_id}, i);
  }
  for (const auto& [key, inst] : live_)
    if (!live.contains(key) && !held_.contains(key)) held_.emplace(key, Held{inst, now + hold_});
  std::erase_if(held_, [&](const auto& kv) { return live.contains(kv.first) || kv.second.until <= now; });
  for (const auto& [key, h] : held_) {
    current.push_back(h.inst);
    current.back().held = true;
  }
  live_ = std::move(live);
  return current;
}

std::optional<VnfHoldDown::Clock::time_point> VnfHoldDown::next_expiry() const {
  std::optional<Clock::time_point> t;
  for (const auto& [key, h] : held_)
    if (!t || h.until < *t) t = h.until;
  return t;
}

}  // namespace anychain::plane
