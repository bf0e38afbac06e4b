// Test harness pieces for the netns integration tests: a pair of network namespaces joined by
// a veth pair (removed again in the destructor), sockets opened inside a namespace, and child
// processes run inside a namespace.
#pragma once

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace anychain::testing {

inline int sh(const std::string& cmd) {
  const int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

inline void must(const std::string& cmd) {
  if (sh(cmd) != 0) throw std::runtime_error("command failed: " + cmd);
}

// Two namespaces A and B, veth A <-> B, with fixed MACs. IPv6 off unless asked for (keeps
// router solicitations and MLD reports off the wire).
class VethPair {
 public:
  VethPair(const std::string& tag, bool ipv6) {
    const std::string id = tag + std::to_string(::getpid() % 100000);
    ns_a = "acns-a-" + id;
    ns_b = "acns-b-" + id;
    if_a = "aca" + id;
    if_b = "acb" + id;
    sh("ip netns del " + ns_a + " 2>/dev/null");
    sh("ip netns del " + ns_b + " 2>/dev/null");
    must("ip netns add " + ns_a);
    must("ip netns add " + ns_b);
    for (const auto& ns : {ns_a, ns_b}) {
      const std::string v = ipv6 ? "0" : "1";
      must("ip netns exec " + ns + " sysctl -qw net.ipv6.conf.all.disable_ipv6=" + v +
           " net.ipv6.conf.default.disable_ipv6=" + v);
    }
    must("ip link add " + if_a + " netns " + ns_a + " address " + mac_a + " type veth peer name " +
         if_b + " netns " + ns_b + " address " + mac_b);
    must("ip -n " + ns_a + " link set " + if_a + " up");
    must("ip -n " + ns_b + " link set " + if_b + " up");
    must("ip -n " + ns_a + " link set lo up");
    must("ip -n " + ns_b + " link set lo up");
  }
  ~VethPair() {
    sh("ip netns del " + ns_a + " 2>/dev/null");
    sh("ip netns del " + ns_b + " 2>/dev/null");
  }
  VethPair(const VethPair&) = delete;
  VethPair& operator=(const VethPair&) = delete;

  std::string ns_a, ns_b, if_a, if_b;
  std::string mac_a = "02:ac:00:00:00:0a";
  std::string mac_b = "02:ac:00:00:00:0b";
};

// Runs `fn` with the calling thread inside network namespace `ns`, then switches back. Sockets
// created inside stay in that namespace.
template <typename Fn>
auto in_netns(const std::string& ns, Fn fn) {
  const int self = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  const int target = ::open(("/var/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
  if (self < 0 || target < 0 || ::setns(target, CLONE_NEWNET) != 0) {
    if (self >= 0) ::close(self);
    if (target >= 0) ::close(target);
    throw std::runtime_error("setns into " + ns + " failed");
  }
  ::close(target);
  struct Back {
    int fd;
    ~Back() {
      ::setns(fd, CLONE_NEWNET);
      ::close(fd);
    }
  } back{self};
  return fn();
}

// A child process started with `ip netns exec NS argv...` (ip execs the program, so the pid is
// the program's).
class Child {
 public:
  Child(const std::string& ns, const std::vector<std::string>& argv,
        const std::string& stdout_file = "/dev/null") {
    std::vector<std::string> args{"/usr/sbin/ip", "netns", "exec", ns};
    if (::access(args[0].c_str(), X_OK) != 0) args[0] = "/sbin/ip";
    args.insert(args.end(), argv.begin(), argv.end());
    std::vector<char*> cargv;
    for (auto& a : args) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, stdout_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
    if (posix_spawn(&pid_, cargv[0], &fa, nullptr, cargv.data(), environ) != 0) {
      posix_spawn_file_actions_destroy(&fa);
      throw std::runtime_error("spawn " + argv.front() + " failed");
    }
    posix_spawn_file_actions_destroy(&fa);
  }
  ~Child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  // Waits for exit up to `timeout`; returns the exit status or nullopt (still running).
  std::optional<int> wait_exit(std::chrono::milliseconds timeout) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (pid_ > 0) {
      int st = 0;
      const pid_t r = ::waitpid(pid_, &st, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      }
      if (std::chrono::steady_clock::now() >= until) return std::nullopt;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return std::nullopt;
  }
  // SIGTERM and wait; returns the exit status (nullopt if it had to be killed).
  std::optional<int> terminate(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    if (pid_ <= 0) return std::nullopt;
    ::kill(pid_, SIGTERM);
    return wait_exit(timeout);
  }

 private:
  pid_t pid_ = -1;
};

inline std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline bool wait_for_file(const std::string& path, std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    if (::access(path.c_str(), R_OK) == 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

}  // namespace anychain::testing
