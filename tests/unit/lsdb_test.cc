#include "ospf/lsdb.h"

#include <gtest/gtest.h>

using namespace anychain::ospf;

namespace {
Bytes network_lsa(std::int32_t seq, std::uint16_t age, std::vector<std::uint32_t> routers) {
  LsaHeader h;
  h.age = age;
  h.id = 0x0a000001;
  h.adv_router = 0x01010101;
  h.seq = seq;
  return *build_network_lsa(h, NetworkLsa{0xffffff00, std::move(routers)});
}
const LsaKey kKey{0, 2, 0x0a000001, 0x01010101};
}  // namespace

TEST(Lsdb, NewestSequenceWins) {
  Lsdb db;
  EXPECT_EQ(*db.apply_update(0, network_lsa(5, 1, {1, 2}), false, 1), LsdbChange::Added);
  EXPECT_EQ(*db.apply_update(0, network_lsa(4, 1, {1}), false, 1), LsdbChange::None);
  EXPECT_EQ(db.find(kKey)->hdr.seq, 5);
  EXPECT_EQ(*db.apply_update(0, network_lsa(6, 1, {1}), false, 1), LsdbChange::Updated);
  EXPECT_EQ(db.find(kKey)->hdr.seq, 6);
  EXPECT_EQ(*db.apply_update(0, network_lsa(6, 9, {1}), false, 1), LsdbChange::None) << "same content";
  // Negative sequence numbers (0x8000xxxx) are older than positive ones.
  EXPECT_EQ(*db.apply_update(0, network_lsa(static_cast<std::int32_t>(0x80000001u), 1, {1}), false, 1),
            LsdbChange::None);
  EXPECT_EQ(db.size(), 1u);
  // Other areas are other keys.
  EXPECT_EQ(*db.apply_update(1, network_lsa(1, 1, {1}), false, 1), LsdbChange::Added);
  EXPECT_EQ(db.size(), 2u);
}

TEST(Lsdb, MaxAgeRemovesAndIsNotStored) {
  Lsdb db;
  EXPECT_EQ(*db.apply_update(0, network_lsa(5, kMaxAge, {1}), false, 1), LsdbChange::None);
  EXPECT_EQ(db.size(), 0u);
  db.apply_update(0, network_lsa(5, 1, {1}), false, 1);
  EXPECT_EQ(*db.apply_update(0, network_lsa(6, kMaxAge, {1}), false, 1), LsdbChange::Removed);
  EXPECT_EQ(db.size(), 0u);
}

TEST(Lsdb, DeleteRemovesUnlessStoredIsNewer) {
  Lsdb db;
  db.apply_update(0, network_lsa(5, 1, {1}), false, 1);
  EXPECT_EQ(*db.apply_delete(0, network_lsa(4, 1, {1})), LsdbChange::None);
  EXPECT_EQ(*db.apply_delete(0, network_lsa(5, 1, {1})), LsdbChange::Removed);
  EXPECT_EQ(*db.apply_delete(0, network_lsa(5, 1, {1})), LsdbChange::None);
}

TEST(Lsdb, MalformedRejected) {
  Lsdb db;
  Bytes b = network_lsa(5, 1, {1});
  b[19] += 1;
  EXPECT_FALSE(db.apply_update(0, b, false, 1));
  EXPECT_FALSE(db.apply_update(0, ByteView(b).first(10), false, 1));
  EXPECT_EQ(db.size(), 0u);
}

TEST(Lsdb, SweepDropsUnconfirmedEntries) {
  Lsdb db;
  db.apply_update(0, network_lsa(5, 1, {1}), false, 1);
  db.apply_update(1, network_lsa(5, 1, {1}), false, 1);
  db.apply_update(0, network_lsa(5, 1, {1}), false, 2);  // confirmed by generation 2's dump
  EXPECT_EQ(db.sweep(2), 1u);
  EXPECT_EQ(db.size(), 1u);
  EXPECT_NE(db.find(kKey), nullptr);
}
