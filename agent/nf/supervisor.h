// The NF instances of this node as anychaind runs them (docs/nf.md, "Lifecycle"): for each
// instance configured with `nf:`, a network namespace <prefix><name> and a veth (host side the
// instance's veth, eth0 inside), and anychain-nf started in that namespace as a child process.
// The supervisor watches each child through a pidfd (its exit is seen at once), the namespaces
// through inotify on /run/netns (a deleted namespace kills its instance), and the published
// files through inotify on the run directory (an instance is alive once it has published). It
// restarts dead instances by their restart policy with exponential backoff. Driven by the
// daemon's poll loop: fds(), on_event(), next_timer(), on_timer().
#pragma once

#include <poll.h>

#include <chrono>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "anychain/nf.h"
#include "common/error.h"
#include "common/unique_fd.h"
#include "nf/ftc_control.h"
#include "nf/params.h"

namespace anychain::nf {

enum class Restart { Always, Never };
std::string_view to_string(Restart r);

struct InstanceSpec {
  std::string name;
  std::string veth;                     // host side, in the daemon's namespace
  Params params;
  Restart restart = Restart::Always;
};

struct SupervisorOptions {
  std::string program;                  // the anychain-nf binary
  std::string run_dir = AC_NF_RUN_DIR;
  std::string netns_prefix = AC_NF_NETNS_PREFIX;
  std::chrono::milliseconds backoff_min{250};   // first restart after a death
  std::chrono::milliseconds backoff_max{30000}; // doubling per death in a row, up to this
  std::chrono::seconds stable_after{30};        // a run this long resets the backoff
  std::chrono::seconds start_timeout{10};       // to publish after the start, else killed
};

class Supervisor {
 public:
  using Clock = std::chrono::steady_clock;

  // Watches /run/netns and the run directory (both created if missing).
  static Result<std::unique_ptr<Supervisor>> create(SupervisorOptions o);
  ~Supervisor();  // stops every process (SIGTERM); namespaces and veths are kept

  // The desired instances: new ones are started, removed ones stopped and their veth and
  // namespace deleted, changed ones restarted.
  void configure(const std::vector<InstanceSpec>& specs);

  std::vector<pollfd> fds() const;
  void on_event(int fd, short revents);
  std::optional<Clock::time_point> next_timer() const;
  void on_timer(Clock::time_point now);

  // Running: its process published, its namespace exists, its veth is up.
  bool alive(const std::string& name) const;
  // Its process runs (published): its maps are there, whatever its veth (an FTC holder whose veth
  // is down still holds its replicas and answers recovery from them).
  bool running(const std::string& name) const;
  bool knows(const std::string& name) const { return inst_.count(name) > 0; }
  std::string netns_of(const std::string& name) const { return opts_.netns_prefix + name; }
  std::string published_file(const std::string& name) const;
  std::optional<int> pid_of(const std::string& name) const;
  nlohmann::json status() const;
  const SupervisorOptions& options() const { return opts_; }

  // The FTC control of an instance (docs/nf.md, "FTC control"): written atomically to
  // <run_dir>/ftc/<name>.json, where its anychain-nf reads it at every start; a running process
  // is told at once (SIGHUP). The file outlives restarts and is removed with the instance. This is
  // how the daemon's FTC side (peers from the LSDB, incarnations from recovery, successors)
  // reaches the NF.
  Result<void> set_ftc_control(const std::string& name, const FtcControl& c);
  std::string ftc_control_file(const std::string& name) const { return ftc_control_path(opts_.run_dir, name); }

  // Stop every process; with remove, delete their veths and namespaces too.
  void stop_all(bool remove);

  // Called when an instance becomes alive or stops being alive (the daemon announces or
  // withdraws it), and when its veth was (re)created (the daemon attaches the fast path).
  std::function<void(const std::string& name, bool alive)> on_change;
  std::function<void(const std::string& name, const std::string& veth)> on_veth;

 private:
  enum class State { Waiting, Starting, Running, Stopped };
  struct Inst {
    InstanceSpec spec;
    State state = State::Waiting;
    int pid = 0;
    UniqueFd pidfd;
    Clock::time_point next_start{};
    Clock::time_point started{};
    std::chrono::milliseconds backoff{0};
    uint64_t starts = 0, deaths = 0;
    int host_ifindex = 0;               // the host veth we created last
    std::string last_exit, last_error;
    bool reported_alive = false;
  };

  explicit Supervisor(SupervisorOptions o) : opts_(std::move(o)) {}
  void start(Inst& in, Clock::time_point now);
  Result<void> prepare(Inst& in);
  void reap(Inst& in, Clock::time_point now);
  void died(Inst& in, const std::string& why, Clock::time_point now);
  void stop(Inst& in, bool remove);
  void check(Inst& in);
  void report(Inst& in);
  void on_inotify();

  SupervisorOptions opts_;
  UniqueFd inotify_;
  int netns_wd_ = -1, run_wd_ = -1;
  std::map<std::string, Inst> inst_;
  Clock::time_point next_check_{};
};

}  // namespace anychain::nf
