#include "sandbox.h"

#include <sched.h>
#include <sys/mount.h>
#include <sys/wait.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace anychain::test {

int sh(const std::string& cmd) {
  int rc = std::system(cmd.c_str());
  if (rc == -1) return -1;
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + WTERMSIG(rc);
}

std::string sh_out(const std::string& cmd) {
  std::string out;
  FILE* f = popen(cmd.c_str(), "r");
  if (!f) return out;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), f)) > 0) out.append(buf.data(), n);
  pclose(f);
  return out;
}

std::string enter_sandbox() {
  if (unshare(CLONE_NEWNET | CLONE_NEWNS) != 0) return std::string("unshare: ") + std::strerror(errno);
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
    return std::string("make / private: ") + std::strerror(errno);
  // a fresh sysfs for this netns (interfaces under /sys/class/net) and a private bpffs
  umount2("/sys", MNT_DETACH);
  if (mount("sysfs", "/sys", "sysfs", 0, nullptr) != 0) return std::string("mount sysfs: ") + std::strerror(errno);
  if (mount("bpf", "/sys/fs/bpf", "bpf", 0, "mode=0700") != 0)
    return std::string("mount bpffs: ") + std::strerror(errno);
  if (sh("ip link set lo up") != 0) return "ip link set lo up failed";
  return {};
}

}  // namespace anychain::test
