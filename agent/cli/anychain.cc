// anychain: the command line tool (docs/cli.md).
//
//   anychain [GLOBAL OPTIONS] COMMAND [ARGS] [OPTIONS]
//
// Configuration commands talk to anychaind over its control socket (changes persist in its
// config file); flows and stats read the fast path's pinned maps directly, so they work while
// the daemon is down; attach/detach go through the daemon when it runs, else straight to
// the dataplane library. Exit codes: 0 ok, 1 runtime error, 2 usage error, 3 daemon not running.
#include <bpf/libbpf.h>
#include <net/if.h>
#include <xdp/libxdp.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <iomanip>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "common/format.h"
#include "config/config.h"
#include "control/client.h"
#include "control/protocol.h"
#include "dataplane/dataplane.h"
#include "dataplane/pinned.h"

namespace po = boost::program_options;
namespace ctl = anychain::control;
namespace cfg = anychain::config;
namespace dp = anychain::dataplane;
using anychain::format;
using ctl::json;

namespace {

enum Exit { kOk = 0, kRuntime = 1, kUsage = 2, kNoDaemon = 3 };

struct Global {
  bool json = false;
  std::string socket = ctl::kDefaultSocket;
  std::string pin_root = AC_PIN_ROOT;
  int timeout_s = 10;
};

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// ---- commands: help texts ----

struct Command {
  std::string name;      // "attach", "service add", ...
  std::string synopsis;  // after "anychain NAME"
  std::string summary;
  std::string examples;
};

const std::vector<Command>& commands() {
  static const std::vector<Command> c = {
      {"status", "", "Show the daemon's state (node, interfaces, OSPF, counts).", "  anychain status\n  anychain status --json\n"},
      {"topology", "", "Show the service plane: routers, VNF instances, costs and WCMP weights.",
       "  anychain topology --json\n"},
      {"reload", "", "Make anychaind re-read its config file (like systemctl reload anychaind).", "  anychain reload\n"},
      {"attach", "IFACE [--mode native|generic|auto] [--classify]",
       "Attach the XDP fast path to an interface (via anychaind when it runs, else directly).\n"
       "Through anychaind the interface is recorded and re-attached at restart; without it the\n"
       "fast path is loaded under --pin-root (maps already pinned there are reused).",
       "  anychain attach eth0\n  anychain attach eth1 --mode generic --classify\n"},
      {"detach", "IFACE", "Detach the XDP fast path from an interface.", "  anychain detach eth1\n"},
      {"flush", "",
       "Remove the fast path's pinned maps (--pin-root). Refused while anychaind runs or while\n"
       "anychain is still attached to an interface of this network namespace.",
       "  anychain detach eth0 && anychain flush\n"},
      {"service add", "NAME --id N --anycast PREFIX", "Add a service (id 1..1023, IPv4 anycast prefix).",
       "  anychain service add fw --id 1 --anycast 10.100.0.1/32\n"},
      {"service del", "NAME", "Delete a service (refused while a chain or an instance uses it).",
       "  anychain service del fw\n"},
      {"service list", "", "List the services.", "  anychain service list --json\n"},
      {"chain add", "NAME --spi N --services S1,S2,...",
       "Add a chain: SI 255 is the first service, 254 the second, ...; after the last, NSH is popped.",
       "  anychain chain add web --spi 10 --services fw,ids\n"},
      {"chain del", "NAME", "Delete a chain (refused while a policy uses it).", "  anychain chain del web\n"},
      {"chain list", "", "List the chains with their service index map.", "  anychain chain list\n"},
      {"policy add",
       "NAME --chain CHAIN [--src PREFIX] [--dst PREFIX] [--proto P] [--sport N[-M]] [--dport N[-M]]\n"
       "                    [--symmetric yes|no] [--md-type 1|2] [--index N]",
       "Add a classifier policy (ordered, first match wins; --index inserts at a position, default last).",
       "  anychain policy add web-in --chain web --dst 10.0.2.0/24 --proto tcp --dport 80\n"
       "  anychain policy add first --chain web --src 10.0.9.0/24 --index 0 --md-type 2\n"},
      {"policy del", "NAME", "Delete a policy.", "  anychain policy del web-in\n"},
      {"policy list", "", "List the policies in match order.", "  anychain policy list\n"},
      {"instance add",
       "NAME --id N --service S --veth IFACE --capacity PPS [--mac MAC] [--nsh-aware yes|no]\n"
       "                      [--pid-file FILE] [--cgroup PATH]",
       "Add a local VNF instance (id 1..16383, unique in the network; MAC learnt when not given).",
       "  anychain instance add fw-a --id 101 --service fw --veth vfw-a --capacity 200000\n"
       "  anychain instance add ids-a --id 102 --service ids --veth vids-a --capacity 1e5 --nsh-aware no\n"},
      {"instance del", "NAME", "Delete a local VNF instance (its flows are re-balanced).", "  anychain instance del fw-a\n"},
      {"instance list", "", "List the local VNF instances.", "  anychain instance list\n"},
      {"flows", "[--spi N] [--limit N]",
       "Show the flow cache (read from the pinned maps; works without anychaind).\n"
       "Columns: SPI, SI, flow hash, chosen instance, its generation, idle time, CPUs holding it.",
       "  anychain flows --spi 10 --limit 20\n  anychain flows --json --pin-root /sys/fs/bpf/lab1\n"},
      {"stats", "[--watch [SECONDS]] [--count N] [--all]",
       "Show the fast path's counters per reason and per (SPI, SI) (read from the pinned maps).\n"
       "--watch repeats every SECONDS (default 1) with rates; --count stops after N samples;\n"
       "--all also lists reasons that are zero (--json always lists them all).",
       "  anychain stats\n  anychain stats --watch 2\n  anychain stats --json --watch 1 --count 5\n"},
  };
  return c;
}

const Command* find_command(const std::string& name) {
  for (const auto& c : commands())
    if (c.name == name) return &c;
  return nullptr;
}

po::options_description global_options() {
  po::options_description g("Global options");
  g.add_options()("json,j", "print JSON (one document; one line per sample with --watch)")(
      "socket,s", po::value<std::string>()->value_name("PATH"),
      "anychaind's control socket (default /run/anychain/anychaind.sock)")(
      "pin-root", po::value<std::string>()->value_name("DIR"), "bpffs directory of the pinned maps (default /sys/fs/bpf/anychain)")(
      "timeout", po::value<int>()->value_name("SECONDS"), "how long to wait for anychaind (default 10)")(
      "verbose,v", "show libbpf/libxdp warnings")(
      "help,h", "show help");
  return g;
}

void print_main_help(std::ostream& os) {
  os << "Usage: anychain [GLOBAL OPTIONS] COMMAND [ARGS] [OPTIONS]\n\n"
        "Service function chaining (NSH) on an XDP fast path; talks to anychaind.\n\nCommands:\n";
  for (const auto& c : commands()) os << "  " << std::left << std::setw(16) << c.name << c.summary.substr(0, c.summary.find('\n')) << "\n";
  os << "\n" << global_options() << "\n"
     << "Exit status: 0 ok, 1 error, 2 usage error, 3 anychaind is not running.\n"
        "Run 'anychain COMMAND --help' for a command's options and examples.\n";
}

po::options_description command_options(const std::string& cmd);

void print_command_help(std::ostream& os, const std::string& prefix) {
  for (const auto& c : commands()) {
    if (c.name != prefix && !c.name.starts_with(prefix + " ")) continue;
    os << "Usage: anychain " << c.name << (c.synopsis.empty() ? "" : " " + c.synopsis) << "\n\n" << c.summary
       << "\n\nExamples:\n" << c.examples << "\n";
    auto o = command_options(c.name);
    if (!o.options().empty()) os << o << "\n";
  }
  os << global_options();
}

// ---- output helpers ----

void print_json(const json& j) { std::cout << j.dump(2) << std::endl; }

// Free-form objects (status, topology): indented "key: value" lines.
void print_tree(const json& j, int indent = 0) {
  std::string pad(static_cast<size_t>(indent), ' ');
  auto scalar = [](const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); };
  if (j.is_object()) {
    for (const auto& [k, v] : j.items()) {
      if (v.is_structured() && !v.empty() &&
          !(v.is_array() && std::all_of(v.begin(), v.end(), [](const json& e) { return e.is_primitive(); }))) {
        std::cout << pad << k << ":\n";
        print_tree(v, indent + 2);
      } else if (v.is_array()) {
        std::string s;
        for (const auto& e : v) s += (s.empty() ? "" : ", ") + scalar(e);
        std::cout << pad << k << ": " << s << "\n";
      } else {
        std::cout << pad << k << ": " << (v.is_structured() ? v.dump() : scalar(v)) << "\n";
      }
    }
  } else if (j.is_array()) {
    for (const auto& e : j) {
      if (e.is_object()) {
        bool first = true;
        for (const auto& [k, v] : e.items()) {
          std::cout << pad << (first ? "- " : "  ") << k << ": " << (v.is_string() ? v.get<std::string>() : v.dump())
                    << "\n";
          first = false;
        }
      } else {
        std::cout << pad << "- " << scalar(e) << "\n";
      }
    }
  } else {
    std::cout << pad << scalar(j) << "\n";
  }
}

// Aligned columns.
class Table {
 public:
  explicit Table(std::vector<std::string> head) { rows_.push_back(std::move(head)); }
  void add(std::vector<std::string> r) { rows_.push_back(std::move(r)); }
  void print() const {
    std::vector<size_t> w;
    for (const auto& r : rows_)
      for (size_t i = 0; i < r.size(); ++i) {
        if (w.size() <= i) w.push_back(0);
        w[i] = std::max(w[i], r[i].size());
      }
    for (const auto& r : rows_) {
      std::string line;
      for (size_t i = 0; i < r.size(); ++i) line += i + 1 < r.size() ? r[i] + std::string(w[i] - r[i].size() + 2, ' ') : r[i];
      std::cout << line << "\n";
    }
  }

 private:
  std::vector<std::vector<std::string>> rows_;
};

std::string str(const json& j, const char* key, const std::string& dflt = "-") {
  if (!j.contains(key)) return dflt;
  const json& v = j[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "yes" : "no";
  return v.dump();
}

// ---- daemon access ----

struct DaemonError {
  int exit;
};

ctl::Client connect_daemon(const Global& g) {
  auto c = ctl::Client::connect(g.socket, std::chrono::seconds(g.timeout_s));
  if (!c) {
    if (ctl::daemon_absent(c.error())) {
      std::cerr << "anychain: anychaind is not running (nothing listens on " << g.socket
                << "); start it with 'systemctl start anychaind'\n";
      throw DaemonError{kNoDaemon};
    }
    std::cerr << "anychain: " << c.error().str() << "\n";
    throw DaemonError{kRuntime};
  }
  return std::move(*c);
}

json call(const Global& g, const std::string& cmd, const json& args = json::object()) {
  auto c = connect_daemon(g);
  auto r = c.call(cmd, args);
  if (!r) {
    std::cerr << "anychain: " << r.error().message << "\n";
    throw DaemonError{kRuntime};
  }
  return *r;
}

// ---- attach / detach ----

int run_attach(const Global& g, const std::string& ifname, const std::string& mode_text, bool classify) {
  auto mode = dp::parse_xdp_mode(mode_text);
  if (!mode) throw UsageError(format("unsupported mode '{}' (native, generic or auto)", mode_text));
  auto c = ctl::Client::connect(g.socket, std::chrono::seconds(g.timeout_s));
  json result;
  bool direct = false;
  if (c) {
    json args = {{"ifname", ifname}, {"mode", std::string(dp::to_string(*mode))}};
    if (classify) args["classify"] = true;
    auto r = c->call("attach", args);
    if (!r) {
      std::cerr << "anychain: " << r.error().message << "\n";
      return kRuntime;
    }
    result = *r;
  } else if (ctl::daemon_absent(c.error())) {
    direct = true;
    if (auto r = dp::require_root(); !r) {
      std::cerr << "anychain: " << r.error().message << "\n";
      return kRuntime;
    }
    if (ifname.size() >= IF_NAMESIZE || if_nametoindex(ifname.c_str()) == 0) {
      std::cerr << "anychain: interface '" << ifname << "' does not exist\n";
      return kRuntime;
    }
    dp::Options opts;
    opts.pin_root = g.pin_root;
    // load a program instance that matches the maps already pinned (their sizes must agree)
    if (auto pinned = dp::PinnedMaps::open(g.pin_root)) {
      opts.flow_cache_entries = pinned->flow_cache_entries();
      opts.proxy_entries = pinned->proxy_entries();
    }
    auto d = dp::Dataplane::open(opts);
    if (!d) {
      std::cerr << "anychain: " << d.error().str() << "\n";
      return kRuntime;
    }
    auto a = d->attach(ifname, *mode);
    if (!a) {
      std::cerr << "anychain: " << a.error().str() << "\n";
      return kRuntime;
    }
    if (classify) {
      auto mac = dp::interface_mac(ifname);
      if (!mac) {
        std::cerr << "anychain: " << mac.error().str() << "\n";
        return kRuntime;
      }
      if (auto r = d->set_interface(static_cast<uint32_t>(a->ifindex), AC_IF_CLASSIFY, 0, *mac); !r) {
        std::cerr << "anychain: " << r.error().str() << "\n";
        return kRuntime;
      }
    }
    result = {{"ifname", a->ifname}, {"ifindex", a->ifindex}, {"mode", dp::to_string(a->mode)}, {"prog_id", a->prog_id},
              {"dispatcher", a->dispatcher}};
  } else {
    std::cerr << "anychain: " << c.error().str() << "\n";
    return kRuntime;
  }
  result["via"] = direct ? "dataplane" : "anychaind";
  if (g.json) {
    print_json(result);
  } else {
    std::cout << "attached to " << str(result, "ifname") << " in " << str(result, "mode") << " mode";
    if (result.contains("prog_id")) std::cout << " (program id " << str(result, "prog_id") << ")";
    std::cout << (direct ? "; anychaind is not running: attached directly, it will not re-attach at restart\n" : "\n");
    if (result.contains("dispatcher") && !result["dispatcher"].get<bool>())
      std::cout << "note: libxdp's dispatcher is not available on this kernel (no freplace programs): anychain is "
                   "attached alone and cannot share " << str(result, "ifname") << " with other XDP programs\n";
  }
  return kOk;
}

int run_flush(const Global& g) {
  if (auto c = ctl::Client::connect(g.socket, std::chrono::seconds(g.timeout_s)); c) {
    std::cerr << "anychain: anychaind is running (" << g.socket << "); stop it first (it keeps the maps in use)\n";
    return kRuntime;
  }
  if (auto r = dp::require_root(); !r) {
    std::cerr << "anychain: " << r.error().message << "\n";
    return kRuntime;
  }
  std::vector<std::string> names;
  if (struct if_nameindex* all = if_nameindex()) {
    for (struct if_nameindex* i = all; i->if_index; ++i) names.emplace_back(i->if_name);
    if_freenameindex(all);
  }
  auto at = dp::Dataplane::attached(names);
  if (at && !at->empty()) {
    std::string list;
    for (const auto& a : *at) list += (list.empty() ? "" : ", ") + a.ifname;
    std::cerr << "anychain: still attached to " << list << "; detach first\n";
    return kRuntime;
  }
  if (auto r = dp::Dataplane::unpin_all(g.pin_root); !r) {
    std::cerr << "anychain: " << r.error().str() << "\n";
    return kRuntime;
  }
  if (g.json) print_json(json{{"flushed", g.pin_root}});
  else std::cout << "removed the pinned maps under " << g.pin_root << "\n";
  return kOk;
}

int run_detach(const Global& g, const std::string& ifname) {
  auto c = ctl::Client::connect(g.socket, std::chrono::seconds(g.timeout_s));
  json result;
  bool direct = false;
  if (c) {
    auto r = c->call("detach", {{"ifname", ifname}});
    if (!r) {
      std::cerr << "anychain: " << r.error().message << "\n";
      return kRuntime;
    }
    result = *r;
  } else if (ctl::daemon_absent(c.error())) {
    direct = true;
    if (auto r = dp::require_root(); !r) {
      std::cerr << "anychain: " << r.error().message << "\n";
      return kRuntime;
    }
    if (auto r = dp::Dataplane::detach(ifname); !r) {
      std::cerr << "anychain: " << r.error().str() << "\n";
      return kRuntime;
    }
    result = {{"ifname", ifname}};
  } else {
    std::cerr << "anychain: " << c.error().str() << "\n";
    return kRuntime;
  }
  result["via"] = direct ? "dataplane" : "anychaind";
  if (g.json)
    print_json(result);
  else
    std::cout << "detached from " << ifname << "\n";
  return kOk;
}

// ---- flows / stats (pinned maps) ----

dp::PinnedMaps open_pinned(const Global& g) {
  auto m = dp::PinnedMaps::open(g.pin_root);
  if (!m) {
    std::cerr << "anychain: " << m.error().message << "\n";
    throw DaemonError{kRuntime};
  }
  return std::move(*m);
}

uint64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);  // bpf_ktime_get_ns()'s clock
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

std::string hex32(uint32_t v) {
  char b[16];
  std::snprintf(b, sizeof b, "0x%08x", v);
  return b;
}

int run_flows(const Global& g, std::optional<uint32_t> spi, size_t limit) {
  auto maps = open_pinned(g);
  auto flows = maps.flows(limit, spi);
  if (!flows) {
    std::cerr << "anychain: " << flows.error().str() << "\n";
    return kRuntime;
  }
  std::sort(flows->begin(), flows->end(), [](const dp::FlowEntry& a, const dp::FlowEntry& b) {
    return std::tuple(a.spi, -static_cast<int>(a.si), a.hash) < std::tuple(b.spi, -static_cast<int>(b.si), b.hash);
  });
  json out = json::array();
  for (const auto& f : *flows) {
    double age = f.age_s;
    out.push_back({{"spi", f.spi}, {"si", f.si}, {"hash", hex32(f.hash)}, {"instance", f.instance_id},
                   {"generation", f.generation}, {"age_s", std::round(age * 1000) / 1000}, {"cpus", f.cpus}});
  }
  if (g.json) {
    print_json(out);
    return kOk;
  }
  Table t({"SPI", "SI", "HASH", "INSTANCE", "GEN", "AGE", "CPUS"});
  for (const auto& f : out) {
    std::ostringstream age;
    age << std::fixed << std::setprecision(1) << f["age_s"].get<double>() << "s";
    t.add({f["spi"].dump(), f["si"].dump(), f["hash"], f["instance"].dump(), f["generation"].dump(), age.str(),
           f["cpus"].dump()});
  }
  t.print();
  std::cout << out.size() << " flow" << (out.size() == 1 ? "" : "s") << (out.size() == limit ? " (limit reached)" : "")
            << "\n";
  return kOk;
}

struct Sample {
  std::vector<ac_counter> reasons;
  std::vector<dp::PathCounter> paths;
  uint64_t t_ns;
};

json stats_json(const Sample& s, const Sample* prev) {
  double dt = prev ? static_cast<double>(s.t_ns - prev->t_ns) / 1e9 : 0;
  auto rate = [&](uint64_t now, uint64_t before) {
    return dt > 0 && now >= before ? std::round(static_cast<double>(now - before) / dt * 10) / 10 : 0.0;
  };
  json reasons = json::array();
  for (const auto& sr : dp::stat_reasons()) {
    uint32_t r = sr.slot;
    json e{{"reason", sr.name}, {"kind", dp::kind_name(sr.kind)}, {"id", r}, {"packets", s.reasons[r].packets},
           {"bytes", s.reasons[r].bytes}};
    if (prev) {
      e["pps"] = rate(s.reasons[r].packets, prev->reasons[r].packets);
      e["bps"] = rate(s.reasons[r].bytes * 8, prev->reasons[r].bytes * 8);
    }
    reasons.push_back(e);
  }
  json paths = json::array();
  for (const auto& p : s.paths) {
    json e{{"spi", p.spi}, {"si", p.si}, {"service_id", p.service_id}, {"last_hop", p.last_hop},
           {"packets", p.counter.packets}, {"bytes", p.counter.bytes}};
    if (prev) {
      for (const auto& q : prev->paths)
        if (q.spi == p.spi && q.si == p.si) {
          e["pps"] = rate(p.counter.packets, q.counter.packets);
          e["bps"] = rate(p.counter.bytes * 8, q.counter.bytes * 8);
        }
      if (!e.contains("pps")) {
        e["pps"] = 0.0;
        e["bps"] = 0.0;
      }
    }
    paths.push_back(e);
  }
  return {{"reasons", reasons}, {"paths", paths}};
}

void print_stats_text(const json& j, bool rates, bool all) {
  Table t(rates ? std::vector<std::string>{"REASON", "PACKETS", "BYTES", "PPS", "BIT/S"}
                : std::vector<std::string>{"REASON", "PACKETS", "BYTES"});
  size_t shown = 0;
  for (const auto& r : j["reasons"]) {
    if (!all && r["packets"].get<uint64_t>() == 0 && (!rates || r["pps"].get<double>() == 0)) continue;
    ++shown;
    std::vector<std::string> row{r["reason"], r["packets"].dump(), r["bytes"].dump()};
    if (rates) row.insert(row.end(), {r["pps"].dump(), r["bps"].dump()});
    t.add(row);
  }
  if (shown)
    t.print();
  else
    std::cout << "no packets counted yet (use --all to list every reason)\n";
  std::cout << "\n";
  Table p(rates ? std::vector<std::string>{"SPI", "SI", "SERVICE", "PACKETS", "BYTES", "PPS", "BIT/S"}
                : std::vector<std::string>{"SPI", "SI", "SERVICE", "PACKETS", "BYTES"});
  for (const auto& e : j["paths"]) {
    std::vector<std::string> row{e["spi"].dump(), e["si"].dump(),
                                 e["last_hop"].get<bool>() ? "(end)" : e["service_id"].dump(), e["packets"].dump(),
                                 e["bytes"].dump()};
    if (rates) row.insert(row.end(), {e["pps"].dump(), e["bps"].dump()});
    p.add(row);
  }
  if (j["paths"].empty())
    std::cout << "no chain paths programmed\n";
  else
    p.print();
}

volatile sig_atomic_t g_stop = 0;

// libbpf and libxdp print to stderr by default; the CLI reports their failures in its own
// words, so their chatter is shown only with --verbose.
int quiet_libbpf(enum libbpf_print_level, const char*, va_list) { return 0; }
int verbose_libbpf(enum libbpf_print_level l, const char* f, va_list a) {
  return l == LIBBPF_DEBUG ? 0 : std::vfprintf(stderr, f, a);
}
int quiet_libxdp(enum libxdp_print_level, const char*, va_list) { return 0; }
int verbose_libxdp(enum libxdp_print_level l, const char* f, va_list a) {
  return l == LIBXDP_DEBUG ? 0 : std::vfprintf(stderr, f, a);
}

int run_stats(const Global& g, std::optional<double> watch, std::optional<uint64_t> count, bool all) {
  auto maps = open_pinned(g);
  auto sample = [&]() -> std::optional<Sample> {
    Sample s;
    auto r = maps.stats();
    auto p = maps.path_stats();
    if (!r || !p) {
      std::cerr << "anychain: " << (!r ? r.error() : p.error()).str() << "\n";
      return std::nullopt;
    }
    s.reasons = std::move(*r);
    s.paths = std::move(*p);
    s.t_ns = monotonic_ns();
    return s;
  };
  auto first = sample();
  if (!first) return kRuntime;
  if (!watch) {
    json j = stats_json(*first, nullptr);
    if (g.json)
      print_json(j);
    else
      print_stats_text(j, false, all);
    return kOk;
  }
  struct sigaction sa{};
  sa.sa_handler = [](int) { g_stop = 1; };
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  Sample prev = std::move(*first);
  for (uint64_t n = 0; !count || n < *count; ++n) {
    auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(*watch);
    while (!g_stop && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (g_stop) break;
    auto s = sample();
    if (!s) return kRuntime;
    json j = stats_json(*s, &prev);
    if (g.json) {
      std::cout << j.dump() << std::endl;  // one sample per line
    } else {
      if (isatty(STDOUT_FILENO)) std::cout << "\033[H\033[2J";
      print_stats_text(j, true, all);
      std::cout << std::endl;
    }
    prev = std::move(*s);
  }
  return kOk;
}

// ---- config lists ----

void print_list(const std::string& kind, const json& list) {
  if (kind == "service") {
    Table t({"NAME", "ID", "ANYCAST"});
    for (const auto& e : list) t.add({str(e, "name"), str(e, "id"), str(e, "anycast")});
    t.print();
  } else if (kind == "chain") {
    Table t({"NAME", "SPI", "PATH (SI: service)"});
    for (const auto& e : list) {
      std::string path;
      int si = 255;
      for (const auto& s : e.value("services", json::array()))
        path += format("{}: {} -> ", si--, s.is_string() ? s.get<std::string>() : s.dump());
      path += format("{}: end", si);
      t.add({str(e, "name"), str(e, "spi"), path});
    }
    t.print();
  } else if (kind == "policy") {
    Table t({"#", "NAME", "CHAIN", "SRC", "DST", "PROTO", "SPORT", "DPORT", "SYMMETRIC", "MD"});
    int i = 0;
    for (const auto& e : list)
      t.add({std::to_string(i++), str(e, "name"), str(e, "chain"), str(e, "src", "any"), str(e, "dst", "any"),
             str(e, "proto", "any"), str(e, "sport", "any"), str(e, "dport", "any"), str(e, "symmetric", "default"),
             str(e, "md_type", "1")});
    t.print();
  } else {
    std::vector<std::string> head{"NAME", "ID", "SERVICE", "VETH", "MAC", "CAPACITY", "NSH"};
    static const std::set<std::string> known{"name", "id", "service", "veth", "mac", "capacity", "nsh_aware",
                                             "pid_file", "cgroup"};
    std::vector<std::string> extra;  // live fields a daemon adds (load, cost, ...)
    for (const auto& e : list)
      for (const auto& [k, v] : e.items())
        if (!known.count(k) && std::find(extra.begin(), extra.end(), k) == extra.end()) extra.push_back(k);
    for (const auto& k : extra) {
      std::string h = k;
      for (auto& ch : h) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
      head.push_back(h);
    }
    Table t(head);
    for (const auto& e : list) {
      std::vector<std::string> row{str(e, "name"), str(e, "id"), str(e, "service"), str(e, "veth"),
                                   str(e, "mac", "learn"), str(e, "capacity"), str(e, "nsh_aware", "yes")};
      for (const auto& k : extra) row.push_back(str(e, k.c_str()));
      t.add(row);
    }
    t.print();
  }
}

// Validate an entry locally with the config file's rules (usage error if bad), then send it.
template <class T>
void check_entry(const json& args, anychain::config::Parsed<T> (*from)(const json&)) {
  auto v = from(args);
  if (!v) {
    std::string msg;
    for (const auto& d : v.error()) msg += (msg.empty() ? "" : "\n") + d.message;
    throw UsageError(msg);
  }
}

int run_config(const Global& g, const std::string& kind, const std::string& action, const po::variables_map& vm,
               const std::vector<std::string>& pos) {
  if (action == "list") {
    if (!pos.empty()) throw UsageError(format("'{} list' takes no arguments", kind));
    json r = call(g, kind + "_list");
    if (g.json)
      print_json(r);
    else
      print_list(kind, r);
    return kOk;
  }
  if (pos.size() != 1) throw UsageError(format("'{} {}' takes exactly one NAME", kind, action));
  const std::string& name = pos[0];
  if (action == "del") {
    json r = call(g, kind + "_del", {{"name", name}});
    if (g.json)
      print_json(r);
    else
      std::cout << "deleted " << kind << " " << name << "\n";
    return kOk;
  }
  json args{{"name", name}};
  auto opt = [&](const char* flag, const char* key, bool number) {
    if (!vm.count(flag)) return;
    const std::string& v = vm[flag].as<std::string>();
    if (number) {
      // numbers go as JSON numbers when they are integers; the parser range-checks them
      try {
        size_t used = 0;
        unsigned long long n = std::stoull(v, &used);
        if (used == v.size() && v[0] != '-') {
          args[key] = n;
          return;
        }
      } catch (const std::exception&) {
      }
    }
    args[key] = v;
  };
  auto yesno = [&](const char* flag, const char* key) {
    if (!vm.count(flag)) return;
    std::string v = vm[flag].as<std::string>();
    if (v == "yes" || v == "true" || v == "on" || v == "1")
      args[key] = true;
    else if (v == "no" || v == "false" || v == "off" || v == "0")
      args[key] = false;
    else
      throw UsageError(format("--{} takes yes or no, not '{}'", flag, v));
  };
  if (kind == "service") {
    opt("id", "id", true);
    opt("anycast", "anycast", false);
    check_entry(args, ctl::service_from_json);
  } else if (kind == "chain") {
    opt("spi", "spi", true);
    if (vm.count("services")) {
      json list = json::array();
      std::stringstream ss(vm["services"].as<std::string>());
      for (std::string s; std::getline(ss, s, ',');)
        if (!s.empty()) list.push_back(s);
      args["services"] = list;
    }
    check_entry(args, ctl::chain_from_json);
  } else if (kind == "policy") {
    for (const char* k : {"chain", "src", "dst", "proto", "sport", "dport"}) opt(k, k, false);
    yesno("symmetric", "symmetric");
    opt("md-type", "md_type", true);
    check_entry(args, ctl::policy_from_json);
    if (vm.count("index")) args["index"] = vm["index"].as<int>();
  } else {
    opt("id", "id", true);
    for (const char* k : {"service", "veth", "mac", "cgroup"}) opt(k, k, false);
    opt("capacity", "capacity", true);
    opt("pid-file", "pid_file", false);
    yesno("nsh-aware", "nsh_aware");
    if (args.contains("capacity") && args["capacity"].is_string()) {
      // accept 1e5, 2.5e6: whole packets per second
      try {
        size_t used = 0;
        double d = std::stod(args["capacity"].get<std::string>(), &used);
        if (used == args["capacity"].get<std::string>().size() && d >= 1 && d == std::floor(d) && d < 1e12)
          args["capacity"] = static_cast<uint64_t>(d);
      } catch (const std::exception&) {
      }
    }
    check_entry(args, ctl::instance_from_json);
  }
  json r = call(g, kind + "_add", args);
  if (g.json)
    print_json(r);
  else
    std::cout << "added " << kind << " " << name << "\n";
  return kOk;
}

// ---- argument parsing ----

po::options_description command_options(const std::string& cmd) {
  po::options_description o(cmd.empty() ? std::string("Options") : "Options of '" + cmd + "'");
  auto s = [](const char* name) { return po::value<std::string>()->value_name(name); };
  if (cmd == "attach")
    o.add_options()("mode,m", s("MODE")->default_value("auto"), "native, generic or auto")(
        "classify", po::bool_switch(), "plain IP arriving here is classified into chains");
  if (cmd == "flows")
    o.add_options()("spi", po::value<uint32_t>()->value_name("N"), "only this chain")(
        "limit", po::value<size_t>()->value_name("N")->default_value(1000), "at most N entries");
  if (cmd == "stats")
    o.add_options()("watch,w", po::value<double>()->value_name("SECONDS")->implicit_value(1.0),
                    "repeat every SECONDS (default 1) with rates")(
        "count,c", po::value<uint64_t>()->value_name("N"), "with --watch: stop after N samples")(
        "all,a", "list reasons that are zero too");
  if (cmd == "service add") o.add_options()("id", s("N"), "service id 1..1023")("anycast", s("PREFIX"), "IPv4 prefix");
  if (cmd == "chain add")
    o.add_options()("spi", s("N"), "1..16777215")("services", s("S1,S2,..."), "services in order (SI 255 first)");
  if (cmd == "policy add")
    o.add_options()("chain", s("NAME"), "chain of matching traffic")("src", s("PREFIX"), "source prefix (any)")(
        "dst", s("PREFIX"), "destination prefix (any)")("proto", s("P"), "tcp, udp, icmp, icmpv6, any or a number")(
        "sport", s("N[-M]"), "source ports (tcp/udp)")("dport", s("N[-M]"), "destination ports (tcp/udp)")(
        "symmetric", s("yes|no"), "hash both directions alike (default: the node's setting)")(
        "md-type", s("1|2"), "NSH MD type pushed (default 1)")(
        "index", po::value<int>()->value_name("N"), "position in the list (0 = first; default last)");
  if (cmd == "instance add")
    o.add_options()("id", s("N"), "instance id 1..16383, unique in the network")("service", s("NAME"), "its service")(
        "veth", s("IFACE"), "host side of its veth")("capacity", s("PPS"), "packets per second it can serve")(
        "mac", s("MAC"), "the VNF's MAC (learnt when not given)")("nsh-aware", s("yes|no"), "default yes")(
        "pid-file", s("FILE"), "for CPU load")("cgroup", s("PATH"), "for CPU load");
  return o;
}

int run(int argc, char** argv) {
  Global g;
  std::vector<std::string> args(argv + 1, argv + argc);
  // global options before the command
  size_t i = 0;
  std::vector<std::string> leading;
  for (; i < args.size() && args[i].starts_with("-"); ++i) {
    leading.push_back(args[i]);
    bool takes_value = (args[i] == "--socket" || args[i] == "-s" || args[i] == "--pin-root" || args[i] == "--timeout");
    if (takes_value && i + 1 < args.size()) leading.push_back(args[++i]);
  }
  if (i == args.size()) {
    bool help = std::any_of(leading.begin(), leading.end(), [](const std::string& a) { return a == "-h" || a == "--help"; });
    if (help) {
      print_main_help(std::cout);
      return kOk;
    }
    if (std::find(leading.begin(), leading.end(), "--version") != leading.end()) {
      std::cout << "anychain 0.1.0\n";
      return kOk;
    }
    print_main_help(std::cerr);
    return kUsage;
  }
  std::string cmd = args[i++];
  if (cmd == "help") {
    if (i == args.size()) {
      print_main_help(std::cout);
      return kOk;
    }
    cmd = args[i++];
    args.push_back("--help");
  }
  const bool grouped = cmd == "service" || cmd == "instance" || cmd == "chain" || cmd == "policy";
  std::string action;
  if (grouped) {
    if (i < args.size() && !args[i].starts_with("-")) {
      action = args[i++];
      if (action == "delete" || action == "remove") action = "del";
      if (action == "show" || action == "ls") action = "list";
      if (action != "add" && action != "del" && action != "list")
        throw UsageError(format("unknown action '{} {}' (add, del or list)", cmd, action));
    }
  } else if (!find_command(cmd)) {
    throw UsageError(format("unknown command '{}'", cmd));
  }
  std::string full = action.empty() ? cmd : cmd + " " + action;

  po::options_description opts = command_options(grouped && action.empty() ? "" : full);
  po::options_description all;
  all.add(global_options()).add(opts);
  all.add_options()("args", po::value<std::vector<std::string>>(), "");
  po::positional_options_description pos;
  pos.add("args", -1);
  std::vector<std::string> rest(leading);
  rest.insert(rest.end(), args.begin() + static_cast<long>(i), args.end());
  po::variables_map vm;
  po::store(po::command_line_parser(rest).options(all).positional(pos).run(), vm);
  po::notify(vm);
  if (vm.count("help")) {
    print_command_help(std::cout, full);
    return kOk;
  }
  if (grouped && action.empty()) throw UsageError(format("'{}' needs an action: add, del or list", cmd));
  g.json = vm.count("json") > 0;
  if (vm.count("verbose")) {
    libbpf_set_print(verbose_libbpf);
    libxdp_set_print(verbose_libxdp);
  } else {
    libbpf_set_print(quiet_libbpf);
    libxdp_set_print(quiet_libxdp);
  }
  if (vm.count("socket")) g.socket = vm["socket"].as<std::string>();
  if (vm.count("pin-root")) g.pin_root = vm["pin-root"].as<std::string>();
  if (vm.count("timeout")) {
    g.timeout_s = vm["timeout"].as<int>();
    if (g.timeout_s <= 0) throw UsageError("--timeout must be positive");
  }
  std::vector<std::string> p = vm.count("args") ? vm["args"].as<std::vector<std::string>>() : std::vector<std::string>{};
  auto no_args = [&] {
    if (!p.empty()) throw UsageError(format("'{}' takes no arguments (got '{}')", full, p[0]));
  };
  auto one_iface = [&] {
    if (p.size() != 1) throw UsageError(format("'{}' needs exactly one interface name", full));
    return p[0];
  };

  if (grouped) return run_config(g, cmd, action, vm, p);
  if (cmd == "attach") return run_attach(g, one_iface(), vm["mode"].as<std::string>(), vm["classify"].as<bool>());
  if (cmd == "flush") {
    no_args();
    return run_flush(g);
  }
  if (cmd == "detach") return run_detach(g, one_iface());
  if (cmd == "flows") {
    no_args();
    std::optional<uint32_t> spi;
    if (vm.count("spi")) {
      spi = vm["spi"].as<uint32_t>();
      if (*spi == 0 || *spi > 0xffffff) throw UsageError("--spi must be 1..16777215");
    }
    size_t limit = vm["limit"].as<size_t>();
    if (limit == 0) throw UsageError("--limit must be at least 1");
    return run_flows(g, spi, limit);
  }
  if (cmd == "stats") {
    no_args();
    std::optional<double> watch;
    std::optional<uint64_t> count;
    if (vm.count("watch")) {
      watch = vm["watch"].as<double>();
      if (!(*watch >= 0.1 && *watch <= 3600)) throw UsageError("--watch takes 0.1..3600 seconds");
    }
    if (vm.count("count")) {
      if (!watch) throw UsageError("--count needs --watch");
      count = vm["count"].as<uint64_t>();
      if (*count == 0) throw UsageError("--count must be at least 1");
    }
    return run_stats(g, watch, count, vm.count("all") > 0);
  }
  // status, topology, reload
  no_args();
  json r = call(g, cmd);
  if (g.json)
    print_json(r);
  else
    print_tree(r);
  return kOk;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const UsageError& e) {
    std::cerr << "anychain: " << e.what() << "\nTry 'anychain --help' or 'anychain COMMAND --help'.\n";
    return kUsage;
  } catch (const po::error& e) {
    std::cerr << "anychain: " << e.what() << "\nTry 'anychain --help' or 'anychain COMMAND --help'.\n";
    return kUsage;
  } catch (const DaemonError& e) {
    return e.exit;
  } catch (const std::exception& e) {
    std::cerr << "anychain: " << e.what() << "\n";
    return kRuntime;
  }
}
