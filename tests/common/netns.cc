#include "common/netns.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <stdexcept>
#include <utility>

namespace anychain::test {

namespace {

constexpr const char* kNetnsDir = "/run/netns";
constexpr const char* kPrefix = "act-";

// Delete the act-<pid>-* namespaces whose process is gone (or is this one: nothing of ours
// exists yet when this runs).
void reap_stale_namespaces() {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(kNetnsDir, ec)) {
    const std::string n = e.path().filename().string();
    if (n.rfind(kPrefix, 0) != 0) continue;
    char* end = nullptr;
    const long pid = std::strtol(n.c_str() + std::strlen(kPrefix), &end, 10);
    if (pid <= 0 || *end != '-') continue;
    const bool alive = pid != ::getpid() && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM);
    if (!alive) sh("ip netns del " + n + " 2>/dev/null");
  }
}

}  // namespace

int sh(const std::string& cmd) {
  const int rc = std::system(cmd.c_str());
  if (rc == -1) return -1;
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + WTERMSIG(rc);
}

std::string sh_out(const std::string& cmd) {
  std::string out;
  FILE* f = ::popen(cmd.c_str(), "r");
  if (!f) return out;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) out.append(buf.data(), n);
  ::pclose(f);
  return out;
}

void must(const std::string& cmd) {
  if (sh(cmd) != 0) throw std::runtime_error("command failed: " + cmd);
}

std::string enter_sandbox() {
  if (::unshare(CLONE_NEWNET | CLONE_NEWNS) != 0) return std::string("unshare: ") + std::strerror(errno);
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
    return std::string("make / private: ") + std::strerror(errno);
  // a fresh sysfs for this netns (interfaces under /sys/class/net) and a private bpffs
  ::umount2("/sys", MNT_DETACH);
  if (::mount("sysfs", "/sys", "sysfs", 0, nullptr) != 0) return std::string("mount sysfs: ") + std::strerror(errno);
  if (::mount("bpf", "/sys/fs/bpf", "bpf", 0, "mode=0700") != 0)
    return std::string("mount bpffs: ") + std::strerror(errno);
  if (sh("ip link set lo up") != 0) return "ip link set lo up failed";
  return {};
}

std::string netns_name(const std::string& role) {
  return kPrefix + std::to_string(::getpid()) + "-" + role;
}

Netns::Netns(const std::string& role) : name_(netns_name(role)) {
  static std::once_flag reaped;
  std::call_once(reaped, reap_stale_namespaces);
  must("ip netns add " + name_);
  try {
    ip("link set lo up");
  } catch (...) {
    sh("ip netns del " + name_ + " 2>/dev/null");
    throw;
  }
}

Netns::~Netns() {
  if (!name_.empty()) sh("ip netns del " + name_ + " 2>/dev/null");
}

Netns::Netns(Netns&& o) noexcept : name_(std::exchange(o.name_, {})) {}

Netns& Netns::operator=(Netns&& o) noexcept {
  if (this != &o) {
    if (!name_.empty()) sh("ip netns del " + name_ + " 2>/dev/null");
    name_ = std::exchange(o.name_, {});
  }
  return *this;
}

void Netns::exec(const std::string& cmd) const { must("ip netns exec " + name_ + " " + cmd); }

void Netns::ip(const std::string& args) const { must("ip -n " + name_ + " " + args); }

void Netns::disable_ipv6() const {
  exec("sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1");
}

void veth(const VethEnd& a, const VethEnd& b) {
  auto end = [](const VethEnd& e) {
    std::string s = e.ifname;
    if (!e.netns.empty()) s += " netns " + e.netns;
    if (!e.mac.empty()) s += " address " + e.mac;
    return s;
  };
  must("ip link add " + end(a) + " type veth peer name " + end(b));
  for (const auto& e : {a, b})
    must((e.netns.empty() ? std::string("ip") : "ip -n " + e.netns) + " link set " + e.ifname + " up");
}

VethPair::VethPair(const std::string& role, bool ipv6) : ns_a(role + "-a"), ns_b(role + "-b") {
  if (!ipv6) {
    ns_a.disable_ipv6();
    ns_b.disable_ipv6();
  }
  veth({ns_a.name(), if_a, mac_a}, {ns_b.name(), if_b, mac_b});
}

InNetns::InNetns(const std::string& name) {
  orig_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  const int fd = ::open((std::string(kNetnsDir) + "/" + name).c_str(), O_RDONLY | O_CLOEXEC);
  const bool ok = orig_ >= 0 && fd >= 0 && ::setns(fd, CLONE_NEWNET) == 0;
  const int err = errno;
  if (fd >= 0) ::close(fd);
  if (!ok) {
    if (orig_ >= 0) ::close(orig_);
    throw std::runtime_error("setns into " + name + ": " + std::strerror(err));
  }
}

InNetns::~InNetns() {
  // Staying in the wrong namespace would silently run the rest of the test there.
  if (::setns(orig_, CLONE_NEWNET) != 0) std::abort();
  ::close(orig_);
}

std::array<uint8_t, 6> if_mac(const std::string& netns, const std::string& ifname) {
  InNetns in(netns);
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ifreq ifr{};
  std::snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname.c_str());
  int rc = fd < 0 ? -1 : ::ioctl(fd, SIOCGIFHWADDR, &ifr);
  if (fd >= 0) ::close(fd);
  if (rc != 0) throw std::runtime_error("no MAC for " + ifname + " in " + netns);
  std::array<uint8_t, 6> m{};
  std::memcpy(m.data(), ifr.ifr_hwaddr.sa_data, m.size());
  return m;
}

}  // namespace anychain::test
