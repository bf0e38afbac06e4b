// Where this network namespace's fast path keeps its maps, when they are not where the CLI
// looks. `ip netns exec` gives every command a fresh /sys (and so no bpffs, or another one): an
// anychaind started that way pins its maps in a mount namespace no other command sees, and
// loading the fast path again "here" would start a second, empty set of maps.
#include <net/if.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "cli/cli.h"
#include "control/client.h"
#include "dataplane/dataplane.h"
#include "dataplane/pinned.h"

namespace anychain::cli {
namespace {

namespace dp = anychain::dataplane;
namespace fs = std::filesystem;

constexpr unsigned long kBpfFsMagic = 0xcafe4a11;

ino_t ns_inode(const std::string& path) {
  struct stat st{};
  return stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

std::string comm_of(int pid) {
  std::ifstream f(fmt::format("/proc/{}/comm", pid));
  std::string s;
  std::getline(f, s);
  return s;
}

// anychaind processes in this network namespace (found through /proc).
std::vector<int> daemons_here() {
  std::vector<int> out;
  const ino_t net = ns_inode("/proc/self/ns/net");
  std::error_code ec;
  for (const auto& d : fs::directory_iterator("/proc", ec)) {
    const std::string name = d.path().filename();
    if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
    const int pid = std::stoi(name);
    if (comm_of(pid) == "anychaind" && ns_inode(fmt::format("/proc/{}/ns/net", pid)) == net) out.push_back(pid);
  }
  return out;
}

bool bpffs_at(const std::string& dir) {
  struct statfs st{};
  return statfs(dir.c_str(), &st) == 0 && static_cast<unsigned long>(st.f_type) == kBpfFsMagic;
}

std::vector<dp::Attachment> attached_here() {
  std::vector<std::string> names;
  if (struct if_nameindex* all = if_nameindex()) {
    for (struct if_nameindex* i = all; i->if_index; ++i) names.emplace_back(i->if_name);
    if_freenameindex(all);
  }
  auto at = dp::Dataplane::attached(names);
  return at ? *at : std::vector<dp::Attachment>{};
}

// The daemon of this network namespace: the one answering on the socket, else one running here.
struct Daemon {
  int pid = 0;
  std::string pin_root;  // from its status, when it answered
};
Daemon find_daemon(const Global& g) {
  Daemon d;
  if (auto c = control::Client::connect(g.socket, std::chrono::seconds(2)); c) {
    d.pid = c->peer_pid();
    if (auto st = c->call("status"); st && st->contains("agent")) d.pin_root = (*st)["agent"].value("pin_root", "");
  }
  if (!d.pid)
    if (auto here = daemons_here(); !here.empty()) d.pid = here.front();
  return d;
}

// Where the daemon's maps can be read from this mount namespace.
std::string daemon_maps_hint(const Global& g, const Daemon& d) {
  const std::string root = d.pin_root.empty() ? g.pin_root : d.pin_root;
  const bool same_mnt = ns_inode(fmt::format("/proc/{}/ns/mnt", d.pid)) == ns_inode("/proc/self/ns/mnt");
  if (same_mnt && root != g.pin_root) return fmt::format("anychaind (pid {}) pins them under {}: pass --pin-root {}", d.pid, root, root);
  const std::string there = fmt::format("/proc/{}/root{}", d.pid, root);
  if (!same_mnt && fs::exists(there + "/ac_stats"))
    return fmt::format("anychaind (pid {}) pins them in its own mount namespace: read them with --pin-root {}", d.pid, there);
  return fmt::format("anychaind (pid {}) keeps them: run this in its mount namespace (nsenter -t {} -m)", d.pid, d.pid);
}

}  // namespace

std::optional<std::string> foreign_fast_path(const Global& g) {
  auto pinned = dp::PinnedMaps::open(g.pin_root);
  const auto attached = attached_here();
  if (pinned) {
    // maps here: are they the ones the attached programs work on?
    for (const auto& a : attached) {
      auto used = pinned->used_by(a.prog_id);
      if (!used || *used) continue;
      Daemon d = find_daemon(g);
      return fmt::format("the maps pinned under {} are not the ones anychain's program on {} (program {}) works on: "
                         "they belong to an earlier or another fast path{}",
                         g.pin_root, a.ifname, a.prog_id, d.pid ? ". " + daemon_maps_hint(g, d) : "");
    }
    return std::nullopt;
  }
  Daemon d = find_daemon(g);
  if (attached.empty() && !d.pid) return std::nullopt;  // nothing loaded in this namespace: the plain advice holds
  std::string msg;
  if (!attached.empty()) {
    std::string progs;
    for (const auto& a : attached) progs += fmt::format("{}{} (program {})", progs.empty() ? "" : ", ", a.ifname, a.prog_id);
    msg = fmt::format("anychain's fast path is attached here ({}), but its maps are not pinned under {} in this mount "
                      "namespace", progs, g.pin_root);
  } else {
    msg = fmt::format("anychaind (pid {}) runs in this network namespace, but no maps are pinned under {} in this mount "
                      "namespace", d.pid, g.pin_root);
  }
  if (!bpffs_at("/sys/fs/bpf"))
    msg += " (no bpffs is mounted at /sys/fs/bpf here: 'ip netns exec' gives every command its own /sys)";
  if (d.pid)
    msg += ". " + daemon_maps_hint(g, d);
  else
    msg += ". The agent or 'anychain attach' that loaded it pinned them in another mount namespace (another "
           "'ip netns exec', or a bpffs mounted elsewhere): run this where it runs, or pass that --pin-root";
  msg += ". Loading the fast path again here would start a second, empty set of maps: 'anychain attach' refuses to";
  return msg;
}

}  // namespace anychain::cli
