// Shared by the control and CLI tests: a Handler backed by ConfigStore, a daemon-like poll
// loop in a thread, and running the anychain binary as a subprocess.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "control/config_store.h"
#include "control/server.h"

namespace anychain::test {

namespace ctl = anychain::control;
namespace cfg = anychain::config;
using ctl::json;

// A Handler that delegates the config commands to a ConfigStore and records what it was asked.
class TestHandler : public ctl::Handler {
 public:
  explicit TestHandler(ctl::ConfigStore s) : store_(std::move(s)) {}
  std::vector<std::string> calls() {
    std::lock_guard l(mu_);
    return calls_;
  }

  anychain::Result<json> status() override {
    note("status");
    return json{{"node", {{"nsh_endpoint", store_.config().node.nsh_endpoint}}}, {"uptime_s", 5}};
  }
  anychain::Result<json> topology() override {
    note("topology");
    return json{{"routers", json::array({"10.0.0.1"})}};
  }
  anychain::Result<json> reload() override {
    note("reload");
    if (auto r = store_.reload(); !r) return std::unexpected(r.error());
    return json{{"config", store_.path()}};
  }
  anychain::Result<json> attach(const std::string& ifname, anychain::XdpMode mode,
                                std::optional<bool> /*classify*/) override {
    note("attach " + ifname + " " + std::string(anychain::to_string(mode)));
    if (ifname == "nosuch0") return anychain::fail("interface 'nosuch0' does not exist", ENODEV);
    return json{{"ifname", ifname}, {"mode", anychain::to_string(mode)}};
  }
  anychain::Result<json> detach(const std::string& ifname) override {
    note("detach " + ifname);
    return json{{"ifname", ifname}};
  }
  anychain::Result<json> service_add(const cfg::Service& s) override { return note("service_add"), store_.add_service(s); }
  anychain::Result<json> service_del(const std::string& n) override { return note("service_del"), store_.del_service(n); }
  anychain::Result<json> service_list() override { return note("service_list"), store_.list_services(); }
  anychain::Result<json> instance_add(const cfg::Instance& i) override { return note("instance_add"), store_.add_instance(i); }
  anychain::Result<json> instance_del(const std::string& n) override { return note("instance_del"), store_.del_instance(n); }
  anychain::Result<json> instance_list() override { return note("instance_list"), store_.list_instances(); }
  anychain::Result<json> chain_add(const cfg::Chain& c) override { return note("chain_add"), store_.add_chain(c); }
  anychain::Result<json> chain_del(const std::string& n) override { return note("chain_del"), store_.del_chain(n); }
  anychain::Result<json> chain_list() override { return note("chain_list"), store_.list_chains(); }
  anychain::Result<json> policy_add(const cfg::Policy& p, int index) override {
    return note("policy_add " + std::to_string(index)), store_.add_policy(p, index);
  }
  anychain::Result<json> policy_del(const std::string& n) override { return note("policy_del"), store_.del_policy(n); }
  anychain::Result<json> policy_list() override { return note("policy_list"), store_.list_policies(); }

 private:
  void note(std::string s) {
    std::lock_guard l(mu_);
    calls_.push_back(std::move(s));
  }
  ctl::ConfigStore store_;
  std::mutex mu_;
  std::vector<std::string> calls_;
};

// The daemon's loop, in a thread.
class Loop {
 public:
  Loop(ctl::Handler& h, ctl::Server::Options o) {
    auto s = ctl::Server::listen(h, std::move(o));
    if (!s) {
      error = s.error().str();
      return;
    }
    srv_.emplace(std::move(*s));
    th_ = std::thread([this] {
      while (!stop_) {
        auto fds = srv_->poll_fds();
        if (::poll(fds.data(), fds.size(), 20) <= 0) continue;
        for (const auto& p : fds)
          if (p.revents) srv_->on_event(p.fd, p.revents);
      }
    });
  }
  ~Loop() {
    stop_ = true;
    if (th_.joinable()) th_.join();
  }
  std::string error;

 private:
  std::optional<ctl::Server> srv_;
  std::atomic<bool> stop_{false};
  std::thread th_;
};


struct CliResult {
  int rc = -1;
  std::string out, err;
};

// Run the anychain binary with args; stdout and stderr captured separately.
// With uid set, the child drops to that uid (and gid) before exec.
inline CliResult run_cli(const std::string& bin, const std::vector<std::string>& args,
                         std::optional<uid_t> uid = std::nullopt) {
  std::vector<std::string> all{bin};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  char out_path[] = "/tmp/anychain-cli-out-XXXXXX";
  char err_path[] = "/tmp/anychain-cli-err-XXXXXX";
  int o = mkstemp(out_path), e = mkstemp(err_path);
  CliResult r;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(o, 1);
    dup2(e, 2);
    if (uid && (setgid(*uid) != 0 || setuid(*uid) != 0)) _exit(126);
    execv(argv[0], argv.data());
    _exit(127);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  r.rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  auto slurp = [](const char* path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  r.out = slurp(out_path);
  r.err = slurp(err_path);
  close(o);
  close(e);
  unlink(out_path);
  unlink(err_path);
  return r;
}

}  // namespace anychain::test
