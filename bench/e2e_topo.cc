// The end-to-end benchmark's topologies (bench/e2e_topo.h): namespaces, veths, addresses and
// what runs on the routers in each mode (anychain's fast path, bare redirect, Linux forwarding,
// Open vSwitch). Over 500 lines because each of the topologies and modes is written out plainly
// once; they share the small builders at the top.
#include "e2e_topo.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <sched.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <stdexcept>
#include <thread>

#include "e2e.skel.h"
#include "e2e_maps.h"
#include "e2e_ovs.h"

namespace anychain::bench {

namespace dp = anychain::dataplane;
using test::must;
using test::sh;
using test::sh_out;

namespace {

constexpr uint32_t kSpiPush = 100, kSpiProxy = 200, kSpiGpe = 300, kSpiChain = 400;
constexpr const char* kDstNet = "198.19.0.0/24";  // the generator's destinations (RFC 2544 range)
constexpr const char* kEndpoint1 = "10.255.0.1";
constexpr const char* kEndpoint2 = "10.255.0.2";

template <class R>
void ok(const R& r, const std::string& what) {
  if (!r) throw std::runtime_error(what + ": " + r.error().str());
}

in_addr ip4(const std::string& s) {
  in_addr a{};
  if (inet_pton(AF_INET, s.c_str(), &a) != 1) throw std::runtime_error("bad IPv4 address " + s);
  return a;
}

// MACs 02:e2:00:00:<n>: locally administered, one per interface, in creation order
Mac next_mac() {
  static uint16_t n = 0;
  ++n;
  return Mac{0x02, 0xe2, 0x00, 0x00, static_cast<uint8_t>(n >> 8), static_cast<uint8_t>(n)};
}

int ifindex_in(const std::string& ns, const std::string& ifname) {
  test::InNetns g(ns);
  const int i = static_cast<int>(if_nametoindex(ifname.c_str()));
  if (i == 0) throw std::runtime_error("no interface " + ifname + " in " + ns);
  return i;
}

}  // namespace

// ---- names ----

std::string TopoSpec::name() const {
  switch (kind) {
    case Kind::GenOnly: return "gen";
    case Kind::Push: return "push";
    case Kind::Proxy: return "proxy";
    case Kind::Gpe: return "gpe";
    case Kind::Chain: return "chain-" + std::to_string(n);
  }
  return "?";
}

std::optional<TopoSpec> parse_topo(const std::string& s) {
  if (s == "gen") return TopoSpec{Kind::GenOnly, 0};
  if (s == "push") return TopoSpec{Kind::Push, 1};
  if (s == "proxy") return TopoSpec{Kind::Proxy, 1};
  if (s == "gpe") return TopoSpec{Kind::Gpe, 1};
  if (s.rfind("chain-", 0) == 0) {
    try {
      size_t used = 0;
      const int n = std::stoi(s.substr(6), &used);
      if (used == s.size() - 6 && n >= 1 && n <= 10) return TopoSpec{Kind::Chain, n};
    } catch (const std::exception&) {
    }
  }
  return std::nullopt;
}

std::string mode_name(Mode m) {
  switch (m) {
    case Mode::Anychain: return "anychain";
    case Mode::Redirect: return "redirect";
    case Mode::Linux: return "linux";
    case Mode::Ovs: return "ovs";
    case Mode::OvsAfxdp: return "ovs-afxdp";
    case Mode::Receiver: return "receiver";
  }
  return "?";
}

std::optional<Mode> parse_mode(const std::string& s) {
  for (Mode m : {Mode::Anychain, Mode::Redirect, Mode::Linux, Mode::Ovs, Mode::OvsAfxdp, Mode::Receiver})
    if (mode_name(m) == s) return m;
  return std::nullopt;
}

// ---- NAPI threads ----

std::vector<int> napi_threads(const std::string& ifname) {
  std::vector<int> out;
  const std::string want = "napi/" + ifname + "-";
  DIR* d = opendir("/proc");
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    char* end = nullptr;
    const long pid = std::strtol(e->d_name, &end, 10);
    if (pid <= 0 || *end) continue;
    std::ifstream f(std::string("/proc/") + e->d_name + "/comm");
    std::string comm;
    std::getline(f, comm);
    if (comm.rfind(want, 0) == 0) out.push_back(static_cast<int>(pid));
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

void pin_thread(int tid, int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(tid, sizeof(set), &set) != 0)
    throw std::runtime_error("pin thread " + std::to_string(tid) + " to CPU " + std::to_string(cpu) + ": " +
                             std::strerror(errno));
}

// ---- bench objects ----

BenchObj::BenchObj(const std::string& ns, bool vnf_drop) : ns_(ns) {
  skel_ = e2e_bpf__open();
  if (!skel_) throw std::runtime_error("open bench/e2e.bpf.o: " + std::string(std::strerror(errno)));
  skel_->rodata->e2e_vnf_drop = vnf_drop ? 1 : 0;
  if (int err = e2e_bpf__load(skel_)) {
    e2e_bpf__destroy(skel_);
    throw std::runtime_error("load bench/e2e.bpf.o: " + std::string(std::strerror(-err)));
  }
}

BenchObj::~BenchObj() {
  try {
    detach_all();
  } catch (...) {
  }
  e2e_bpf__destroy(skel_);
}

void BenchObj::attach(const std::string& prog, const Iface& i) {
  bpf_program* p = bpf_object__find_program_by_name(skel_->obj, prog.c_str());
  if (!p) throw std::runtime_error("no program " + prog);
  test::InNetns g(i.ns);
  if (int err = bpf_xdp_attach(i.ifindex, bpf_program__fd(p), XDP_FLAGS_DRV_MODE, nullptr))
    throw std::runtime_error("attach " + prog + " to " + i.name + " in " + i.ns + ": " + std::strerror(-err));
  attached_.push_back(i);
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(bpf_program__fd(p), &info, &len) == 0) attached_prog_ids_.push_back(info.id);
}

void BenchObj::detach_all() {
  for (const auto& i : attached_) {
    test::InNetns g(i.ns);
    bpf_xdp_detach(i.ifindex, XDP_FLAGS_DRV_MODE, nullptr);
  }
  attached_.clear();
  attached_prog_ids_.clear();
}

std::vector<uint32_t> BenchObj::prog_ids() const {
  std::vector<uint32_t> ids = attached_prog_ids_;
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

static e2e_count percpu_sum(const bpf_map* m, uint32_t slot) {
  const int ncpu = libbpf_num_possible_cpus();
  std::vector<e2e_count> v(static_cast<size_t>(ncpu));
  e2e_count s{};
  if (bpf_map_lookup_elem(bpf_map__fd(m), &slot, v.data()) == 0)
    for (const auto& c : v) s.packets += c.packets, s.bytes += c.bytes;
  return s;
}

uint64_t BenchObj::packets(uint32_t slot) const { return percpu_sum(skel_->maps.e2e_counts, slot).packets; }
uint64_t BenchObj::bytes(uint32_t slot) const { return percpu_sum(skel_->maps.e2e_counts, slot).bytes; }

// ---- the topology ----

namespace {
// where a router's dataplane pins its maps (in the bench's sandbox bpffs)
std::string router_pin_root(const std::string& ns) { return "/sys/fs/bpf/" + ns + "/anychain"; }
}  // namespace

Topo::Topo(const TopoSpec& spec, int router_cpu, uint32_t flow_cache_entries)
    : spec_(spec), router_cpu_(router_cpu), flow_cache_entries_(flow_cache_entries) {
  build();
}

Topo::~Topo() {
  try {
    clear_mode();
  } catch (...) {
  }
  // the routers' pins go with the topology: a later topology of this process has the same
  // namespace names, and would otherwise adopt these maps (flow cache, FTC pending logs and
  // egress entries of another chain)
  std::vector<std::string> pins;
  for (const auto& r : adp_) pins.push_back(router_pin_root(r.ns));
  adp_.clear();
  for (const auto& p : pins) (void)dp::Dataplane::unpin_all(p);
  fwd_objs_.clear();
  pass_objs_.clear();
  vnf_objs_.clear();
  receiver_.reset();
  nets_.clear();  // deletes the namespaces, and with them every veth and XDP attachment
}

std::string Topo::ns(const std::string& node) const { return nets_.at(node).name(); }

std::vector<std::string> Topo::routers() const {
  if (spec_.kind == Kind::Gpe) return {"r1", "r2"};
  return {"r1"};
}

void Topo::link(const std::string& a_node, const std::string& a_if, const std::string& b_node,
                const std::string& b_if, Iface* a_out, Iface* b_out, int subnet) {
  Iface a{ns(a_node), a_node, a_if, next_mac(), "", 0};
  Iface b{ns(b_node), b_node, b_if, next_mac(), "", 0};
  test::veth({a.ns, a.name, test::mac_str(a.mac)}, {b.ns, b.name, test::mac_str(b.mac)});
  if (subnet >= 0) {
    a.ip = "10.0." + std::to_string(subnet) + ".1";
    b.ip = "10.0." + std::to_string(subnet) + ".2";
  } else {  // the generator's link
    a.ip = "198.18.0.2";
    b.ip = "198.18.0.1";
  }
  for (Iface* i : {&a, &b}) {
    i->ifindex = ifindex_in(i->ns, i->name);
    if (i->node[0] == 'r') nets_.at(i->node).ip("addr add " + i->ip + "/24 dev " + i->name);
  }
  links_.emplace_back(a, b);
  *a_out = a;
  *b_out = b;
}

void Topo::build() {
  std::vector<std::string> nodes = {"gen", "r1"};
  if (spec_.kind == Kind::Gpe) nodes.push_back("r2");
  const int nvnf = spec_.kind == Kind::GenOnly ? 0 : spec_.n;
  for (int k = 1; k <= nvnf; ++k) nodes.push_back("vnf" + std::to_string(k));
  const bool has_sink = spec_.kind != Kind::GenOnly && spec_.kind != Kind::Push;
  if (has_sink) nodes.push_back("sink");
  for (const auto& n : nodes) {
    auto [it, _] = nets_.emplace(n, test::Netns("e2e-" + n));
    it->second.disable_ipv6();
    if (n[0] == 'r')
      it->second.exec(
          "sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 "
          "net.ipv4.conf.all.accept_local=1 net.ipv4.conf.all.send_redirects=0 "
          "net.ipv4.conf.default.send_redirects=0");
  }

  link("gen", "g0", "r1", "r-in", &gen_if_, &r_in_, -1);
  if (spec_.kind == Kind::GenOnly) {
    receiver_ = std::make_unique<BenchObj>(r_in_.ns, true);
    receiver_->attach("e2e_vnf", r_in_);
    mode_ = Mode::Receiver;
    mode_set_ = true;
  } else {
    int subnet = 1;
    const std::string vr = spec_.kind == Kind::Gpe ? "r2" : "r1";  // the router of the VNFs
    Iface prev_in = r_in_;
    std::string prev_router = "r1";
    if (spec_.kind == Kind::Gpe) {
      Iface r1x, r2x;
      link("r1", "r-x", "r2", "r-x", &r1x, &r2x, subnet++);
      steps_.push_back({"r1", r_in_, r1x, r2x});
      prev_in = r2x;
      prev_router = "r2";
    }
    for (int k = 1; k <= nvnf; ++k) {
      Iface rv, v;
      const std::string vn = "vnf" + std::to_string(k);
      link(vr, "r-v" + std::to_string(k), vn, "v" + std::to_string(k), &rv, &v, subnet++);
      steps_.push_back({vr, prev_in, rv, v});
      prev_in = rv;
      const bool is_receiver = spec_.kind == Kind::Push;
      auto obj = std::make_unique<BenchObj>(v.ns, is_receiver);
      obj->attach("e2e_vnf", v);
      if (is_receiver)
        receiver_ = std::move(obj);
      else
        vnf_objs_.push_back(std::move(obj));
    }
    if (has_sink) {
      Iface ro, s;
      link(vr, "r-out", "sink", "s0", &ro, &s, subnet++);
      steps_.push_back({vr, prev_in, ro, s});
      receiver_ = std::make_unique<BenchObj>(s.ns, true);
      receiver_->attach("e2e_vnf", s);
    }
    // static neighbours for every next hop (no ARP ever) and the routes anychain's FIB lookups
    // use (Linux forwarding uses per-ingress tables, see linux_on)
    for (const auto& st : steps_)
      nets_.at(st.router).ip("neigh replace " + st.next.ip + " lladdr " + test::mac_str(st.next.mac) + " dev " +
                             st.out.name + " nud permanent");
    if (has_sink) nets_.at(vr).ip(std::string("route add ") + kDstNet + " via " + steps_.back().next.ip);
    if (spec_.kind == Kind::Gpe) {
      nets_.at("r1").ip(std::string("addr add ") + kEndpoint1 + "/32 dev lo");
      nets_.at("r2").ip(std::string("addr add ") + kEndpoint2 + "/32 dev lo");
      nets_.at("r1").ip(std::string("route add ") + kEndpoint2 + "/32 via " + steps_[0].next.ip);
      nets_.at("r2").ip(std::string("route add ") + kEndpoint1 + "/32 via " + steps_[0].out.ip);
      nets_.at("r2").ip("neigh replace " + steps_[0].out.ip + " lladdr " + test::mac_str(steps_[0].out.mac) +
                        " dev r-x nud permanent");
    }
  }
  // A veth receives redirected frames only with NAPI on it: an XDP program, or GRO. GRO on
  // every router interface keeps NAPI there whatever the mode (Linux forwarding has no XDP).
  for (const auto& [a, b] : links_)
    for (const Iface* i : {&a, &b})
      if (i->node[0] == 'r') nets_.at(i->node).exec("ethtool -K " + i->name + " gro on >/dev/null");
  // The router's work on one CPU: its ingress NAPI threaded and that thread pinned. Frames the
  // generator redirects into g0 land in r-in's ring and wake that thread; everything the router
  // then redirects or transmits is processed in softirq on the same CPU (a veth schedules its
  // peer's NAPI on the CPU that sends), so every router, VNF and receiver step runs there.
  nets_.at("r1").exec("sh -c 'echo 1 > /sys/class/net/r-in/threaded'");
  repin_napi();
}

void Topo::repin_napi() {
  // r-in's NAPI thread is "napi/r-in-<napi id>". Another namespace (another run) may have a
  // threaded r-in too; then ours is the thread that appears when ours is turned off and on.
  auto pids = napi_threads("r-in");
  if (pids.size() != 1) {
    nets_.at("r1").exec("sh -c 'echo 0 > /sys/class/net/r-in/threaded'");
    const auto before = napi_threads("r-in");
    nets_.at("r1").exec("sh -c 'echo 1 > /sys/class/net/r-in/threaded'");
    auto after = napi_threads("r-in");
    std::vector<int> fresh;
    std::set_difference(after.begin(), after.end(), before.begin(), before.end(), std::back_inserter(fresh));
    pids = fresh;
  }
  if (pids.size() != 1)
    throw std::runtime_error("cannot find the NAPI thread of r-in (" + std::to_string(pids.size()) + " candidates)");
  napi_pid_ = pids[0];
  pin_thread(napi_pid_, router_cpu_);
}

std::vector<Iface> Topo::all_ifaces() const {
  std::vector<Iface> out;
  for (const auto& [a, b] : links_) out.push_back(a), out.push_back(b);
  return out;
}

std::vector<Iface> Topo::router_ifaces(const std::string& router) const {
  std::vector<Iface> out;
  for (const auto& [a, b] : links_)
    for (const Iface* i : {&a, &b})
      if (i->node == router) out.push_back(*i);
  return out;
}

std::vector<BenchObj*> Topo::vnfs() {
  std::vector<BenchObj*> v;
  for (auto& o : vnf_objs_) v.push_back(o.get());
  return v;
}

bool Topo::supports(Mode m) const {
  if (spec_.kind == Kind::GenOnly) return m == Mode::Receiver;
  if (m == Mode::Receiver) return false;
  if (m == Mode::Ovs || m == Mode::OvsAfxdp) return spec_.kind == Kind::Push || spec_.kind == Kind::Chain;
  return true;
}

std::vector<uint32_t> Topo::router_prog_ids() const {
  std::vector<uint32_t> ids;
  if (mode_ == Mode::Anychain)
    for (const auto& r : adp_) ids.insert(ids.end(), r.prog_ids.begin(), r.prog_ids.end());
  if (mode_ == Mode::Redirect)
    for (const auto& [_, o] : fwd_objs_) {
      auto v = o->prog_ids();
      ids.insert(ids.end(), v.begin(), v.end());
    }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

std::vector<int> Topo::router_tasks() const {
  std::vector<int> t = {napi_pid_};
  // ksoftirqd/<cpu>
  const std::string want = "ksoftirqd/" + std::to_string(router_cpu_);
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    const std::string n = e.path().filename().string();
    if (n.empty() || !isdigit(static_cast<unsigned char>(n[0]))) continue;
    std::ifstream f(e.path() / "comm");
    std::string comm;
    std::getline(f, comm);
    if (comm == want) {
      t.push_back(std::stoi(n));
      break;
    }
  }
  if (ovs_) t.push_back(ovs_->vswitchd_pid());
  return t;
}

std::vector<std::vector<std::pair<uint32_t, uint8_t>>> Topo::flow_keys() const {
  switch (spec_.kind) {
    case Kind::Push: return {{{kSpiPush, 255}}};
    case Kind::Proxy: return {{{kSpiProxy, 255}, {kSpiProxy, 254}}};
    case Kind::Gpe: return {{{kSpiGpe, 255}}, {{kSpiGpe, 255}, {kSpiGpe, 254}}};
    case Kind::Chain: {
      std::vector<std::pair<uint32_t, uint8_t>> k;
      for (int i = 0; i <= spec_.n; ++i) k.emplace_back(kSpiChain, static_cast<uint8_t>(255 - i));
      return {k};
    }
    case Kind::GenOnly: break;
  }
  return {};
}

std::string Topo::ovs_flows() const { return ovs_ ? ovs_->dump_flows() : ""; }

uint64_t Topo::fwd_passes() const {
  uint64_t n = 0;
  for (const auto& [_, o] : fwd_objs_) n += o->packets(1);
  return n;
}

std::string Topo::prog_label(uint32_t id) const {
  for (const auto& r : adp_)
    for (size_t i = 0; i < r.prog_ids.size() && i < r.ifaces.size(); ++i)
      if (r.prog_ids[i] == id) return r.ns.substr(r.ns.rfind('-') + 1) + "/" + r.ifaces[i];
  for (const auto& [router, o] : fwd_objs_)
    for (uint32_t x : o->prog_ids())
      if (x == id) return router + "/e2e_fwd";
  return "prog " + std::to_string(id);
}

// ---- modes ----

void Topo::set_mode(Mode m) {
  if (!supports(m)) throw std::runtime_error(spec_.name() + " has no " + mode_name(m) + " mode");
  if (mode_set_ && mode_ == m) return;
  clear_mode();
  switch (m) {
    case Mode::Anychain: anychain_on(); break;
    case Mode::Redirect: redirect_on(); break;
    case Mode::Linux:
      linux_on();
      pass_on();
      break;
    case Mode::Ovs:
    case Mode::OvsAfxdp: {
      std::vector<std::string> ports;
      for (const auto& st : steps_) {
        if (std::find(ports.begin(), ports.end(), st.in.name) == ports.end()) ports.push_back(st.in.name);
        if (std::find(ports.begin(), ports.end(), st.out.name) == ports.end()) ports.push_back(st.out.name);
      }
      // OVS taps the ports; the stack must not forward its own copy of each packet
      nets_.at("r1").exec("sysctl -qw net.ipv4.ip_forward=0");
      if (m == Mode::Ovs) pass_on();
      ovs_ = std::make_unique<OvsSwitch>(ovs_root_, ovs_work_, ns("r1"), router_cpu_, m == Mode::OvsAfxdp, ports);
      auto port_no = [&](const std::string& n) {
        return std::to_string(std::find(ports.begin(), ports.end(), n) - ports.begin() + 1);
      };
      const uint32_t spi = spec_.kind == Kind::Push ? kSpiPush : kSpiChain;
      std::vector<std::string> flows;
      for (size_t k = 0; k < steps_.size(); ++k) {
        const auto& st = steps_[k];
        const std::string macs = "set_field:" + test::mac_str(st.out.mac) + "->eth_src,set_field:" +
                                 test::mac_str(st.next.mac) + "->eth_dst,output:" + port_no(st.out.name);
        const bool last_hop = spec_.kind == Kind::Chain && k + 1 == steps_.size();
        if (k == 0) {
          // Ethernet off first, so that the NSH carries the IPv4 packet (next protocol 1) as
          // anychain's does; encap(nsh) on the frame itself would carry the whole frame
          flows.push_back("priority=10,in_port=" + port_no(st.in.name) +
                          ",ip,actions=decap(),encap(nsh(md_type=1)),set_field:" + std::to_string(spi) +
                          "->nsh_spi,set_field:255->nsh_si,encap(ethernet)," + macs);
        } else if (!last_hop) {
          flows.push_back("priority=10,in_port=" + port_no(st.in.name) + ",dl_type=0x894f,nsh_spi=" +
                          std::to_string(spi) + ",nsh_si=" + std::to_string(256 - static_cast<int>(k) - 1) +
                          ",actions=dec_nsh_ttl," + macs);
        } else {
          // end of the chain: Ethernet and NSH off (the packet is then bare IPv4, packet type
          // (1,0x800), matched in table 1 after the recirculation decap() implies), routed to the sink
          flows.push_back("priority=10,in_port=" + port_no(st.in.name) + ",dl_type=0x894f,nsh_spi=" +
                          std::to_string(spi) + ",nsh_si=" + std::to_string(256 - static_cast<int>(k) - 1) +
                          ",actions=decap(),decap(),resubmit(,1)");
          flows.push_back("table=1,priority=10,packet_type=(1,0x800),actions=dec_ttl,encap(ethernet)," + macs);
        }
      }
      ovs_->add_flows(flows);
      break;
    }
    case Mode::Receiver: break;
  }
  mode_ = m;
  mode_set_ = true;
  repin_napi();
}

void Topo::clear_mode() {
  if (!mode_set_) return;
  switch (mode_) {
    case Mode::Anychain:
      for (auto& r : adp_) {
        test::InNetns g(r.ns);
        for (const auto& i : r.ifaces) (void)dp::Dataplane::detach(i);
        r.ifaces.clear();
        r.prog_ids.clear();
      }
      break;
    case Mode::Redirect:
      for (auto& [_, o] : fwd_objs_) o->detach_all();
      break;
    case Mode::Linux:
      linux_off();
      pass_off();
      break;
    case Mode::Ovs:
    case Mode::OvsAfxdp:
      ovs_.reset();
      pass_off();
      // a killed vswitchd leaves its XDP programs behind: remove whatever is attached
      for (const auto& i : router_ifaces("r1")) sh("ip -n " + i.ns + " link set dev " + i.name + " xdp off 2>/dev/null");
      nets_.at("r1").exec("sysctl -qw net.ipv4.ip_forward=1");
      break;
    case Mode::Receiver: return;
  }
  mode_set_ = false;
}

void Topo::anychain_on() {
  if (adp_.empty()) {
    for (const auto& r : routers()) {
      RouterDp rd;
      rd.ns = ns(r);
      test::InNetns g(rd.ns);
      dp::Options o;
      o.pin_root = router_pin_root(rd.ns);
      o.flow_cache_entries = flow_cache_entries_;
      auto d = dp::Dataplane::open(o);
      ok(d, "open the dataplane on " + r);
      rd.dp = std::make_unique<dp::Dataplane>(std::move(*d));
      auto& p = *rd.dp;
      dp::Config cfg;
      cfg.local_endpoint = ip4(r == "r2" ? kEndpoint2 : kEndpoint1);
      ok(p.set_config(cfg), "config " + r);
      auto table = [](uint32_t inst) { return std::vector<uint32_t>(AC_WCMP_BUCKETS, inst); };
      auto local = [&](uint32_t id, const Step& st, bool aware) {
        dp::Instance i{.id = id, .local = true, .nsh_aware = aware};
        i.ifindex = static_cast<uint32_t>(st.out.ifindex);
        i.mac = st.next.mac;
        i.if_mac = st.out.mac;
        i.service_id = id;
        ok(p.set_instance(i), "instance " + std::to_string(id));
        ok(p.set_interface(i.ifindex, AC_IF_VNF, id, st.out.mac), "interface " + st.out.name);
        ok(p.set_wcmp_table(id, table(id)), "wcmp " + std::to_string(id));
      };
      uint32_t spi = 0;
      switch (spec_.kind) {
        case Kind::Push:
          spi = kSpiPush;
          local(1, steps_[0], true);
          ok(p.set_path(spi, 255, 1, false), "path");
          break;
        case Kind::Proxy:
          spi = kSpiProxy;
          local(1, steps_[0], false);
          ok(p.set_path(spi, 255, 1, false), "path");
          ok(p.set_path(spi, 254, 0, true), "path");
          break;
        case Kind::Gpe:
          spi = kSpiGpe;
          if (r == "r1") {
            dp::Instance i{.id = 1, .local = false};
            i.endpoint = ip4(kEndpoint2);
            i.vni = 1;
            i.service_id = 1;
            ok(p.set_instance(i), "remote instance");
            ok(p.set_wcmp_table(1, table(1)), "wcmp");
          } else {
            local(1, steps_[1], true);
          }
          ok(p.set_path(spi, 255, 1, false), "path");
          ok(p.set_path(spi, 254, 0, true), "path");
          break;
        case Kind::Chain:
          spi = kSpiChain;
          for (int k = 1; k <= spec_.n; ++k) {
            local(static_cast<uint32_t>(k), steps_[static_cast<size_t>(k - 1)], true);
            ok(p.set_path(spi, static_cast<uint8_t>(256 - k), static_cast<uint32_t>(k), false), "path");
          }
          ok(p.set_path(spi, static_cast<uint8_t>(255 - spec_.n), 0, true), "path");
          break;
        case Kind::GenOnly: break;
      }
      if (r == "r1") {
        std::vector<dp::PolicyRule> rules(1);
        rules[0].dst = *dp::parse_prefix(kDstNet);
        rules[0].proto = IPPROTO_UDP;
        rules[0].spi = spi;
        ok(p.set_policies(rules), "policies");
        ok(p.set_interface(static_cast<uint32_t>(r_in_.ifindex), AC_IF_CLASSIFY, 0, r_in_.mac), "interface r-in");
      }
      adp_.push_back(std::move(rd));
    }
  }
  for (auto& rd : adp_) {
    const std::string node = rd.ns.substr(rd.ns.rfind('-') + 1);
    test::InNetns g(rd.ns);
    for (const auto& i : router_ifaces(node)) {
      auto a = rd.dp->attach(i.name, dp::XdpMode::Native);
      ok(a, "attach anychain to " + i.name + " on " + node);
      if (a->mode != dp::XdpMode::Native) throw std::runtime_error(i.name + ": anychain not in native mode");
      rd.ifaces.push_back(i.name);
      rd.prog_ids.push_back(a->prog_id);
    }
  }
}

void Topo::redirect_on() {
  for (const auto& r : routers()) {
    auto& obj = fwd_objs_[r];
    if (!obj) obj = std::make_unique<BenchObj>(ns(r), false);
    for (const auto& st : steps_) {
      if (st.router != r) continue;
      if (st.in.ifindex >= 4096) throw std::runtime_error("ifindex of " + st.in.name + " beyond the forwarder's table");
      struct e2e_fwd_entry e {};
      e.ifindex = static_cast<uint32_t>(st.out.ifindex);
      std::memcpy(e.dmac, st.next.mac.data(), 6);
      std::memcpy(e.smac, st.out.mac.data(), 6);
      const uint32_t key = static_cast<uint32_t>(st.in.ifindex);
      if (bpf_map_update_elem(bpf_map__fd(obj->skel()->maps.e2e_fwd_table), &key, &e, BPF_ANY))
        throw std::runtime_error("fill the forwarder's table");
    }
    for (const auto& i : router_ifaces(r)) obj->attach("e2e_fwd", i);
  }
}

void Topo::pass_on() {
  for (const auto& [a, b] : links_) {
    if (a.node[0] != 'r' || b.node.rfind("vnf", 0) != 0) continue;
    auto& obj = pass_objs_[a.node];
    if (!obj) obj = std::make_unique<BenchObj>(a.ns, false);
    obj->attach("e2e_pass", a);
  }
}

void Topo::pass_off() {
  for (auto& [_, o] : pass_objs_) o->detach_all();
}

// Linux forwarding along exactly the steps: one routing table per step, chosen by the ingress
// interface (the VNF sends the packet back on the interface it came out of).
void Topo::linux_on() {
  for (size_t k = 0; k < steps_.size(); ++k) {
    const auto& st = steps_[k];
    const std::string t = std::to_string(100 + k);
    nets_.at(st.router).ip("rule add iif " + st.in.name + " lookup " + t + " pref " + t);
    nets_.at(st.router).ip(std::string("route add ") + kDstNet + " via " + st.next.ip + " dev " + st.out.name +
                           " table " + t);
  }
}

void Topo::linux_off() {
  for (size_t k = 0; k < steps_.size(); ++k) {
    const auto& st = steps_[k];
    const std::string t = std::to_string(100 + k);
    sh("ip -n " + ns(st.router) + " rule del pref " + t + " 2>/dev/null");
    sh("ip -n " + ns(st.router) + " route flush table " + t + " 2>/dev/null");
  }
}

}  // namespace anychain::bench
