#include "common/fixture_node.h"

#include <arpa/inet.h>
#include <net/if.h>

#include <stdexcept>

#include "common/netns.h"

namespace anychain::test {

namespace dp = anychain::dataplane;

void build_fixture_node() {
  auto pair = [](const std::string& a, const Mac& ma, const std::string& b, const Mac& mb) {
    veth({"", a, mac_str(ma)}, {"", b, mac_str(mb)});
  };
  pair("src0", kSrc0, "src0p", kSrcHost);
  pair("vnf0", kVnf0Host, "vnf0p", kVnf0Peer);
  pair("vnf1", kVnf1Host, "vnf1p", kVnf1Peer);
  pair("core0", kCore0, "core0p", kCore0Peer);
  must("ip addr add 192.0.2.1/32 dev lo");
  must("ip addr add 10.0.0.1/24 dev core0 && ip -6 addr add 2001:db8:1::1/64 dev core0 nodad");
  must("ip neigh replace 10.0.0.2 lladdr " + mac_str(kCore0Peer) + " dev core0 nud permanent");
  must("ip -6 neigh replace 2001:db8:1::2 lladdr " + mac_str(kCore0Peer) + " dev core0 nud permanent");
  must("ip route add 192.0.2.2/32 via 10.0.0.2 && ip route add 192.0.2.3/32 via 10.0.0.3");
  must("ip route add 203.0.113.0/24 via 10.0.0.2 && ip route add 198.18.0.0/24 via 10.0.0.3");
  must("ip -6 route add 2001:db8:99::/64 via 2001:db8:1::2");
  must("sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1");
}

std::vector<uint32_t> table_of(uint32_t instance) { return std::vector<uint32_t>(AC_WCMP_BUCKETS, instance); }

void program_fixture_node(dp::Dataplane& p) {
  auto ok = [](const auto& r, const char* what) {
    if (!r) throw std::runtime_error(std::string(what) + ": " + r.error().str());
  };
  auto ifindex = [](const char* name) { return static_cast<uint32_t>(if_nametoindex(name)); };
  // every instance names its service, as the daemon writes them: a flow's shared placement
  // (ac_affinity) is valid only for an instance of the service it was made for
  dp::Config cfg;  // defaults: 60 s flow timeout, 1 s next-hop cache TTL, NSH TTL 63
  inet_pton(AF_INET, kLocalEndpoint, &cfg.local_endpoint);
  ok(p.set_config(cfg), "config");
  // every interface the program runs on, as attach() describes them: their MACs, and roles
  ok(p.set_interface(ifindex("src0"), AC_IF_CLASSIFY, 0, kSrc0), "iface src0");
  ok(p.set_interface(ifindex("vnf1"), AC_IF_VNF, kInstProxy, kVnf1Host), "iface vnf1");
  ok(p.set_interface(ifindex("vnf0"), 0, 0, kVnf0Host), "iface vnf0");
  ok(p.set_interface(ifindex("core0"), 0, 0, kCore0), "iface core0");
  dp::Instance local{.id = kInstLocal, .local = true, .nsh_aware = true, .ifindex = ifindex("vnf0"),
                     .mac = kVnf0Peer, .if_mac = kVnf0Host, .service_id = kSvcLocal};
  ok(p.set_instance(local), "instance local");
  dp::Instance remote{.id = kInstRemote, .local = false, .service_id = kSvcRemote};
  inet_pton(AF_INET, kRemoteEndpoint, &remote.endpoint);
  remote.vni = 7;
  ok(p.set_instance(remote), "instance remote");
  dp::Instance proxied{.id = kInstProxy, .local = true, .nsh_aware = false, .ifindex = ifindex("vnf1"),
                       .mac = kVnf1Peer, .if_mac = kVnf1Host, .service_id = kSvcProxy};
  ok(p.set_instance(proxied), "instance proxied");
  dp::Instance noneigh{.id = kInstNoNeigh, .local = false, .service_id = kSvcNoNeigh};
  inet_pton(AF_INET, kUnresolvedEndpoint, &noneigh.endpoint);
  ok(p.set_instance(noneigh), "instance no-neigh");
  ok(p.set_wcmp_table(kSvcLocal, table_of(kInstLocal)), "wcmp 1");
  ok(p.set_wcmp_table(kSvcRemote, table_of(kInstRemote)), "wcmp 2");
  ok(p.set_wcmp_table(kSvcProxy, table_of(kInstProxy)), "wcmp 3");
  ok(p.set_wcmp_table(kSvcNoNeigh, table_of(kInstNoNeigh)), "wcmp 4");
  // chain 100: local NSH-aware VNF, then a remote instance, then the end
  ok(p.set_path(100, 255, kSvcLocal, false), "path 100:255");
  ok(p.set_path(100, 254, kSvcRemote, false), "path 100:254");
  ok(p.set_path(100, 253, 0, true), "path 100:253");
  // chain 200: proxied VNF, then the end
  ok(p.set_path(200, 255, kSvcProxy, false), "path 200:255");
  ok(p.set_path(200, 254, 0, true), "path 200:254");
  // chain 300: a remote instance whose next hop is unresolved
  ok(p.set_path(300, 255, kSvcNoNeigh, false), "path 300:255");
}

}  // namespace anychain::test
