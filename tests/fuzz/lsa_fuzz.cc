// libFuzzer target: LSA header, router-/network-LSA bodies, VNF TLV payload, and the
// service plane built from an LSDB made of the input (a sequence of length-prefixed LSAs).
#include <cstddef>
#include <cstdint>

#include "ospf/lsa.h"
#include "ospf/lsdb.h"
#include "plane/service_plane.h"

using namespace anychain;
using namespace anychain::ospf;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ByteView in(data, size);
  (void)parse_lsa_header(in);
  if (auto r = parse_router_lsa(in)) {
    LsaHeader h;
    auto b = build_router_lsa(h, *r);
    if (b) {
      auto again = parse_router_lsa(ByteView(*b).subspan(kLsaHeaderSize));
      if (!again || !(*again == *r)) __builtin_trap();
    }
  }
  if (auto n = parse_network_lsa(in)) {
    auto b = build_network_lsa(LsaHeader{}, *n);
    if (b) {
      auto again = parse_network_lsa(ByteView(*b).subspan(kLsaHeaderSize));
      if (!again || !(*again == *n)) __builtin_trap();
    }
  }
  if (auto v = parse_vnf_payload(in)) {
    auto b = encode_vnf_payload(*v);
    if (!b) __builtin_trap();
    auto again = parse_vnf_payload(*b);
    if (!again || !(*again == *v)) __builtin_trap();
  }
  // LSDB: the input is cut into LSAs by their own length fields (bytes 18..19).
  Lsdb db;
  std::size_t off = 0;
  while (off + kLsaHeaderSize <= size) {
    std::size_t len = (std::size_t{data[off + 18]} << 8) | data[off + 19];
    if (len < kLsaHeaderSize || off + len > size) break;
    ByteView lsa = in.subspan(off, len);
    if (data[off + 1] & 1)
      (void)db.apply_delete(data[off + 2] & 1, lsa);
    else
      (void)db.apply_update(data[off + 2] & 1, lsa, false, 1);
    off += len;
  }
  plane::PlaneConfig cfg;
  cfg.self_router = db.entries().empty() ? 0 : db.entries().begin()->first.adv_router;
  (void)plane::compute_plane(db, cfg);
  return 0;
}
