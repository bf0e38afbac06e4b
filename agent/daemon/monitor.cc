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
    v.flags = (i.nsh_aware ? ospf::kVnfFlagNshAware : 0) | (i.ftc ? ospf::kVnfFlagFtc : 0);
  }
  auto it = loads_.find(id);
  v.cost = it != loads_.end() ? it->second.announced : 0;
  if (v.ftc() && it != loads_.end()) v.incarnation = it->second.incarnation;
  return v;
}

ospf::VnfInfo VnfMonitor::down_info(uint32_t id) const {
  ospf::VnfInfo v = info(id);
  v.flags |= ospf::kVnfFlagDown;
  v.cost = 0;
  return v;
}

std::vector<ospf::VnfInfo> VnfMonitor::tick(const std::map<uint32_t, uint64_t>& packets, Clock::time_point now,
                                            bool announce) {
  std::vector<ospf::VnfInfo> out;
  auto seconds = [&](const Mark& m) { return m.at ? std::chrono::duration<double>(now - *m.at).count() : 0.0; };
  const double dt = seconds(tick_), da = seconds(announce_);
  Mark now_mark{.packets = {}, .cpu = {}, .at = now};
  for (const auto& i : spec_.instances) {
    auto pk = packets.find(i.id);
    now_mark.packets[i.id] = pk != packets.end() ? pk->second : 0;
    if (auto c = cpu_seconds(i.cgroup, i.pid_file)) now_mark.cpu[i.id] = *c;
  }
  for (const auto& i : spec_.instances) {
    InstanceLoad& l = loads_[i.id];
    const uint64_t cur = now_mark.packets[i.id];
    auto ci = now_mark.cpu.find(i.id);
    const std::optional<double> cpu = ci != now_mark.cpu.end() ? std::optional(ci->second) : std::nullopt;
    // rate and CPU share since mark m (nothing when there is no earlier sample or a counter went back)
    auto pps_since = [&](const Mark& m, double span) -> std::optional<double> {
      auto last = m.packets.find(i.id);
      if (span <= 0 || last == m.packets.end() || cur < last->second) return std::nullopt;
      return static_cast<double>(cur - last->second) / span;
    };
    auto cpu_since = [&](const Mark& m, double span) -> std::optional<double> {
      auto last = m.cpu.find(i.id);
      if (!cpu || span <= 0 || last == m.cpu.end() || *cpu < last->second) return std::nullopt;
      return (*cpu - last->second) / span;
    };
    if (auto r = pps_since(tick_, dt)) l.pps = *r;
    if (auto c = cpu_since(tick_, dt)) l.cpu = *c;
    plane::CostParams p{.mode = spec_.cost_mode, .capacity = static_cast<double>(i.capacity),
                        .range_max = spec_.cost_range ? spec_.cost_range : i.capacity};
    if (announce) {
      double load = pps_since(announce_, da).value_or(0.0);
      if (auto c = cpu_since(announce_, da)) load = std::max(load, *c * i.capacity);  // a busy VNF is loaded whatever its packet rate
      l.load = load;
      l.fresh_cost = plane::vnf_cost(l.load, p);
    }
    if (!l.alive || l.joining) continue;
    if (!l.announced_once) {
      // first announcement, or back from dead: nothing measured yet is this instance's load
      l.announced = announce ? l.fresh_cost : plane::vnf_cost(0, p);
      l.announced_once = true;
      out.push_back(info(i.id));
    } else if (announce) {
      auto min_change = static_cast<uint32_t>(std::lround(spec_.timers.cost_damping * p.range_max));
      uint32_t next = plane::damp_cost(l.announced, l.fresh_cost, std::max<uint32_t>(min_change, 1));
      if (next != l.announced) {
        l.announced = next;
        out.push_back(info(i.id));
      }
    }
  }
  tick_ = now_mark;
  if (announce) announce_ = std::move(now_mark);
  return out;
}

bool VnfMonitor::set_alive(uint32_t id, bool alive) {
  auto it = loads_.find(id);
  if (it == loads_.end() || it->second.alive == alive) return false;
  it->second.alive = alive;
  if (alive) it->second.announced_once = false;  // announce again at the next tick
  return true;
}

bool VnfMonitor::set_joining(uint32_t id, bool joining) {
  auto it = loads_.find(id);
  if (it == loads_.end() || it->second.joining == joining) return false;
  it->second.joining = joining;
  if (!joining) it->second.announced_once = false;  // announce at the next tick
  return true;
}

bool VnfMonitor::set_incarnation(uint32_t id, uint8_t incarnation) {
  auto it = loads_.find(id);
  if (it == loads_.end() || it->second.incarnation == incarnation) return false;
  it->second.incarnation = incarnation;
  it->second.announced_once = false;  // announce at the next tick
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

long read_pid_file(const std::string& pid_file) {
  if (pid_file.empty()) return 0;
  std::ifstream f(pid_file);
  long pid = 0;
  if (!(f >> pid) || pid <= 0) return 0;
  return pid;
}

bool process_alive(const std::string& pid_file) {
  if (pid_file.empty()) return true;
  long pid = read_pid_file(pid_file);
  if (pid <= 0) return false;
  return kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

std::optional<bool> cgroup_populated(const std::string& cgroup) {
  if (cgroup.empty()) return std::nullopt;
  std::ifstream f(cgroup + "/cgroup.events");
  std::string key;
  int v = 0;
  while (f >> key >> v)
    if (key == "populated") return v != 0;
  return std::nullopt;
}

}  // namespace anychain::daemon
