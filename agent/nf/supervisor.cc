#include "nf/supervisor.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/syscall.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <thread>

#include "common/log.h"
#include "nf/netns.h"
#include "nf/published.h"

namespace anychain::nf {

using json = nlohmann::json;

std::string_view to_string(Restart r) { return r == Restart::Always ? "always" : "never"; }

namespace {

constexpr auto kCheckEvery = std::chrono::seconds(1);

std::string describe(int status) {
  if (WIFEXITED(status)) return fmt::format("exited with status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return fmt::format("killed by signal {} ({})", WTERMSIG(status), strsignal(WTERMSIG(status)));
  return fmt::format("ended (status {:#x})", status);
}

bool same_spec(const InstanceSpec& a, const InstanceSpec& b) {
  const Params &p = a.params, &q = b.params;
  return a.name == b.name && a.veth == b.veth && p.kind == q.kind && p.instance_id == q.instance_id &&
         p.idle_timeout_s == q.idle_timeout_s && p.nat_address.s_addr == q.nat_address.s_addr &&
         p.nat_port_lo == q.nat_port_lo && p.nat_port_hi == q.nat_port_hi && p.fw_default_drop == q.fw_default_drop &&
         p.fw_rules == q.fw_rules;
}

}  // namespace

Result<std::unique_ptr<Supervisor>> Supervisor::create(SupervisorOptions o) {
  std::unique_ptr<Supervisor> s(new Supervisor(std::move(o)));
  std::error_code ec;
  for (const std::string& d : {std::string(kNetnsDir), s->opts_.run_dir}) {
    std::filesystem::create_directories(d, ec);
    if (ec) return fail(fmt::format("create {}: {}", d, ec.message()), ec.value());
  }
  s->inotify_.reset(inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (!s->inotify_) return fail_errno("inotify");
  s->netns_wd_ = inotify_add_watch(s->inotify_.get(), kNetnsDir, IN_DELETE | IN_MOVED_FROM);
  if (s->netns_wd_ < 0) return fail_errno(fmt::format("watch {}", kNetnsDir));
  s->run_wd_ = inotify_add_watch(s->inotify_.get(), s->opts_.run_dir.c_str(), IN_MOVED_TO | IN_CLOSE_WRITE);
  if (s->run_wd_ < 0) return fail_errno(fmt::format("watch {}", s->opts_.run_dir));
  return s;
}

Supervisor::~Supervisor() { stop_all(false); }

std::string Supervisor::published_file(const std::string& name) const { return published_path(opts_.run_dir, name); }

std::optional<int> Supervisor::pid_of(const std::string& name) const {
  auto it = inst_.find(name);
  if (it == inst_.end() || it->second.pid <= 0) return std::nullopt;
  return it->second.pid;
}

void Supervisor::configure(const std::vector<InstanceSpec>& specs) {
  for (auto it = inst_.begin(); it != inst_.end();) {
    auto want = std::find_if(specs.begin(), specs.end(), [&](const InstanceSpec& s) { return s.name == it->first; });
    if (want != specs.end() && same_spec(*want, it->second.spec)) {
      it->second.spec.restart = want->restart;  // a policy change applies from the next death
      if (it->second.state == State::Stopped && want->restart == Restart::Always) {
        it->second.state = State::Waiting;
        it->second.next_start = Clock::now();
      }
      ++it;
      continue;
    }
    log::info("nf {}: {}", it->first, want == specs.end() ? "removed" : "changed: restarting it");
    stop(it->second, true);
    if (want == specs.end()) ::unlink(ftc_control_file(it->first).c_str());
    it = inst_.erase(it);
  }
  for (const auto& s : specs) {
    if (inst_.count(s.name)) continue;
    Inst in;
    in.spec = s;
    in.next_start = Clock::now();
    inst_.emplace(s.name, std::move(in));
  }
  on_timer(Clock::now());
}

Result<void> Supervisor::prepare(Inst& in) {
  const std::string ns = netns_of(in.spec.name);
  if (auto r = create_netns(ns); !r) return r;
  VethSpec v{in.spec.veth, ns, AC_NF_IFNAME, nf_mac(in.spec.params.instance_id), AC_NF_VETH_MTU};
  auto r = ensure_veth(v);
  if (!r && r.error().code == EEXIST && in.host_ifindex &&
      if_nametoindex(in.spec.veth.c_str()) == static_cast<unsigned>(in.host_ifindex)) {
    // the veth we made for the previous namespace, not gone yet (a namespace is torn down
    // asynchronously): replace it
    (void)delete_link(in.spec.veth);
    r = ensure_veth(v);
  }
  if (!r) return r;
  in.host_ifindex = static_cast<int>(if_nametoindex(in.spec.veth.c_str()));
  return {};
}

void Supervisor::start(Inst& in, Clock::time_point now) {
  const std::string& name = in.spec.name;
  if (auto r = prepare(in); !r) {
    in.last_error = r.error().str();
    in.backoff = std::clamp(in.backoff * 2, opts_.backoff_min, opts_.backoff_max);
    in.next_start = now + in.backoff;
    log::warn("nf {}: {} (retrying in {} ms)", name, in.last_error, in.backoff.count());
    return;
  }
  if (on_veth) on_veth(name, in.spec.veth);
  ::unlink(published_file(name).c_str());
  auto ns = open_netns(netns_of(name));
  if (!ns) {
    in.last_error = ns.error().str();
    in.next_start = now + opts_.backoff_min;
    return;
  }
  std::vector<std::string> args{opts_.program, "--name", name, "--iface", AC_NF_IFNAME, "--run-dir", opts_.run_dir};
  for (auto& a : to_args(in.spec.params)) args.push_back(std::move(a));
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    in.last_error = fmt::format("fork: {}", std::strerror(errno));
    in.next_start = now + opts_.backoff_max;
    return;
  }
  if (pid == 0) {
    // the child: dies with the daemon, runs in the instance's namespace and its own session
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(1);
    if (setns(ns->get(), CLONE_NEWNET) != 0) _exit(126);
    setsid();
    int null = ::open("/dev/null", O_RDONLY);
    if (null >= 0) dup2(null, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  in.pid = pid;
  in.pidfd.reset(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
  in.state = State::Starting;
  in.started = now;
  ++in.starts;
  in.last_error.clear();
  log::info("nf {}: started {} (pid {}) in namespace {}", name, to_string(in.spec.params.kind), pid, netns_of(name));
}

void Supervisor::report(Inst& in) {
  bool now_alive = in.state == State::Running && alive(in.spec.name);
  if (now_alive == in.reported_alive) return;
  in.reported_alive = now_alive;
  if (on_change) on_change(in.spec.name, now_alive);
}

void Supervisor::died(Inst& in, const std::string& why, Clock::time_point now) {
  in.pidfd.reset();
  in.pid = 0;
  in.last_exit = why;
  ++in.deaths;
  const bool stable = now - in.started >= opts_.stable_after;
  in.state = in.spec.restart == Restart::Always ? State::Waiting : State::Stopped;
  in.backoff = stable || in.backoff.count() == 0 ? opts_.backoff_min : std::min(in.backoff * 2, opts_.backoff_max);
  in.next_start = now + in.backoff;
  if (in.spec.restart == Restart::Always)
    log::warn("nf {}: {}; restarting in {} ms (restart: always)", in.spec.name, why, in.backoff.count());
  else
    log::warn("nf {}: {}; not restarted (restart: never)", in.spec.name, why);
  report(in);
}

void Supervisor::reap(Inst& in, Clock::time_point now) {
  if (in.pid <= 0) return;
  int status = 0;
  pid_t r = waitpid(in.pid, &status, WNOHANG);
  if (r == in.pid) {
    // a clean exit leaves no file; a killed process leaves its file behind
    if (auto p = read_published(published_file(in.spec.name)); p && p->pid == in.pid)
      ::unlink(published_file(in.spec.name).c_str());
    died(in, describe(status), now);
  }
}

void Supervisor::stop(Inst& in, bool remove) {
  const bool was = in.reported_alive;
  if (in.pid > 0) {
    kill(in.pid, SIGTERM);
    pollfd p{in.pidfd.get(), POLLIN, 0};
    if (!in.pidfd || poll(&p, 1, 2000) <= 0) kill(in.pid, SIGKILL);
    waitpid(in.pid, nullptr, 0);
    in.pid = 0;
    in.pidfd.reset();
  }
  ::unlink(published_file(in.spec.name).c_str());
  in.state = State::Stopped;
  if (remove) {
    if (auto r = delete_link(in.spec.veth); !r) log::warn("nf {}: {}", in.spec.name, r.error().str());
    if (auto r = delete_netns(netns_of(in.spec.name)); !r) log::warn("nf {}: {}", in.spec.name, r.error().str());
  }
  in.reported_alive = false;
  if (was && on_change) on_change(in.spec.name, false);
}

Result<void> Supervisor::set_ftc_control(const std::string& name, const FtcControl& c) {
  auto it = inst_.find(name);
  if (it == inst_.end()) return fail(fmt::format("nf {}: no such instance", name), ENOENT);
  if (auto r = write_ftc_control(ftc_control_file(name), c); !r) return r;
  // a starting process blocks SIGHUP only once it runs; it reads the file itself (and re-checks it every second)
  if (it->second.state == State::Running && it->second.pid > 0) kill(it->second.pid, SIGHUP);
  return {};
}

void Supervisor::stop_all(bool remove) {
  for (auto& [_, in] : inst_) stop(in, remove);
}

void Supervisor::check(Inst& in) {
  if (in.state == State::Starting) {
    auto p = read_published(published_file(in.spec.name));
    if (p && p->pid == in.pid) {
      in.state = State::Running;
      log::info("nf {}: running (program {}, incarnation {})", in.spec.name, p->prog_id, p->incarnation);
    }
  }
  if ((in.state == State::Starting || in.state == State::Running) && in.pid > 0 && !netns_exists(netns_of(in.spec.name))) {
    // the instance's namespace was deleted: the instance is gone, its process with it
    log::warn("nf {}: namespace {} was deleted: killing its process {}", in.spec.name, netns_of(in.spec.name), in.pid);
    kill(in.pid, SIGKILL);
  }
  report(in);
}

void Supervisor::on_inotify() {
  alignas(inotify_event) char buf[4096];
  while (true) {
    ssize_t n = read(inotify_.get(), buf, sizeof buf);
    if (n <= 0) break;
  }
  for (auto& [_, in] : inst_) check(in);
}

std::vector<pollfd> Supervisor::fds() const {
  std::vector<pollfd> out{{inotify_.get(), POLLIN, 0}};
  for (const auto& [_, in] : inst_)
    if (in.pidfd) out.push_back({in.pidfd.get(), POLLIN, 0});
  return out;
}

void Supervisor::on_event(int fd, short revents) {
  if (!(revents & (POLLIN | POLLHUP | POLLERR))) return;
  const auto now = Clock::now();
  if (fd == inotify_.get()) {
    on_inotify();
    return;
  }
  for (auto& [_, in] : inst_)
    if (in.pidfd && in.pidfd.get() == fd) reap(in, now);
}

std::optional<Supervisor::Clock::time_point> Supervisor::next_timer() const {
  std::optional<Clock::time_point> t;
  auto at = [&](Clock::time_point x) { t = t ? std::min(*t, x) : x; };
  for (const auto& [_, in] : inst_) {
    if (in.state == State::Waiting) at(in.next_start);
    if (in.state == State::Starting) at(in.started + std::chrono::milliseconds(50));
  }
  if (!inst_.empty()) at(next_check_);
  return t;
}

void Supervisor::on_timer(Clock::time_point now) {
  const bool periodic = now >= next_check_;
  if (periodic) next_check_ = now + kCheckEvery;
  for (auto& [_, in] : inst_) {
    if (in.state == State::Waiting && now >= in.next_start) start(in, now);
    if (in.state == State::Starting && now - in.started > opts_.start_timeout && in.pid > 0) {
      log::warn("nf {}: did not publish within {} s: killed", in.spec.name, opts_.start_timeout.count());
      kill(in.pid, SIGKILL);
    }
    if (in.state == State::Starting || periodic) check(in);
    if (in.pidfd) reap(in, now);
  }
}

bool Supervisor::running(const std::string& name) const {
  auto it = inst_.find(name);
  return it != inst_.end() && it->second.state == State::Running;
}

bool Supervisor::alive(const std::string& name) const {
  return running(name) && netns_exists(netns_of(name)) && link_up(inst_.at(name).spec.veth);
}

json Supervisor::status() const {
  json out = json::array();
  static constexpr const char* names[] = {"waiting", "starting", "running", "stopped"};
  for (const auto& [name, in] : inst_) {
    json j{{"name", name},
           {"kind", std::string(to_string(in.spec.params.kind))},
           {"instance_id", in.spec.params.instance_id},
           {"state", names[static_cast<int>(in.state)]},
           {"alive", alive(name)},
           {"pid", in.pid},
           {"netns", netns_of(name)},
           {"veth", in.spec.veth},
           {"restart", std::string(to_string(in.spec.restart))},
           {"starts", in.starts},
           {"deaths", in.deaths},
           {"file", published_file(name)}};
    if (!in.last_exit.empty()) j["last_exit"] = in.last_exit;
    if (!in.last_error.empty()) j["last_error"] = in.last_error;
    out.push_back(j);
  }
  return out;
}

}  // namespace anychain::nf
