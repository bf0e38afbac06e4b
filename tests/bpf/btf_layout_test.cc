// Structs shared by BPF and C++ are defined once in include/anychain/; this test checks that
// the compiled BPF object (its BTF) and the C++ compiler agree on every size and offset.
#include <bpf/btf.h>
#include <gtest/gtest.h>

#include <cstddef>
#include <string>
#include <vector>

#include "anychain/flow_hash.h"
#include "anychain/ftc.h"
#include "anychain/maps.h"
#include "anychain/nsh.h"
#include "anychain/slowpath.h"

namespace {

struct Field {
  std::string name;
  size_t offset;
};
struct Layout {
  std::string name;
  size_t size;
  std::vector<Field> fields;
  friend void PrintTo(const Layout& l, std::ostream* os) { *os << "struct " << l.name; }
};

#define F(S, M) Field{#M, offsetof(S, M)}

std::vector<Layout> layouts() {
  return {
      {"ac_config", sizeof(ac_config),
       {F(ac_config, local_endpoint), F(ac_config, flags), F(ac_config, policies), F(ac_config, gpe_port),
        F(ac_config, default_ttl), F(ac_config, pad), F(ac_config, flow_set_mask), F(ac_config, path_epoch),
        F(ac_config, flow_timeout_jiffies), F(ac_config, nexthop_ttl_jiffies), F(ac_config, slow_ifindex),
        F(ac_config, state_port), F(ac_config, fib_gen)}},
      {"ac_iface", sizeof(ac_iface), {F(ac_iface, flags), F(ac_iface, instance_id), F(ac_iface, mac), F(ac_iface, pad)}},
      {"ac_policy", sizeof(ac_policy),
       {F(ac_policy, src), F(ac_policy, dst), F(ac_policy, src_mask), F(ac_policy, dst_mask), F(ac_policy, family), F(ac_policy, ftc_f), F(ac_policy, pad),
        F(ac_policy, proto), F(ac_policy, sport_lo), F(ac_policy, sport_hi), F(ac_policy, dport_lo),
        F(ac_policy, dport_hi), F(ac_policy, spi), F(ac_policy, flags)}},
      {"ac_policy_bank", sizeof(ac_policy_bank), {F(ac_policy_bank, rule)}},
      {"ac_path", sizeof(ac_path), {F(ac_path, service_id), F(ac_path, flags), F(ac_path, stats_idx)}},
      {"ac_instance", sizeof(ac_instance),
       {F(ac_instance, ifindex), F(ac_instance, endpoint), F(ac_instance, mac), F(ac_instance, flags),
        F(ac_instance, pad), F(ac_instance, generation), F(ac_instance, vni), F(ac_instance, if_mac),
        F(ac_instance, service_id), F(ac_instance, mtu), F(ac_instance, pad2)}},
      {"ac_affinity_key", sizeof(ac_affinity_key), {F(ac_affinity_key, spi_si), F(ac_affinity_key, hash)}},
      {"ac_affinity", sizeof(ac_affinity), {F(ac_affinity, pick)}},
      {"ac_flow", sizeof(ac_flow),
       {F(ac_flow, last_seen), F(ac_flow, spi_si), F(ac_flow, hash), F(ac_flow, instance_id),
        F(ac_flow, generation), F(ac_flow, path_epoch), F(ac_flow, service_id), F(ac_flow, path_slot)}},
      {"ac_flow_set", sizeof(ac_flow_set), {F(ac_flow_set, way)}},
      {"ac_nexthop", sizeof(ac_nexthop),
       {F(ac_nexthop, expires), F(ac_nexthop, instance_id), F(ac_nexthop, generation), F(ac_nexthop, in_ifindex),
        F(ac_nexthop, ifindex), F(ac_nexthop, saddr), F(ac_nexthop, smac), F(ac_nexthop, dmac), F(ac_nexthop, mtu),
        F(ac_nexthop, fib_gen), F(ac_nexthop, pad2)}},
      {"ac_lasthop", sizeof(ac_lasthop),
       {F(ac_lasthop, expires), F(ac_lasthop, src), F(ac_lasthop, dst), F(ac_lasthop, in_ifindex),
        F(ac_lasthop, ifindex), F(ac_lasthop, smac), F(ac_lasthop, dmac), F(ac_lasthop, mtu), F(ac_lasthop, family),
        F(ac_lasthop, tos), F(ac_lasthop, l4_protocol), F(ac_lasthop, pad),
        F(ac_lasthop, fib_gen), F(ac_lasthop, pad2)}},
      {"ac_proxy_key", sizeof(ac_proxy_key), {F(ac_proxy_key, ifindex), F(ac_proxy_key, hash)}},
      {"ac_proxy_entry", sizeof(ac_proxy_entry),
       {F(ac_proxy_entry, nsh), F(ac_proxy_entry, len), F(ac_proxy_entry, pad)}},
      {"ac_counter", sizeof(ac_counter), {F(ac_counter, packets), F(ac_counter, bytes)}},
      {"ac_ftc_pending_key", sizeof(ac_ftc_pending_key), {F(ac_ftc_pending_key, spi), F(ac_ftc_pending_key, hash)}},
      {"ac_ftc_pending", sizeof(ac_ftc_pending),
       {F(ac_ftc_pending, len), F(ac_ftc_pending, pad), F(ac_ftc_pending, tlvs)}},
      {"ac_ftc_staged", sizeof(ac_ftc_staged), {F(ac_ftc_staged, len), F(ac_ftc_staged, tlvs)}},
      {"ac_ftc_egress_key", sizeof(ac_ftc_egress_key),
       {F(ac_ftc_egress_key, ifindex), F(ac_ftc_egress_key, spi), F(ac_ftc_egress_key, hash)}},
      {"ac_ftc_egress", sizeof(ac_ftc_egress),
       {F(ac_ftc_egress, slow), F(ac_ftc_egress, n), F(ac_ftc_egress, mbox), F(ac_ftc_egress, seq)}},
      {"ac_tuple", sizeof(ac_tuple),
       {F(ac_tuple, src), F(ac_tuple, dst), F(ac_tuple, sport), F(ac_tuple, dport), F(ac_tuple, proto),
        F(ac_tuple, family), F(ac_tuple, pad)}},
      {"ac_nsh_base", sizeof(ac_nsh_base),
       {F(ac_nsh_base, ver_flags_ttl_len), F(ac_nsh_base, md_type), F(ac_nsh_base, next_proto)}},
      {"ac_nsh_sp", sizeof(ac_nsh_sp), {F(ac_nsh_sp, spi_si)}},
      {"ac_nsh_md1", sizeof(ac_nsh_md1), {F(ac_nsh_md1, ctx)}},
      {"ac_nsh_tlv", sizeof(ac_nsh_tlv),
       {F(ac_nsh_tlv, md_class), F(ac_nsh_tlv, type), F(ac_nsh_tlv, len)}},
      {"ac_vxlan_gpe", sizeof(ac_vxlan_gpe),
       {F(ac_vxlan_gpe, flags), F(ac_vxlan_gpe, reserved), F(ac_vxlan_gpe, next_proto), F(ac_vxlan_gpe, vni_res)}},
      {"ac_slow_hdr", sizeof(ac_slow_hdr),
       {F(ac_slow_hdr, version), F(ac_slow_hdr, reason), F(ac_slow_hdr, mtu), F(ac_slow_hdr, to_ifindex),
        F(ac_slow_hdr, inner_off), F(ac_slow_hdr, pad)}},
  };
}

class BtfLayout : public ::testing::TestWithParam<Layout> {
 protected:
  static void SetUpTestSuite() {
    prog_ = btf__parse(ANYCHAIN_BPF_OBJECT, nullptr);
    ASSERT_NE(prog_, nullptr) << "cannot read BTF of " << ANYCHAIN_BPF_OBJECT;
    wire_ = btf__parse(ANYCHAIN_WIRE_OBJECT, nullptr);
    ASSERT_NE(wire_, nullptr) << "cannot read BTF of " << ANYCHAIN_WIRE_OBJECT;
  }
  static void TearDownTestSuite() {
    btf__free(prog_);
    btf__free(wire_);
  }
  static inline btf* prog_ = nullptr;  // the fast path: every map key and value type
  static inline btf* wire_ = nullptr;  // wire structs used only through packet pointers
};

TEST_P(BtfLayout, SizeAndOffsetsMatch) {
  const Layout& l = GetParam();
  btf* btf_ = prog_;
  int id = btf__find_by_name_kind(btf_, l.name.c_str(), BTF_KIND_STRUCT);
  if (id <= 0) {
    btf_ = wire_;
    id = btf__find_by_name_kind(btf_, l.name.c_str(), BTF_KIND_STRUCT);
  }
  ASSERT_GT(id, 0) << "struct " << l.name << " is in neither BPF object's BTF";
  const btf_type* t = btf__type_by_id(btf_, id);
  EXPECT_EQ(t->size, l.size) << l.name;
  ASSERT_EQ(btf_vlen(t), l.fields.size()) << l.name << ": member count differs";
  const btf_member* m = btf_members(t);
  for (size_t i = 0; i < l.fields.size(); ++i) {
    EXPECT_EQ(btf__name_by_offset(btf_, m[i].name_off), l.fields[i].name) << l.name;
    EXPECT_EQ(btf_member_bit_offset(t, static_cast<uint32_t>(i)) / 8, l.fields[i].offset)
        << l.name << "." << l.fields[i].name;
  }
}

INSTANTIATE_TEST_SUITE_P(Shared, BtfLayout, ::testing::ValuesIn(layouts()),
                         [](const auto& i) { return i.param.name; });

}  // namespace
