#include "daemon/monitor.h"

#include <arpa/inet.h>
#include <signal.h>

#include <cerrno>
#include <cmath>
#include <fstream>
#include <sstream>
#include <unistd.h>

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
    l.load = l.pps;
    if (auto cpu = cpu_seconds(i.cgroup, i.pid_file)) {
      auto lc = last_cpu_.find(i.id);
      if (dt > 0 && lc != last_cpu_.end() && *cpu >= lc->second) {
        l.cpu = (*cpu - lc->second) / dt;
        l.load = std::max(l.load, l.cpu * i.capacity);  // a busy VNF is loaded whatever its packet rate
      }
      last_cpu_[i.id] = *cpu;
    }
    plane::CostParams p{.mode = spec_.cost_mode, .capacity = static_cast<double>(i.capacity),
                        .range_max = spec_.cost_range ? spec_.cost_range : i.capacity};
    l.fresh_cost = plane::vnf_cost(l.load, p);
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

std::optional<double> cpu_seconds(const std::string& cgroup, const std::string& pid_file) {
  if (!cgroup.empty()) {
    std::ifstream f(cgroup + "/cpu.stat");
    std::string key;
    uint64_t v = 0;
    while (f >> key >> v)
      if (key == "usage_usec") return static_cast<double>(v) / 1e6;
    return std::nullopt;
  }
  if (pid_file.empty()) return std::nullopt;
  std::ifstream pf(pid_file);
  long pid = 0;
  if (!(pf >> pid) || pid <= 0) return std::nullopt;
  std::ifstream st("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(st, line)) return std::nullopt;
  // fields after the command (which may hold spaces) start after the last ')'
  auto rp = line.rfind(')');
  if (rp == std::string::npos) return std::nullopt;
  std::istringstream rest(line.substr(rp + 2));
  std::string field;
  uint64_t utime = 0, stime = 0;
  for (int n = 3; n <= 15 && rest >> field; ++n) {  // field 3 is the state; 14 utime, 15 stime
    if (n == 14) utime = std::stoull(field);
    if (n == 15) stime = std::stoull(field);
  }
  static const long hz = sysconf(_SC_CLK_TCK);
  return static_cast<double>(utime + stime) / static_cast<double>(hz > 0 ? hz : 100);
}

bool process_alive(const std::string& pid_file) {
  if (pid_file.empty()) return true;
  std::ifstream f(pid_file);
  long pid = 0;
  if (!(f >> pid) || pid <= 0) return false;
  return kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

}  // namespace anychain::daemon
