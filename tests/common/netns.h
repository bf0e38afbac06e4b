// Network namespaces for tests: shell commands that must succeed, the BPF fixtures' sandbox,
// named namespaces that are unique per run and removed again, veth pairs, entering a namespace.
//
// Every named namespace a test creates is "act-<pid>-<role>": two runs (from two worktrees on
// one machine, say) never share a name, and a run that was killed before its destructors ran
// leaves namespaces that the next run's first Netns removes (see Netns).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <utility>

namespace anychain::test {

// Run a shell command; returns its exit status (128 + signal if killed, -1 if it could not run).
int sh(const std::string& cmd);
// Run a shell command and return its stdout (stderr passes through).
std::string sh_out(const std::string& cmd);
// Run a setup command; throws std::runtime_error naming it if it fails.
void must(const std::string& cmd);

// Unshare net+mount namespaces, make mounts private, mount a fresh sysfs and a private bpffs on
// /sys/fs/bpf and bring lo up: the process can then create interfaces, routes and pins without
// touching the host. Returns an empty string on success, else what failed.
std::string enter_sandbox();

// The name of this process's namespace for `role`: "act-<pid>-<role>".
std::string netns_name(const std::string& role);

// A named network namespace (/run/netns/act-<pid>-<role>) with lo up; the destructor deletes it.
// The first Netns of a process first deletes every act-<pid>-* namespace whose process is gone
// (a run killed by a timeout or a crash), including its own pid's (a reused pid).
class Netns {
 public:
  explicit Netns(const std::string& role);
  ~Netns();
  Netns(Netns&& o) noexcept;
  Netns& operator=(Netns&& o) noexcept;
  Netns(const Netns&) = delete;
  Netns& operator=(const Netns&) = delete;

  const std::string& name() const { return name_; }
  // must("ip netns exec <name> " + cmd)
  void exec(const std::string& cmd) const;
  // must("ip -n <name> " + args)
  void ip(const std::string& args) const;
  // IPv6 off on every interface of the namespace (no router solicitations or MLD reports).
  void disable_ipv6() const;

 private:
  std::string name_;
};

// One end of a veth pair: the namespace it lives in ("" = the current one), its name and,
// optionally, its MAC address.
struct VethEnd {
  VethEnd(std::string netns_, std::string ifname_, std::string mac_ = "")
      : netns(std::move(netns_)), ifname(std::move(ifname_)), mac(std::move(mac_)) {}
  std::string netns;
  std::string ifname;
  std::string mac;
};

// Create the veth pair a <-> b directly inside the two namespaces (it never appears in the
// current one) and bring both ends up.
void veth(const VethEnd& a, const VethEnd& b);

// Two namespaces joined by a veth pair with fixed MACs: "a" (veth-a, mac_a) and "b" (veth-b,
// mac_b). IPv6 is off unless asked for.
struct VethPair {
  VethPair(const std::string& role, bool ipv6);
  Netns ns_a, ns_b;
  std::string if_a = "veth-a", if_b = "veth-b";
  std::string mac_a = "02:ac:00:00:00:0a", mac_b = "02:ac:00:00:00:0b";
};

// This thread inside the named namespace (/run/netns/<name>) for the guard's lifetime; sockets
// created meanwhile stay in that namespace.
class InNetns {
 public:
  explicit InNetns(const std::string& name);
  ~InNetns();
  InNetns(const InNetns&) = delete;
  InNetns& operator=(const InNetns&) = delete;

 private:
  int orig_ = -1;
};

// The MAC address of interface `ifname` in the named namespace; throws naming both if there is none.
std::array<uint8_t, 6> if_mac(const std::string& netns, const std::string& ifname);

// fn() run with this thread inside namespace `name`.
template <class Fn>
auto in_netns(const std::string& name, Fn fn) {
  InNetns guard(name);
  return fn();
}

}  // namespace anychain::test
