#include "e2e_ovs.h"

#include <dirent.h>
#include <sched.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <thread>

#include "common/netns.h"
#include "e2e_topo.h"

namespace anychain::bench {

namespace fs = std::filesystem;
using test::sh;
using test::sh_out;

namespace {

constexpr const char* kVswitchd = "usr/lib/openvswitch-switch/ovs-vswitchd";
constexpr const char* kSchema = "usr/share/openvswitch/vswitch.ovsschema";

std::string tail(const std::string& path, int lines = 15) {
  return sh_out("tail -n " + std::to_string(lines) + " " + path + " 2>/dev/null");
}

}  // namespace

bool ovs_root_ok(const std::string& root) {
  return fs::exists(fs::path(root) / kVswitchd) && fs::exists(fs::path(root) / kSchema) &&
         fs::exists(fs::path(root) / "usr/sbin/ovsdb-server");
}

std::expected<std::string, std::string> ovs_fetch(const std::string& dir) {
  fs::create_directories(dir);
  const std::string log = dir + "/apt.log";
  // apt drops privileges to _apt for downloads; a directory it cannot write is only a warning
  if (sh("cd " + dir + " && apt-get download openvswitch-switch openvswitch-common >" + log + " 2>&1") != 0)
    return std::unexpected("apt-get download openvswitch-switch openvswitch-common failed: " + tail(log, 3));
  const std::string root = dir + "/root";
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".deb" && sh("dpkg-deb -x " + e.path().string() + " " + root) != 0)
      return std::unexpected("dpkg-deb -x " + e.path().string() + " failed");
  if (!ovs_root_ok(root)) return std::unexpected("the unpacked packages have no ovs-vswitchd or schema");
  return root;
}

std::string OvsSwitch::tool(const std::string& name) const {
  for (const char* d : {"usr/bin/", "usr/sbin/"})
    if (fs::exists(root_ + "/" + d + name)) return root_ + "/" + d + name;
  throw std::runtime_error("OVS tool " + name + " not in " + root_);
}

std::string OvsSwitch::ctl(const std::string& args) const {
  const std::string log = work_ + "/vsctl.log";
  const std::string cmd = "ip netns exec " + ns_ + " " + tool("ovs-vsctl") + " --timeout=20 --db=unix:" + work_ +
                          "/db.sock " + args + " 2>>" + log;
  std::string out = sh_out(cmd + "; echo \"rc=$?\"");
  const auto rc = out.rfind("rc=");
  if (rc == std::string::npos || out.substr(rc) != "rc=0\n")
    throw std::runtime_error("ovs-vsctl " + args + " failed: " + tail(log, 3));
  return out.substr(0, rc);
}

OvsSwitch::OvsSwitch(const std::string& root, const std::string& work, const std::string& ns, int cpu, bool afxdp,
                     const std::vector<std::string>& ports)
    : root_(root), work_(work), ns_(ns), cpu_(cpu) {
  if (!ovs_root_ok(root_)) throw std::runtime_error("no unpacked Open vSwitch in " + root_);
  fs::remove_all(work_);
  fs::create_directories(work_);
  remove_taps();
  // everything OVS writes goes to the work directory
  for (const char* v : {"OVS_RUNDIR", "OVS_LOGDIR", "OVS_DBDIR", "OVS_SYSCONFDIR"}) setenv(v, work_.c_str(), 1);
  setenv("OVS_PKGDATADIR", (root_ + "/usr/share/openvswitch").c_str(), 1);
  const std::string db = work_ + "/conf.db";
  if (sh(tool("ovsdb-tool") + " create " + db + " " + root_ + "/" + kSchema + " >/dev/null 2>&1") != 0)
    throw std::runtime_error("ovsdb-tool create failed");
  const std::string cpus = std::to_string(cpu_);
  db_ = test::Proc(ns_, {"taskset", "-c", cpus, tool("ovsdb-server"), db, "--remote=punix:" + work_ + "/db.sock",
                         "--pidfile=" + work_ + "/ovsdb-server.pid", "--unixctl=" + work_ + "/ovsdb-server.ctl",
                         "--log-file=" + work_ + "/ovsdb-server.log", "-vconsole:off"},
                   work_ + "/ovsdb-server.out");
  if (!test::wait_for_file(work_ + "/db.sock", std::chrono::seconds(10)))
    throw std::runtime_error("ovsdb-server did not start: " + tail(work_ + "/ovsdb-server.log"));
  ctl("--no-wait init");
  // PMD threads on the router's CPU only; no EMC insertion tuning: defaults as a user has them
  ctl("--no-wait set Open_vSwitch . other_config:pmd-cpu-mask=0x" + std::to_string(1 << cpu_));
  vswitchd_ = test::Proc(ns_, {"taskset", "-c", cpus, root_ + "/" + kVswitchd, "unix:" + work_ + "/db.sock",
                               "--pidfile=" + work_ + "/ovs-vswitchd.pid", "--unixctl=" + work_ + "/ovs-vswitchd.ctl",
                               "--log-file=" + work_ + "/ovs-vswitchd.log", "-vconsole:off"},
                         work_ + "/ovs-vswitchd.out");
  if (!test::wait_for_file(work_ + "/ovs-vswitchd.ctl", std::chrono::seconds(15)))
    throw std::runtime_error("ovs-vswitchd did not start: " + tail(work_ + "/ovs-vswitchd.log"));
  ctl("add-br br0 -- set bridge br0 datapath_type=netdev protocols=OpenFlow13,OpenFlow15 fail-mode=secure");
  for (size_t i = 0; i < ports.size(); ++i) {
    std::string args = "add-port br0 " + ports[i] + " -- set interface " + ports[i] +
                       " ofport_request=" + std::to_string(i + 1);
    if (afxdp) args += " type=afxdp options:xdp-mode=native options:n_rxq=1";
    ctl(args);
  }
  // wait until every port has its ofport (a failed port gets -1 and an error)
  for (int tries = 0;; ++tries) {
    bool ready = true;
    for (const auto& p : ports) {
      const std::string err = ctl("get interface " + p + " error");
      const std::string ofp = ctl("get interface " + p + " ofport");
      if (err.find('"') != std::string::npos)
        throw std::runtime_error("OVS port " + p + ": " + err + tail(work_ + "/ovs-vswitchd.log", 5));
      if (ofp.empty() || ofp[0] == '[' || ofp[0] == '-') ready = false;
    }
    if (ready) break;
    if (tries > 100) throw std::runtime_error("OVS ports not ready: " + tail(work_ + "/ovs-vswitchd.log"));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  pin_threads();
}

OvsSwitch::~OvsSwitch() {
  // a plain SIGTERM keeps the datapath (its tap devices stay in the namespace for a restart)
  if (vswitchd_.running())
    sh("timeout 10 " + tool("ovs-appctl") + " -t " + work_ + "/ovs-vswitchd.ctl exit --cleanup >/dev/null 2>&1");
  vswitchd_.stop(std::chrono::seconds(5));
  db_.stop(std::chrono::seconds(2));
  remove_taps();
}

void OvsSwitch::remove_taps() {
  for (const char* dev : {"ovs-netdev", "br0"}) sh("ip -n " + ns_ + " link del " + dev + " 2>/dev/null");
}

void OvsSwitch::pin_threads() {
  // taskset pinned the processes; threads created later (handlers, revalidators, PMDs) inherit
  // it, but pin every thread again in case a PMD set its own affinity
  for (int pid : {vswitchd_.pid(), db_.pid()}) {
    DIR* d = opendir(("/proc/" + std::to_string(pid) + "/task").c_str());
    if (!d) continue;
    while (dirent* e = readdir(d))
      if (e->d_name[0] != '.') pin_thread(std::atoi(e->d_name), cpu_);
    closedir(d);
  }
}

void OvsSwitch::add_flows(const std::vector<std::string>& flows) {
  const std::string file = work_ + "/flows.txt";
  {
    std::string text;
    for (const auto& f : flows) text += f + "\n";
    FILE* fp = fopen(file.c_str(), "w");
    if (!fp) throw std::runtime_error("write " + file);
    fputs(text.c_str(), fp);
    fclose(fp);
  }
  const std::string log = work_ + "/ofctl.log";
  if (sh("ip netns exec " + ns_ + " " + tool("ovs-ofctl") + " -O OpenFlow15 add-flows br0 " + file + " >" + log +
         " 2>&1") != 0)
    throw std::runtime_error("ovs-ofctl add-flows failed: " + tail(log, 5));
  pin_threads();
}

std::string OvsSwitch::dump_flows() {
  return sh_out("ip netns exec " + ns_ + " " + tool("ovs-ofctl") + " -O OpenFlow15 dump-flows br0 2>&1; " +
                tool("ovs-appctl") + " -t " + work_ + "/ovs-vswitchd.ctl dpctl/dump-flows 2>&1");
}

}  // namespace anychain::bench
