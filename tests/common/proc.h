// Child processes for integration tests: started in a network namespace (by nsenter --net, so
// they share the test's mount namespace and its bpffs), stopped with SIGTERM on destruction.
#pragma once

#include <string>
#include <vector>

namespace anychain::test {

class Proc {
 public:
  Proc() = default;
  // Start argv in netns (a name under /run/netns, or "" for the current one); output to logfile.
  Proc(const std::string& netns, const std::vector<std::string>& argv, const std::string& logfile);
  Proc(const Proc&) = delete;
  Proc& operator=(const Proc&) = delete;
  Proc(Proc&& o) noexcept;
  Proc& operator=(Proc&& o) noexcept;
  ~Proc();

  int pid() const { return pid_; }
  bool running();
  // SIGTERM (then SIGKILL after timeout_ms) and reap; returns the exit status (or 128+signal).
  int stop(int timeout_ms = 3000);
  // Wait for exit up to timeout_ms; returns exit status, or -1 on timeout.
  int wait(int timeout_ms);

 private:
  int pid_ = -1;
  int status_ = -1;
};

std::string read_file(const std::string& path);

}  // namespace anychain::test
