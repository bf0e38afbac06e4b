// Child processes for tests, optionally inside a named network namespace. The child joins the
// namespace by setns() only (like `nsenter --net`): it shares the test's mount namespace, so it
// sees the test's bpffs and files. It is stopped with SIGTERM (then SIGKILL) on destruction, and
// killed by the kernel if the thread that started it dies first (PR_SET_PDEATHSIG), so a test
// that crashes leaves no process behind.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace anychain::test {

// Where a child's output goes: stdout to `out`; stderr to `err`, or to the test's own stderr
// when `err` is empty. out == err puts both into one file.
struct ProcOutput {
  std::string out = "/dev/null";
  std::string err;
};
// stdout into `path`, stderr to the test's stderr.
inline ProcOutput stdout_to(std::string path) {
  ProcOutput o;
  o.out = std::move(path);
  return o;
}

class Proc {
 public:
  Proc() = default;
  // Start argv (PATH is searched) in network namespace `netns` ("" = the current one).
  Proc(const std::string& netns, const std::vector<std::string>& argv, const ProcOutput& io = {});
  // Both stdout and stderr into `logfile`.
  Proc(const std::string& netns, const std::vector<std::string>& argv, const std::string& logfile);
  Proc(const Proc&) = delete;
  Proc& operator=(const Proc&) = delete;
  Proc(Proc&& o) noexcept;
  Proc& operator=(Proc&& o) noexcept;
  ~Proc();

  int pid() const { return pid_; }
  bool running();
  // Wait for the exit up to `timeout`: its status (128 + signal if killed), nullopt if it still runs.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  // SIGTERM, SIGKILL if it has not exited after `grace`; returns the exit status (128 + signal
  // if killed; 137 means it ignored SIGTERM).
  int stop(std::chrono::milliseconds grace = std::chrono::seconds(5));

 private:
  int pid_ = -1;
  int status_ = -1;
};

std::string read_file(const std::string& path);
// True once `path` exists (polled), false after `timeout`.
bool wait_for_file(const std::string& path, std::chrono::milliseconds timeout);

}  // namespace anychain::test
