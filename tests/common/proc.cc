#include "proc.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>
#include <utility>

namespace anychain::test {

Proc::Proc(const std::string& netns, const std::vector<std::string>& argv, const std::string& logfile) {
  std::vector<std::string> full;
  if (!netns.empty()) full = {"nsenter", "--net=/run/netns/" + netns, "--"};
  full.insert(full.end(), argv.begin(), argv.end());
  pid_ = fork();
  if (pid_ == 0) {
    int fd = open(logfile.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    std::vector<char*> a;
    for (auto& s : full) a.push_back(s.data());
    a.push_back(nullptr);
    execvp(a[0], a.data());
    _exit(127);
  }
}

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
  int st;
  pid_t r = waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    pid_ = -1;
    return false;
  }
  return true;
}

int Proc::wait(int timeout_ms) {
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (running()) {
    if (std::chrono::steady_clock::now() > end) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return status_;
}

int Proc::stop(int timeout_ms) {
  if (!running()) return status_;
  kill(pid_, SIGTERM);
  if (wait(timeout_ms) == -1 && pid_ > 0) {
    kill(pid_, SIGKILL);
    wait(1000);
  }
  return status_;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace anychain::test
