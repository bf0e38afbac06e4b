// anychain-nf: runs one built-in network function instance (docs/nf.md). Started by anychaind
// inside the instance's network namespace; can be run by hand as well:
//
//   ip netns exec acnf-nat1 anychain-nf --name nat1 --kind nat --instance-id 3
//       --nat-address 192.0.2.10 --nat-ports 20000-29999     (one line)
//
// Loads the kind's XDP program, attaches it to --iface with a bpf_link, applies the FTC control
// file (<run-dir>/ftc/<name>.json, again on SIGHUP and when it changes), opens the FTC hold queue
// (an AF_XDP socket on --iface: held frames, re-run when their gap closes, re-requested from the
// agent when it stays open; stubbed logs sent in propagating packets), publishes <run-dir>/<name>.json and reclaims idle state every second
// until SIGTERM or SIGINT (a clean exit: the file removed, the program detached). SIGKILL leaves the file behind; the program is
// detached and the maps freed by the kernel all the same. Exit status: 0 clean exit, 1 runtime
// error (load, attach, the interface went away), 2 usage error.
#include <arpa/inet.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <boost/program_options.hpp>
#include <cstdarg>
#include <cstdio>
#include <iostream>

#include "common/options.h"
#include "nf/hold.h"
#include "nf/loader.h"

namespace po = boost::program_options;
using namespace anychain;
using namespace anychain::nf;

namespace {

std::string g_name = "?";
bool g_verbose = false;

template <class... A>
void say(fmt::format_string<A...> f, A&&... a) {
  std::string line = fmt::format("anychain-nf[{}]: {}\n", g_name, fmt::format(f, std::forward<A>(a)...));
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

int libbpf_print(enum libbpf_print_level l, const char* f, va_list a) {
  if (l == LIBBPF_DEBUG && !g_verbose) return 0;
  return std::vfprintf(stderr, f, a);
}

}  // namespace

int main(int argc, char** argv) {
  Params p;
  LoadOptions o;
  std::string kind, address, ports, dflt = "pass", run_dir = AC_NF_RUN_DIR;
  std::string ids_action = "pass", ids_filter = "3x65536", ids_sketch = "4x4096", rl_unit = "bytes";
  std::vector<std::string> rules;
  int idle = -1;
  std::string control_path;
  HoldOptions hold;
  uint32_t hold_timeout_ms = 1000;
  bool no_hold = false, no_resync = false;
  std::string resync_socket;
  po::options_description desc(
      "anychain-nf: runs one built-in network function instance in its namespace (docs/nf.md)\n\n"
      "Usage: anychain-nf --name NAME --kind KIND --instance-id N [options]\n\n"
      "Kinds: " + kind_names() + "\n\n"
      "Examples:\n"
      "  anychain-nf --name fw1 --kind firewall --instance-id 1 --rule 'drop proto udp dport 53' --default pass\n"
      "  anychain-nf --name nat1 --kind nat --instance-id 3 --nat-address 192.0.2.10 --nat-ports 20000-29999\n"
      "  anychain-nf --name ids1 --kind ids --instance-id 4 --ids-threshold 64 --ids-action drop --window 10\n"
      "  anychain-nf --name rl1 --kind ratelimit --instance-id 5 --rl-limit 1000 --rl-unit packets --window 1\n\n"
      "Options");
  desc.add_options()("help,h", "show this help")("name", po::value(&o.name)->required(), "the instance's name")(
      "kind", po::value(&kind)->required(), "nat, monitor, firewall, ids, ratelimit or replica")(
      "instance-id", po::value(&p.instance_id)->required(), "network-wide instance id, 1..16383")(
      "iface", po::value(&o.iface)->default_value(AC_NF_IFNAME), "where to attach the XDP program")(
      "run-dir", po::value(&run_dir)->default_value(AC_NF_RUN_DIR), "where <name>.json is published")(
      "idle-timeout", po::value(&idle), "seconds after which idle per-flow state is reset (0: never; default per kind)")(
      "nat-address", po::value(&address), "nat: the external IPv4 address")(
      "nat-ports", po::value(&ports)->default_value("1024-65535"), "nat: the port pool, LO-HI")(
      "default", po::value(&dflt)->default_value("pass"), "firewall: pass or drop when no rule matches")(
      "rule", po::value(&rules), "firewall: ACTION [src P] [dst P] [proto P] [sport N[-M]] [dport N[-M]] (repeat, in order)")(
      "window", po::value(&p.window_s)->default_value(10), "ids, ratelimit: the window in seconds (wall clock, "
      "the same on every instance)")(
      "ids-threshold", po::value(&p.ids_threshold)->default_value(64),
      "ids: distinct (protocol, port) pairs of one source in a window, over every instance, that flag it")(
      "ids-action", po::value(&ids_action)->default_value("pass"), "ids: pass (count only) or drop a flagged source's packets")(
      "ids-filter", po::value(&ids_filter)->default_value("3x65536"), "ids: pair filter, HASHESxCELLS (cells a power of two)")(
      "ids-sketch", po::value(&ids_sketch)->default_value("4x4096"), "ids: source sketch, ROWSxWIDTH (width a power of two)")(
      "ids-flagged", po::value(&p.ids_flagged_max)->default_value(4096), "ids: flagged sources held")(
      "ids-flag-expire", po::value(&p.ids_flag_expire_s)->default_value(600),
      "ids: seconds after its last flagging that a source's flag is removed (by the replicating agent; 0: never)")(
      "rl-limit", po::value(&p.rl_limit), "ratelimit: the limit per window over every instance")(
      "rl-unit", po::value(&rl_unit)->default_value("bytes"), "ratelimit: bytes (inner L3) or packets")(
      "object", po::value(&o.object_path), "load this BPF object instead of the kind's (development)")(
      "program", po::value(&o.program), "with --object: the XDP program to attach (default: its first)")(
      "flows", po::value(&o.flows)->default_value(65536), "per-flow state records (partitions)")(
      "replica-records", po::value(&p.replica_records)->default_value(kReplicaRecordsDefault),
      "FTC replica records (partitions of its predecessors this instance holds), 1..4194304")(
      "ftc-control", po::value(&control_path), "the FTC control file (default <run-dir>/ftc/<name>.json; docs/nf.md)")(
      "hold-frames", po::value(&hold.frames)->default_value(4096), "FTC hold queue: frames held in all")(
      "hold-per-partition", po::value(&hold.per_partition)->default_value(256), "FTC hold queue: frames held per partition")(
      "hold-timeout-ms", po::value(&hold_timeout_ms)->default_value(1000), "FTC hold queue: a frame held longer is dropped")(
      "no-hold", po::bool_switch(&no_hold), "no hold queue: a gap drops its packet (ftc_hold_unavailable)")(
      "reorder-wait-us", po::value(&p.reorder_wait_us)->default_value(kReorderWaitUsDefault),
      "FTC: a gap still open this long after its first frame was held is re-requested from the agent, "
      "1..999999")(
      "resync-socket", po::value(&resync_socket), "FTC: the agent's re-request socket (default <run-dir>/ftc/resync.sock)")(
      "no-resync", po::bool_switch(&no_resync), "FTC: never re-request a gap (held frames wait for the log or expire)")(
      "verbose,v", po::bool_switch(&g_verbose), "libbpf's debug output");
  po::variables_map vm;
  if (auto rc = parse_command_line(argc, argv, desc, vm, "anychain-nf")) return *rc;
  g_name = o.name;
  auto usage = [](const std::string& m) {
    say("{}", m);
    return 2;
  };
  auto k = parse_kind(kind);
  if (!k) return usage(fmt::format("unknown kind '{}' ({})", kind, kind_names(true)));
  p.kind = *k;
  p.idle_timeout_s = idle >= 0 ? static_cast<uint32_t>(idle) : info(p.kind).idle_timeout_s;
  if (p.kind == Kind::Nat) {
    if (inet_pton(AF_INET, address.c_str(), &p.nat_address) != 1)
      return usage(fmt::format("--nat-address '{}' is not an IPv4 address", address));
    auto r = parse_port_range(ports);
    if (!r) return usage(r.error().message);
    p.nat_port_lo = r->first;
    p.nat_port_hi = r->second;
  }
  if (p.kind == Kind::Ids) {
    if (ids_action != "pass" && ids_action != "drop")
      return usage(fmt::format("--ids-action takes pass or drop, not '{}'", ids_action));
    p.ids_drop = ids_action == "drop";
    auto f = parse_geometry(ids_filter), s = parse_geometry(ids_sketch);
    if (!f) return usage("--ids-filter: " + f.error().message);
    if (!s) return usage("--ids-sketch: " + s.error().message);
    std::tie(p.ids_pairs_hashes, p.ids_pairs_cells) = *f;
    std::tie(p.ids_sketch_rows, p.ids_sketch_width) = *s;
  }
  if (p.kind == Kind::Ratelimit) {
    if (rl_unit != "bytes" && rl_unit != "packets")
      return usage(fmt::format("--rl-unit takes bytes or packets, not '{}'", rl_unit));
    p.rl_packets = rl_unit == "packets";
  }
  if (p.kind == Kind::Firewall) {
    if (dflt != "pass" && dflt != "drop") return usage(fmt::format("--default takes pass or drop, not '{}'", dflt));
    p.fw_default_drop = dflt == "drop";
    for (const auto& t : rules) {
      auto r = parse_rule(t);
      if (!r) return usage(r.error().message);
      p.fw_rules.push_back(*r);
    }
  }
  if (o.object_path.empty()) {
    if (auto v = validate(p); !v) return usage(v.error().message);
  } else if (auto v = validate_ftc(p); !v) {
    return usage(v.error().message);
  }
  o.replica_records = p.replica_records;
  libbpf_set_print(libbpf_print);

  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&set, s);
  sigprocmask(SIG_BLOCK, &set, nullptr);
  int sfd = signalfd(-1, &set, SFD_CLOEXEC);

  auto nf = Nf::load(p, o);
  if (!nf) {
    say("{}", nf.error().str());
    return 1;
  }
  hold.timeout = std::chrono::milliseconds(hold_timeout_ms);
  hold.reorder_wait = std::chrono::microseconds(p.reorder_wait_us);
  if (!no_resync) hold.resync_socket = resync_socket.empty() ? resync_socket_path(run_dir) : resync_socket;
  if (control_path.empty()) control_path = ftc_control_path(run_dir, o.name);
  // the FTC control: applied now if present, then on SIGHUP and whenever it changes
  struct timespec control_mtime{};
  off_t control_size = -1;
  auto load_control = [&](bool force) {
    struct stat sb{};
    if (::stat(control_path.c_str(), &sb) != 0) return;  // none (yet): the last one applied stays
    if (!force && sb.st_mtim.tv_sec == control_mtime.tv_sec && sb.st_mtim.tv_nsec == control_mtime.tv_nsec &&
        sb.st_size == control_size)
      return;
    control_mtime = sb.st_mtim;
    control_size = sb.st_size;
    auto c = read_ftc_control(control_path);
    Result<void> r = c ? (*nf)->apply_control(*c) : Result<void>(unexpected(c.error()));
    if (!r) {
      (*nf)->count(AC_NF_PS_CONTROL_ERRORS);
      say("FTC control refused, the previous one stays: {}", r.error().str());
      return;
    }
    say("FTC control {}: incarnation {}, f {}, {} peers, {} successors", control_path, c->incarnation, c->f,
        c->peers.size(), c->successors.size());
  };
  load_control(true);
  std::unique_ptr<HoldQueue> hq;
  if (o.attach && !no_hold) {
    auto h = HoldQueue::open(**nf, hold);
    if (h)
      hq = std::move(*h);
    else
      say("no FTC hold queue (a gap drops its packet, counted ftc_hold_unavailable): {}", h.error().str());
  }
  const std::string file = published_path(run_dir, o.name);
  if (auto w = write_published(file, (*nf)->published()); !w) {
    say("{}", w.error().str());
    return 1;
  }
  const auto& pub = (*nf)->published();
  say("{} attached to {} (program {}, link {}); published {}", pub.program, o.iface, pub.prog_id, pub.link_id, file);
  int rc = 0;
  using Clock = std::chrono::steady_clock;
  auto next_tick = Clock::now() + std::chrono::seconds(1);
  StoreFullWatch full(o.flows, o.replica_records);
  bool stop = false;
  while (!stop) {
    std::vector<pollfd> pf{{sfd, POLLIN, 0}};
    if (hq)
      for (int fd : hq->fds()) pf.push_back({fd, POLLIN, 0});
    // while frames are held their records are checked every 100 us (docs/ftc.md 4.2)
    auto now = Clock::now();
    auto wait = hq && hq->holding() ? std::chrono::nanoseconds(100'000)
                                    : std::max<Clock::duration>(next_tick - now, Clock::duration::zero());
    timespec ts{static_cast<time_t>(std::chrono::duration_cast<std::chrono::seconds>(wait).count()),
                static_cast<long>((std::chrono::duration_cast<std::chrono::nanoseconds>(wait) % std::chrono::seconds(1)).count())};
    int n = ppoll(pf.data(), pf.size(), &ts, nullptr);
    if (n > 0 && (pf[0].revents & POLLIN)) {
      signalfd_siginfo si{};
      if (read(sfd, &si, sizeof si) == sizeof si) {
        if (si.ssi_signo == SIGHUP) {
          load_control(true);
        } else {
          say("signal {}: exiting", si.ssi_signo);
          stop = true;
          continue;
        }
      }
    }
    now = Clock::now();
    if (hq) {
      hq->receive(now);
      hq->release(now);
    }
    if (now < next_tick) continue;
    next_tick = now + std::chrono::seconds(1);
    if (!(*nf)->iface_present()) {
      say("{} is gone: exiting", o.iface);
      rc = 1;
      break;
    }
    load_control(false);
    if (auto sf = (*nf)->ftc_counter(AC_FTC_ST_STORE_FULL), rf = (*nf)->ftc_counter(AC_FTC_ST_REPLICA_FULL); sf && rf) {
      if (auto w = full.update(*sf, *rf, now)) say("{}", *w);
    }
    timespec rt{};
    clock_gettime(CLOCK_REALTIME, &rt);
    if (auto r = (*nf)->roll_windows(static_cast<uint64_t>(rt.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(rt.tv_nsec)); !r)
      say("window: {}", r.error().str());
    if (auto r = (*nf)->reclaim(now); !r)
      say("reclaim: {}", r.error().str());
    else if (r->records || r->mappings || r->replicas || r->shared)
      say("reclaimed {} idle records, {} replica records, {} NAT mappings, {} shared NAT entries", r->records,
          r->replicas, r->mappings, r->shared);
  }
  ::unlink(file.c_str());
  return rc;
}
