// Overlapping NAT port blocks found in the replicated table (agent/state/nat_pool.*, docs/state.md
// 4.3) on the C++ twin: another instance's mapping on this NAT's external address inside its
// block is an overlap, reported once per writer; this instance's own mappings, another address
// and ports outside the block are not.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstring>

#include "anychain/nf.h"
#include "state/nat_pool.h"
#include "state/twin_store.h"

namespace anychain::state {
namespace {

const Schema& schema() {
  static const Schema s = *Schema::make({
      {.id = AC_NF_NAT_OBJ_SHARED, .kind = Kind::RegMap, .name = "nat_shared", .cells = 64,
       .key_size = sizeof(ac_nf_nat_rkey)},
      {.id = 5, .kind = Kind::GCounter, .name = "gc", .cells = 4},
  });
  return s;
}

uint32_t addr(const char* a) {
  in_addr x{};
  inet_pton(AF_INET, a, &x);
  return x.s_addr;
}

// a mapping of `writer`: external address:port for the remote 198.51.100.1:53 (a distinct key
// per external port)
void map(TwinStore& s, uint32_t writer, const char* external, uint16_t port) {
  ac_nf_nat_rkey k{};
  k.remote = addr("198.51.100.1");
  k.remote_port = htons(53);
  k.port = htons(port);
  k.proto = IPPROTO_UDP;
  ac_nf_nat_shared d{};
  d.external = addr(external);
  d.external_port = htons(port);
  d.inside = addr("10.0.0.2");
  d.inside_port = htons(40000);
  ac_reg_value v{};
  v.seen = 1;
  v.writer = writer;
  std::memcpy(v.data, &d, sizeof(d));
  ASSERT_TRUE(s.reg_insert(AC_NF_NAT_OBJ_SHARED, Key::bytes(&k, sizeof(k)), v).has_value());
}

TEST(NatPool, AnotherInstancesMappingInsideOurBlockIsAnOverlapReportedOnce) {
  TwinStore s(schema());
  NatPoolCheck c({.self = 1, .address = addr("192.0.2.10"), .lo = 20000, .hi = 29999,
                  .object = AC_NF_NAT_OBJ_SHARED});
  map(s, 1, "192.0.2.10", 20001);  // our own
  map(s, 2, "192.0.2.10", 30001);  // another instance's block
  map(s, 4, "192.0.2.11", 25000);  // another address
  auto f = c.sweep(s);
  ASSERT_TRUE(f.has_value()) << f.error().str();
  EXPECT_TRUE(f->empty());
  EXPECT_TRUE(c.overlaps().empty());

  map(s, 3, "192.0.2.10", 29999);  // inside our block: the blocks overlap
  f = c.sweep(s);
  ASSERT_TRUE(f.has_value());
  ASSERT_EQ(f->size(), 1u);
  EXPECT_EQ((*f)[0].writer, 3u);
  EXPECT_EQ((*f)[0].first_port, 29999);
  EXPECT_EQ((*f)[0].mappings, 1u);

  map(s, 3, "192.0.2.10", 20000);  // found again: not fresh, counted
  f = c.sweep(s);
  ASSERT_TRUE(f.has_value());
  EXPECT_TRUE(f->empty()) << "each writer is reported once";
  ASSERT_EQ(c.overlaps().size(), 1u);
  EXPECT_EQ(c.overlaps().at(3).mappings, 2u);
  EXPECT_EQ(c.overlaps().at(3).first_port, 20000);
  EXPECT_EQ(c.sweeps(), 3u);
}

TEST(NatPool, AnObjectThatIsNotAWinnerMapIsRefused) {
  TwinStore s(schema());
  NatPoolCheck c({.self = 1, .address = addr("192.0.2.10"), .lo = 1, .hi = 65535, .object = 5});
  auto f = c.sweep(s);
  ASSERT_FALSE(f.has_value());
  EXPECT_NE(f.error().str().find("not a winner map"), std::string::npos);
}

}  // namespace
}  // namespace anychain::state
