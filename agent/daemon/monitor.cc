#include "daemon/monitor.h"

#include <arpa/inet.h>
#include <signal.h>

#include <cerrno>
#include <cmath>
#include <fstream>

#include "plane/vnf_cost.h"

namespace anychain::daemon {

VnfMonitor::VnfMonitor(const AgentSpec& spec) : spec_(spec) {
  for (const auto& i : spec.instances) loads_[i.id] = InstanceLoad{.id = i.id};
}

ospf::VnfInfo VnfMonitor::info(uint32_t id) const {
  ospf::VnfInfo v;
  for (const auto& i : spec_.instances) {
    if (i.id != id) continue;
    for (const auto& s : spec_.services)
      if (s.id == i.service_id) {
        v.service_addr = s.anycast_addr;
        v.service_len = s.anycast_len;
      }
    v.instance_id = i.id;
    v.capacity = i.capacity;
    v.nsh_endpoint = ntohl(spec_.nsh_endpoint.s_addr);
    v.flags = i.nsh_aware ? ospf::kVnfFlagNshAware : 0;
  }
  auto it = loads_.find(id);
  v.cost = it != loads_.end() ? it->second.announced : 0;
  return v;
}

std::vector<ospf::VnfInfo> VnfMonitor::tick(const std::map<uint32_t, uint64_t>& packets, Clock::time_point now) {
  std::vector<ospf::VnfInfo> out;
  double dt = last_tick_ ? std::chrono::duration<double>(now - *last_tick_).count() : 0;
  for (const auto& i : spec_.instances) {
    InstanceLoad& l = loads_[i.id];
    auto pk = packets.find(i.id);
    uint64_t cur = pk != packets.end() ? pk->second : 0;
    auto last = last_packets_.find(i.id);
    if (dt > 0 && last != last_packets_.end() && cur >= last->second)
      l.pps = static_cast<double>(cur - last->second) / dt;
    last_packets_[i.id] = cur;
    plane::CostParams p{.mode = spec_.cost_mode, .capacity = static_cast<double>(i.capacity),
                        .range_max = spec_.cost_range ? spec_.cost_range : i.capacity};
    l.fresh_cost = plane::vnf_cost(l.pps, p);
    auto min_change = static_cast<uint32_t>(std::lround(spec_.timers.cost_damping * p.range_max));
    uint32_t next = l.announced_once ? plane::damp_cost(l.announced, l.fresh_cost, std::max<uint32_t>(min_change, 1))
                                     : l.fresh_cost;
    if (!l.alive) continue;
    if (!l.announced_once || next != l.announced) {
      l.announced = next;
      l.announced_once = true;
      out.push_back(info(i.id));
    }
  }
  last_tick_ = now;
  return out;
}

bool VnfMonitor::set_alive(uint32_t id, bool alive) {
  auto it = loads_.find(id);
  if (it == loads_.end() || it->second.alive == alive) return false;
  it->second.alive = alive;
  if (alive) it->second.announced_once = false;  // announce again at the next tick
  return true;
}

bool VnfMonitor::alive(uint32_t id) const {
  auto it = loads_.find(id);
  return it != loads_.end() && it->second.alive;
}

bool process_alive(const std::string& pid_file) {
  if (pid_file.empty()) return true;
  std::ifstream f(pid_file);
  long pid = 0;
  if (!(f >> pid) || pid <= 0) return false;
  return kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

}  // namespace anychain::daemon
