#include "ospf/lsa.h"

#include <fmt/format.h>

namespace anychain::ospf {

Result<LsaHeader> parse_lsa_header(ByteView lsa) {
  Reader r(lsa);
  LsaHeader h;
  auto age = r.u16();
  auto opt = r.u8();
  auto type = r.u8();
  auto id = r.u32();
  auto adv = r.u32();
  auto seq = r.u32();
  auto ck = r.u16();
  auto len = r.u16();
  if (!len) return fail(fmt::format("LSA truncated: {} bytes, header needs 20", lsa.size()), EBADMSG);
  h.age = *age, h.options = *opt, h.type = *type, h.id = *id, h.adv_router = *adv;
  h.seq = static_cast<std::int32_t>(*seq), h.checksum = *ck, h.length = *len;
  if (h.length < kLsaHeaderSize) return fail(fmt::format("LSA length field {} < 20", h.length), EBADMSG);
  if (h.length != lsa.size())
    return fail(fmt::format("LSA length field {} != {} bytes present", h.length, lsa.size()), EBADMSG);
  if (h.length > kMaxLsaSize) return fail(fmt::format("LSA of {} bytes over 1500", h.length), EMSGSIZE);
  return h;
}

void put_lsa_header(Writer& w, const LsaHeader& h) {
  w.u16(h.age);
  w.u8(h.options);
  w.u8(h.type);
  w.u32(h.id);
  w.u32(h.adv_router);
  w.u32(static_cast<std::uint32_t>(h.seq));
  w.u16(h.checksum);
  w.u16(h.length);
}

Result<RouterLsa> parse_router_lsa(ByteView body) {
  Reader r(body);
  RouterLsa out;
  auto flags = r.u8();
  auto zero = r.u8();
  auto n = r.u16();
  if (!flags || !zero || !n) return fail("router-LSA body truncated before link count", EBADMSG);
  out.flags = *flags;
  out.links.reserve(std::min<std::size_t>(*n, body.size() / 12));
  for (unsigned i = 0; i < *n; ++i) {
    RouterLink l;
    auto id = r.u32();
    auto data = r.u32();
    auto type = r.u8();
    auto ntos = r.u8();
    auto metric = r.u16();
    if (!metric) return fail(fmt::format("router-LSA link {} of {} truncated", i, *n), EBADMSG);
    if (*type < 1 || *type > 4) return fail(fmt::format("router-LSA link {} has type {}", i, *type), EBADMSG);
    l.link_id = *id, l.link_data = *data, l.type = static_cast<LinkType>(*type), l.metric = *metric;
    for (unsigned t = 0; t < *ntos; ++t) {
      auto tos = r.u32();
      if (!tos) return fail(fmt::format("router-LSA link {} TOS entry {} truncated", i, t), EBADMSG);
      l.tos_entries.push_back(*tos);
    }
    out.links.push_back(std::move(l));
  }
  if (!r.empty()) return fail(fmt::format("router-LSA has {} trailing bytes", r.remaining()), EBADMSG);
  return out;
}

Result<NetworkLsa> parse_network_lsa(ByteView body) {
  Reader r(body);
  NetworkLsa out;
  auto mask = r.u32();
  if (!mask) return fail("network-LSA body truncated before mask", EBADMSG);
  out.mask = *mask;
  if (r.remaining() % 4 != 0) return fail("network-LSA router list not a multiple of 4", EBADMSG);
  while (!r.empty()) out.routers.push_back(*r.u32());
  return out;
}

namespace {
Result<Bytes> finish(Bytes out) {
  if (out.size() > kMaxLsaSize) return fail(fmt::format("LSA of {} bytes over 1500", out.size()), EMSGSIZE);
  Writer w(out);
  w.put_u16_at(18, static_cast<std::uint16_t>(out.size()));
  return out;
}
}  // namespace

Result<Bytes> build_router_lsa(LsaHeader h, const RouterLsa& body) {
  if (body.links.size() > 0xFFFF) return fail("too many router links", EINVAL);
  Bytes out;
  Writer w(out);
  h.type = static_cast<std::uint8_t>(LsaType::Router);
  put_lsa_header(w, h);
  w.u8(body.flags);
  w.u8(0);
  w.u16(static_cast<std::uint16_t>(body.links.size()));
  for (const auto& l : body.links) {
    if (l.tos_entries.size() > 255) return fail("too many TOS entries", EINVAL);
    w.u32(l.link_id);
    w.u32(l.link_data);
    w.u8(static_cast<std::uint8_t>(l.type));
    w.u8(static_cast<std::uint8_t>(l.tos_entries.size()));
    w.u16(l.metric);
    for (auto t : l.tos_entries) w.u32(t);
    if (out.size() > kMaxLsaSize) break;  // finish() reports it
  }
  return finish(std::move(out));
}

Result<Bytes> build_network_lsa(LsaHeader h, const NetworkLsa& body) {
  Bytes out;
  Writer w(out);
  h.type = static_cast<std::uint8_t>(LsaType::Network);
  put_lsa_header(w, h);
  w.u32(body.mask);
  for (auto rtr : body.routers) w.u32(rtr);
  return finish(std::move(out));
}

Result<Bytes> build_opaque_lsa(LsaHeader h, ByteView opaque_data) {
  if (opaque_data.size() > kMaxOpaqueData)
    return fail(fmt::format("opaque data of {} bytes over {}", opaque_data.size(), kMaxOpaqueData), EMSGSIZE);
  if (h.type != 9 && h.type != 10 && h.type != 11) return fail(fmt::format("LSA type {} is not opaque", h.type), EINVAL);
  Bytes out;
  Writer w(out);
  put_lsa_header(w, h);
  w.bytes(opaque_data);
  return finish(std::move(out));
}

// ---- VNF payload ------------------------------------------------------------------------
namespace {
void put_tlv_u32(Writer& w, VnfTlv t, std::uint32_t v) {
  w.u16(static_cast<std::uint16_t>(t));
  w.u16(4);
  w.u32(v);
}
}  // namespace

Result<Bytes> encode_vnf_payload(const VnfInfo& v) {
  if (v.service_len > 32) return fail(fmt::format("service prefix length {} > 32", v.service_len), EINVAL);
  if (v.incarnation > kVnfMaxIncarnation)
    return fail(fmt::format("FTC incarnation {} > {}", v.incarnation, kVnfMaxIncarnation), EINVAL);
  if (v.incarnation != 0 && !v.ftc())
    return fail(fmt::format("FTC incarnation {} on an instance without the FTC flag", v.incarnation), EINVAL);
  Bytes out;
  Writer w(out);
  w.u8(kVnfPayloadVersion);
  w.zeros(3);
  w.u16(static_cast<std::uint16_t>(VnfTlv::ServicePrefix));
  w.u16(5);
  w.u32(v.service_addr);
  w.u8(v.service_len);
  w.zeros(3);  // pad value to 8
  put_tlv_u32(w, VnfTlv::InstanceId, v.instance_id);
  put_tlv_u32(w, VnfTlv::Cost, v.cost);
  put_tlv_u32(w, VnfTlv::Capacity, v.capacity);
  put_tlv_u32(w, VnfTlv::NshEndpoint, v.nsh_endpoint);
  put_tlv_u32(w, VnfTlv::Flags, v.flags);
  if (v.ftc()) put_tlv_u32(w, VnfTlv::Incarnation, v.incarnation);
  if (out.size() > kMaxOpaqueData) return fail("VNF payload over 1480 bytes", EMSGSIZE);
  return out;
}

Result<VnfInfo> parse_vnf_payload(ByteView data) {
  Reader r(data);
  auto version = r.u8();
  if (!version) return fail("VNF payload empty", EBADMSG);
  if (*version != kVnfPayloadVersion)
    return fail(fmt::format("VNF payload version {} unsupported", *version), EPROTONOSUPPORT);
  if (!r.skip(3)) return fail("VNF payload truncated in version word", EBADMSG);
  if (data.size() > kMaxOpaqueData) return fail("VNF payload over 1480 bytes", EMSGSIZE);
  VnfInfo v;
  std::uint32_t seen = 0;
  while (!r.empty()) {
    auto type = r.u16();
    auto len = r.u16();
    if (!type || !len) return fail(fmt::format("TLV header truncated at offset {}", r.pos()), EBADMSG);
    std::size_t padded = (std::size_t{*len} + 3) & ~std::size_t{3};
    auto value = r.take(*len);
    if (!value || !r.skip(padded - *len))
      return fail(fmt::format("TLV {} length {} runs past the payload", *type, *len), EBADMSG);
    if (*type == 0 || *type > static_cast<std::uint16_t>(VnfTlv::Incarnation)) continue;  // unknown: skip
    std::uint32_t bit = 1u << *type;
    if (seen & bit) return fail(fmt::format("duplicate TLV {}", *type), EBADMSG);
    seen |= bit;
    Reader vr(*value);
    auto t = static_cast<VnfTlv>(*type);
    if (t == VnfTlv::ServicePrefix) {
      if (*len != 5) return fail(fmt::format("service prefix TLV length {} != 5", *len), EBADMSG);
      v.service_addr = *vr.u32();
      v.service_len = *vr.u8();
      if (v.service_len > 32) return fail(fmt::format("service prefix length {} > 32", v.service_len), EBADMSG);
      continue;
    }
    if (*len != 4) return fail(fmt::format("TLV {} length {} != 4", *type, *len), EBADMSG);
    std::uint32_t x = *vr.u32();
    switch (t) {
      case VnfTlv::InstanceId: v.instance_id = x; break;
      case VnfTlv::Cost: v.cost = x; break;
      case VnfTlv::Capacity: v.capacity = x; break;
      case VnfTlv::NshEndpoint: v.nsh_endpoint = x; break;
      case VnfTlv::Flags: v.flags = x; break;
      case VnfTlv::Incarnation:
        if (x > kVnfMaxIncarnation)
          return fail(fmt::format("FTC incarnation {} > {}", x, kVnfMaxIncarnation), EBADMSG);
        v.incarnation = x;
        break;
      case VnfTlv::ServicePrefix: break;
    }
  }
  for (auto need : {VnfTlv::ServicePrefix, VnfTlv::InstanceId, VnfTlv::Cost, VnfTlv::NshEndpoint}) {
    if (!(seen & (1u << static_cast<unsigned>(need))))
      return fail(fmt::format("mandatory TLV {} missing", static_cast<unsigned>(need)), EBADMSG);
  }
  const bool has_inc = seen & (1u << static_cast<unsigned>(VnfTlv::Incarnation));
  if (v.ftc() && !has_inc) return fail("FTC flag without the incarnation TLV 7", EBADMSG);
  if (!v.ftc() && has_inc) return fail("incarnation TLV 7 without the FTC flag", EBADMSG);
  return v;
}

Result<Bytes> build_vnf_lsa(const VnfInfo& v, std::uint8_t opaque_type, std::uint32_t adv_router) {
  if (v.instance_id > 0xFFFFFF) return fail(fmt::format("instance id {} over 24 bits", v.instance_id), EINVAL);
  auto payload = encode_vnf_payload(v);
  if (!payload) return unexpected(payload.error());
  LsaHeader h;
  h.type = static_cast<std::uint8_t>(LsaType::OpaqueArea);
  h.id = opaque_lsid(opaque_type, v.instance_id);
  h.adv_router = adv_router;
  return build_opaque_lsa(h, *payload);
}

}  // namespace anychain::ospf
