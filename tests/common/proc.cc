#include "common/proc.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>

namespace anychain::test {

namespace {

int status_of(int st) { return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st); }

// In the child, between fork and exec: only async-signal-safe calls.
[[noreturn]] void exec_child(int netns_fd, int out_fd, int err_fd, pid_t parent, char* const* argv) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) _exit(127);  // the parent died before prctl
  if (netns_fd >= 0 && ::setns(netns_fd, CLONE_NEWNET) != 0) _exit(126);
  if (out_fd >= 0) ::dup2(out_fd, 1);
  if (err_fd >= 0) ::dup2(err_fd, 2);
  ::execvp(argv[0], argv);
  _exit(127);
}

}  // namespace

Proc::Proc(const std::string& netns, const std::vector<std::string>& argv, const ProcOutput& io) {
  if (argv.empty()) throw std::invalid_argument("Proc: empty argv");
  // Everything the child needs is prepared here: after fork it may only make system calls.
  int ns_fd = -1;
  if (!netns.empty()) {
    ns_fd = ::open(("/run/netns/" + netns).c_str(), O_RDONLY | O_CLOEXEC);
    if (ns_fd < 0) throw std::runtime_error("open netns " + netns + ": " + std::strerror(errno));
  }
  const int out_fd = ::open(io.out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int err_fd = -1;
  if (io.err == io.out) {
    err_fd = out_fd;
  } else if (!io.err.empty()) {
    err_fd = ::open(io.err.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  }
  std::vector<std::string> args = argv;
  std::vector<char*> cargv;
  for (auto& a : args) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  const pid_t parent = ::getpid();
  pid_ = ::fork();
  if (pid_ == 0) exec_child(ns_fd, out_fd, err_fd, parent, cargv.data());
  const int fork_errno = errno;
  for (int fd : {ns_fd, out_fd, err_fd == out_fd ? -1 : err_fd})
    if (fd >= 0) ::close(fd);
  if (pid_ < 0) throw std::runtime_error("fork: " + std::string(std::strerror(fork_errno)));
}

Proc::Proc(const std::string& netns, const std::vector<std::string>& argv, const std::string& logfile)
    : Proc(netns, argv, ProcOutput{logfile, logfile}) {}

Proc::Proc(Proc&& o) noexcept : pid_(std::exchange(o.pid_, -1)), status_(o.status_) {}

Proc& Proc::operator=(Proc&& o) noexcept {
  if (this != &o) {
    stop();
    pid_ = std::exchange(o.pid_, -1);
    status_ = o.status_;
  }
  return *this;
}

Proc::~Proc() { stop(); }

bool Proc::running() {
  if (pid_ <= 0) return false;
  int st = 0;
  if (::waitpid(pid_, &st, WNOHANG) == pid_) {
    status_ = status_of(st);
    pid_ = -1;
    return false;
  }
  return true;
}

std::optional<int> Proc::wait(std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (running()) {
    if (std::chrono::steady_clock::now() >= end) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return status_;
}

int Proc::stop(std::chrono::milliseconds grace) {
  if (!running()) return status_;
  ::kill(pid_, SIGTERM);
  if (!wait(grace)) {
    ::kill(pid_, SIGKILL);
    int st = 0;
    if (::waitpid(pid_, &st, 0) == pid_) status_ = status_of(st);
    pid_ = -1;
  }
  return status_;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

bool wait_for_file(const std::string& path, std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (::access(path.c_str(), F_OK) != 0) {
    if (std::chrono::steady_clock::now() >= end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

}  // namespace anychain::test
