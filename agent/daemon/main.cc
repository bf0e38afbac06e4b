// anychaind: the anychain agent. See docs/agent.md.
#include <bpf/libbpf.h>
#include <signal.h>
#include <xdp/libxdp.h>

#include <cstdarg>
#include <cstdio>

#include <atomic>
#include <boost/program_options.hpp>
#include <iostream>
#include <optional>

#include "common/log.h"
#include "common/options.h"
#include "control/server.h"
#include "daemon/from_config.h"
#include "daemon/handler.h"

namespace po = boost::program_options;
using namespace anychain;

namespace {
// libbpf's and libxdp's own messages (benign notes such as skipped ELF sections, or libxdp's
// fallback when the kernel has no freplace) go to the log at debug level; failures reach the
// log anyway through the errors the dataplane library returns.
void log_library_line(const char* prefix, const char* fmt, va_list ap) {
  if (log::threshold() < log::Level::Debug) return;
  char buf[1024];
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  std::string line(buf);
  while (!line.empty() && line.back() == '\n') line.pop_back();
  log::debug("{}{}", prefix, line);
}
int libbpf_log(enum libbpf_print_level, const char* fmt, va_list ap) {
  log_library_line("libbpf: ", fmt, ap);
  return 0;
}
int libxdp_log(enum libxdp_print_level, const char* fmt, va_list ap) {
  log_library_line("", fmt, ap);  // libxdp's lines name it already
  return 0;
}

volatile sig_atomic_t g_stop = 0;
volatile sig_atomic_t g_reload = 0;
void on_stop(int) { g_stop = 1; }
void on_hup(int) { g_reload = 1; }
}  // namespace

int main(int argc, char** argv) {
  std::string config_path, socket_path, level;
  bool flush = false;
  po::options_description desc(
      "anychaind: distributed service function chaining agent.\n"
      "Mirrors ospfd's LSDB through its API (ospfd -a), computes per-service WCMP weights and\n"
      "programs the anychain XDP fast path; announces this node's VNF instances.\n\n"
      "Examples:\n"
      "  anychaind --config /etc/anychain/anychaind.yaml\n"
      "  anychaind --check-config /etc/anychain/anychaind.yaml\n"
      "  systemctl reload anychaind      # SIGHUP: re-read the config file\n\n"
      "Options");
  desc.add_options()("help,h", "this help")(
      "config,c", po::value(&config_path)->default_value("/etc/anychain/anychaind.yaml"), "configuration file")(
      "check-config", po::value<std::string>()->implicit_value("")->value_name("[FILE]"),
      "validate FILE (default: --config) and exit; every error is printed with its line")(
      "socket,s", po::value(&socket_path)->default_value(control::kDefaultSocket), "control socket (root only)")(
      "log-level", po::value(&level)->default_value("info"), "error, warn, info or debug")(
      "flush-on-exit", po::bool_switch(&flush),
      "on SIGTERM detach XDP and remove the pinned maps (default: the fast path keeps running)");
  po::variables_map vm;
  if (auto rc = parse_command_line(argc, argv, desc, vm, "anychaind")) return *rc;
  log::Level lvl;
  if (!log::parse_level(level, lvl)) {
    std::cerr << "anychaind: unknown log level '" << level << "'\n";
    return 2;
  }
  log::threshold() = lvl;
  libbpf_set_print(libbpf_log);
  libxdp_set_print(libxdp_log);

  if (vm.count("check-config")) {
    std::string path = vm["check-config"].as<std::string>();
    if (path.empty()) path = config_path;
    auto d = config::check_file(path);
    config::print(std::cerr, d);
    if (!d.empty()) return 1;
    // then the daemon's own start-up mapping, so that what passes here starts
    auto c = config::load_file(path);
    if (c) {
      if (auto s = daemon::spec_from_config(*c); !s) {
        std::cerr << path << ": error: " << s.error().message << "\n";
        return 1;
      }
    }
    std::cout << path << ": ok\n";
    return 0;
  }

  auto store = control::ConfigStore::load(config_path);
  if (!store) {
    std::cerr << store.error().message << "\n";
    return 1;
  }
  auto spec = daemon::spec_from_config(store->config());
  if (!spec) {
    log::error("{}: {}", config_path, spec.error().str());
    return 1;
  }
  spec->flush_on_exit = flush;
  auto agent = daemon::Agent::create(std::move(*spec));
  if (!agent) {
    log::error("{}", agent.error().str());
    return 1;
  }
  daemon::DaemonHandler handler(*store, **agent);
  control::Server::Options so;
  so.path = socket_path;
  auto server = control::Server::listen(handler, so);
  if (!server) {
    log::error("control socket {}: {}", socket_path, server.error().str());
    return 1;
  }
  (*agent)->add_source({[&] { return server->poll_fds(); }, [&](int fd, short ev) { server->on_event(fd, ev); }});

  struct sigaction sa{};
  sa.sa_handler = on_stop;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  sa.sa_handler = on_hup;
  sigaction(SIGHUP, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
  log::info("running (config {}, control socket {})", config_path, socket_path);
  return (*agent)->run([&] {
    if (g_reload) {
      g_reload = 0;
      if (auto r = handler.reload(); !r) log::error("reload: {}", r.error().str());
    }
    return g_stop != 0;
  });
}
