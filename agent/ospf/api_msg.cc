// The whole wire format of FRR's OSPF API in one file (about 500 lines on purpose): every
// message's encoder and decoder side by side, so a field is checked against ospf_api.h once.
#include "ospf/api_msg.h"

#include <algorithm>
#include <fmt/format.h>
#include <limits>
#include <type_traits>

namespace anychain::ospf::api {
namespace {

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

// Smallest and largest legal body length per message type. {0, 0} means unknown type.
struct Limits {
  std::size_t min;
  std::size_t max;
};

Limits body_limits(std::uint8_t type) {
  constexpr std::size_t kLsaHdr = 20;
  switch (static_cast<MsgType>(type)) {
    case MsgType::RegisterOpaqueType:
    case MsgType::UnregisterOpaqueType:
      return {4, 4};
    case MsgType::RegisterEvent:
    case MsgType::SyncLsdb:
      return {4, 4 + 4 * 255};
    case MsgType::OriginateRequest:
      return {kOriginatePrefix + kLsaHdr, kOriginatePrefix + kMaxLsaSize};
    case MsgType::DeleteRequest:
      return {12, 12};
    case MsgType::SyncReachable:
    case MsgType::SyncIsm:
    case MsgType::SyncNsm:
    case MsgType::SyncRouterId:
      return {4, 4};
    case MsgType::Reply:
      return {4, 4};
    case MsgType::ReadyNotify:
      return {8, 8};
    case MsgType::LsaUpdateNotify:
    case MsgType::LsaDeleteNotify:
      return {kLsaNotifyPrefix + kLsaHdr, kMaxLsaNotifyBody};
    case MsgType::NewIf:
      return {8, 8};
    case MsgType::DelIf:
      return {4, 4};
    case MsgType::IsmChange:
      return {12, 12};
    case MsgType::NsmChange:
      return {16, 16};
    case MsgType::ReachableChange:
      return {4, std::numeric_limits<std::uint16_t>::max()};
    case MsgType::RouterIdChange:
      return {4, 4};
  }
  return {0, 0};
}

void put_filter(Writer& w, const LsdbFilter& f) {
  w.u16(f.typemask);
  w.u8(static_cast<std::uint8_t>(f.origin));
  w.u8(static_cast<std::uint8_t>(f.areas.size()));
  for (auto a : f.areas) w.u32(a);
}

Result<LsdbFilter> get_filter(Reader& r) {
  LsdbFilter f;
  auto mask = r.u16();
  auto origin = r.u8();
  auto n = r.u8();
  if (!mask || !origin || !n) return fail("filter truncated", EBADMSG);
  if (*origin > 2) return fail(fmt::format("filter origin {} invalid", *origin), EBADMSG);
  f.typemask = *mask;
  f.origin = static_cast<Origin>(*origin);
  for (unsigned i = 0; i < *n; ++i) {
    auto a = r.u32();
    if (!a) return fail("filter area list truncated", EBADMSG);
    f.areas.push_back(*a);
  }
  return f;
}

Result<void> check_lsa_len(ByteView lsa) {
  // The LSA's own length field (offset 18) must match what the message carries.
  if (lsa.size() < 20) return fail("embedded LSA shorter than its header", EBADMSG);
  std::uint16_t len = static_cast<std::uint16_t>((lsa[18] << 8) | lsa[19]);
  if (len != lsa.size())
    return fail(fmt::format("embedded LSA length field {} != carried {}", len, lsa.size()), EBADMSG);
  return {};
}

Result<LsaNotifyBody> get_lsa_notify(Reader& r) {
  LsaNotifyBody b;
  auto ifaddr = r.u32();
  auto area = r.u32();
  auto self = r.u8();
  if (!ifaddr || !area || !self || !r.skip(3)) return fail("LSA notify truncated", EBADMSG);
  b.ifaddr = *ifaddr;
  b.area = *area;
  b.is_self = *self != 0;
  auto rest = r.rest();
  if (auto ok = check_lsa_len(rest); !ok) return unexpected(ok.error());
  b.lsa.assign(rest.begin(), rest.end());
  r.skip(rest.size());
  return b;
}

void put_lsa_notify(Writer& w, const LsaNotifyBody& b) {
  w.u32(b.ifaddr);
  w.u32(b.area);
  w.u8(b.is_self ? 1 : 0);
  w.zeros(3);
  w.bytes(b.lsa);
}

Result<void> encode_body(Writer& w, const Body& body) {
  return std::visit(
      Overloaded{
          [&](const RegisterOpaqueType& m) -> Result<void> {
            w.u8(m.lsa_type), w.u8(m.opaque_type), w.zeros(2);
            return {};
          },
          [&](const UnregisterOpaqueType& m) -> Result<void> {
            w.u8(m.lsa_type), w.u8(m.opaque_type), w.zeros(2);
            return {};
          },
          [&](const RegisterEvent& m) -> Result<void> {
            if (m.filter.areas.size() > 255) return fail("more than 255 areas in filter", EINVAL);
            put_filter(w, m.filter);
            return {};
          },
          [&](const SyncLsdb& m) -> Result<void> {
            if (m.filter.areas.size() > 255) return fail("more than 255 areas in filter", EINVAL);
            put_filter(w, m.filter);
            return {};
          },
          [&](const OriginateRequest& m) -> Result<void> {
            if (m.lsa.size() > kMaxLsaSize)
              return fail(fmt::format("LSA of {} bytes exceeds {}", m.lsa.size(), kMaxLsaSize), EMSGSIZE);
            if (auto ok = check_lsa_len(m.lsa); !ok) return ok;
            w.u32(m.ifaddr), w.u32(m.area), w.bytes(m.lsa);
            return {};
          },
          [&](const DeleteRequest& m) -> Result<void> {
            if (m.opaque_id > 0xFFFFFF) return fail("opaque id over 24 bits", EINVAL);
            w.u32(m.addr), w.u8(m.lsa_type), w.u8(m.opaque_type), w.u8(0), w.u8(m.flags);
            w.u32(m.opaque_id);
            return {};
          },
          [&](const SyncReachable&) -> Result<void> { return w.zeros(4), Result<void>{}; },
          [&](const SyncIsm&) -> Result<void> { return w.zeros(4), Result<void>{}; },
          [&](const SyncNsm&) -> Result<void> { return w.zeros(4), Result<void>{}; },
          [&](const SyncRouterId&) -> Result<void> { return w.zeros(4), Result<void>{}; },
          [&](const Reply& m) -> Result<void> {
            w.u8(static_cast<std::uint8_t>(m.errcode)), w.zeros(3);
            return {};
          },
          [&](const ReadyNotify& m) -> Result<void> {
            w.u8(m.lsa_type), w.u8(m.opaque_type), w.zeros(2), w.u32(m.addr);
            return {};
          },
          [&](const LsaUpdateNotify& m) -> Result<void> {
            if (m.lsa.size() > kMaxLsaSize) return fail("LSA exceeds 1500 bytes", EMSGSIZE);
            if (auto ok = check_lsa_len(m.lsa); !ok) return ok;
            put_lsa_notify(w, m);
            return {};
          },
          [&](const LsaDeleteNotify& m) -> Result<void> {
            if (m.lsa.size() > kMaxLsaSize) return fail("LSA exceeds 1500 bytes", EMSGSIZE);
            if (auto ok = check_lsa_len(m.lsa); !ok) return ok;
            put_lsa_notify(w, m);
            return {};
          },
          [&](const NewIf& m) -> Result<void> {
            w.u32(m.ifaddr), w.u32(m.area);
            return {};
          },
          [&](const DelIf& m) -> Result<void> {
            w.u32(m.ifaddr);
            return {};
          },
          [&](const IsmChange& m) -> Result<void> {
            w.u32(m.ifaddr), w.u32(m.area), w.u8(m.state), w.zeros(3);
            return {};
          },
          [&](const NsmChange& m) -> Result<void> {
            w.u32(m.ifaddr), w.u32(m.nbraddr), w.u32(m.router_id), w.u8(m.state), w.zeros(3);
            return {};
          },
          [&](const ReachableChange& m) -> Result<void> {
            if (m.added.size() > 0xFFFF || m.removed.size() > 0xFFFF ||
                4 + 4 * (m.added.size() + m.removed.size()) > 0xFFFF)
              return fail("reachable change too large", EMSGSIZE);
            w.u16(static_cast<std::uint16_t>(m.added.size()));
            w.u16(static_cast<std::uint16_t>(m.removed.size()));
            for (auto a : m.added) w.u32(a);
            for (auto a : m.removed) w.u32(a);
            return {};
          },
          [&](const RouterIdChange& m) -> Result<void> {
            w.u32(m.router_id);
            return {};
          },
      },
      body);
}

Result<Body> decode_body(std::uint8_t type, ByteView data) {
  Reader r(data);
  auto truncated = [&](const char* what) { return fail(fmt::format("{} truncated", what), EBADMSG); };
  Body out;
  switch (static_cast<MsgType>(type)) {
    case MsgType::RegisterOpaqueType:
    case MsgType::UnregisterOpaqueType: {
      auto lt = r.u8();
      auto ot = r.u8();
      if (!lt || !ot || !r.skip(2)) return truncated("register opaque type");
      if (type == 1)
        out = RegisterOpaqueType{*lt, *ot};
      else
        out = UnregisterOpaqueType{*lt, *ot};
      break;
    }
    case MsgType::RegisterEvent:
    case MsgType::SyncLsdb: {
      auto f = get_filter(r);
      if (!f) return unexpected(f.error());
      if (type == 3)
        out = RegisterEvent{std::move(*f)};
      else
        out = SyncLsdb{std::move(*f)};
      break;
    }
    case MsgType::OriginateRequest: {
      OriginateRequest m;
      auto ifaddr = r.u32();
      auto area = r.u32();
      if (!ifaddr || !area) return truncated("originate request");
      m.ifaddr = *ifaddr;
      m.area = *area;
      auto rest = r.rest();
      if (auto ok = check_lsa_len(rest); !ok) return unexpected(ok.error());
      m.lsa.assign(rest.begin(), rest.end());
      r.skip(rest.size());
      out = std::move(m);
      break;
    }
    case MsgType::DeleteRequest: {
      DeleteRequest m;
      auto addr = r.u32();
      auto lt = r.u8();
      auto ot = r.u8();
      auto pad = r.u8();
      auto flags = r.u8();
      auto id = r.u32();
      if (!addr || !lt || !ot || !pad || !flags || !id) return truncated("delete request");
      if (*id > 0xFFFFFF) return fail("delete request opaque id over 24 bits", EBADMSG);
      m.addr = *addr, m.lsa_type = *lt, m.opaque_type = *ot, m.flags = *flags, m.opaque_id = *id;
      out = m;
      break;
    }
    case MsgType::SyncReachable:
    case MsgType::SyncIsm:
    case MsgType::SyncNsm:
    case MsgType::SyncRouterId:
      if (!r.skip(4)) return truncated("sync request");
      if (type == 7)
        out = SyncReachable{};
      else if (type == 8)
        out = SyncIsm{};
      else if (type == 9)
        out = SyncNsm{};
      else
        out = SyncRouterId{};
      break;
    case MsgType::Reply: {
      auto e = r.u8();
      if (!e || !r.skip(3)) return truncated("reply");
      out = Reply{static_cast<std::int8_t>(*e)};
      break;
    }
    case MsgType::ReadyNotify: {
      auto lt = r.u8();
      auto ot = r.u8();
      bool pad = r.skip(2);
      auto addr = r.u32();
      if (!lt || !ot || !pad || !addr) return truncated("ready notify");
      out = ReadyNotify{*lt, *ot, *addr};
      break;
    }
    case MsgType::LsaUpdateNotify:
    case MsgType::LsaDeleteNotify: {
      auto b = get_lsa_notify(r);
      if (!b) return unexpected(b.error());
      if (type == 12)
        out = LsaUpdateNotify{std::move(*b)};
      else
        out = LsaDeleteNotify{std::move(*b)};
      break;
    }
    case MsgType::NewIf: {
      auto a = r.u32();
      auto b = r.u32();
      if (!a || !b) return truncated("new if");
      out = NewIf{*a, *b};
      break;
    }
    case MsgType::DelIf: {
      auto a = r.u32();
      if (!a) return truncated("del if");
      out = DelIf{*a};
      break;
    }
    case MsgType::IsmChange: {
      auto a = r.u32();
      auto b = r.u32();
      auto s = r.u8();
      if (!a || !b || !s || !r.skip(3)) return truncated("ism change");
      out = IsmChange{*a, *b, *s};
      break;
    }
    case MsgType::NsmChange: {
      auto a = r.u32();
      auto b = r.u32();
      auto c = r.u32();
      auto s = r.u8();
      if (!a || !b || !c || !s || !r.skip(3)) return truncated("nsm change");
      out = NsmChange{*a, *b, *c, *s};
      break;
    }
    case MsgType::ReachableChange: {
      auto nadd = r.u16();
      auto nrm = r.u16();
      if (!nadd || !nrm) return truncated("reachable change");
      if (r.remaining() != 4u * (std::size_t{*nadd} + *nrm))
        return fail("reachable change counts do not match body length", EBADMSG);
      ReachableChange m;
      for (unsigned i = 0; i < *nadd; ++i) m.added.push_back(*r.u32());
      for (unsigned i = 0; i < *nrm; ++i) m.removed.push_back(*r.u32());
      out = std::move(m);
      break;
    }
    case MsgType::RouterIdChange: {
      auto a = r.u32();
      if (!a) return truncated("router id change");
      out = RouterIdChange{*a};
      break;
    }
    default:
      return fail(fmt::format("unknown message type {}", type), EBADMSG);
  }
  if (!r.empty())
    return fail(fmt::format("{} trailing bytes after {} body", r.remaining(),
                                      to_string(static_cast<MsgType>(type))), EBADMSG);
  return out;
}

}  // namespace

std::string_view to_string(MsgType t) {
  switch (t) {
    case MsgType::RegisterOpaqueType: return "REGISTER_OPAQUETYPE";
    case MsgType::UnregisterOpaqueType: return "UNREGISTER_OPAQUETYPE";
    case MsgType::RegisterEvent: return "REGISTER_EVENT";
    case MsgType::SyncLsdb: return "SYNC_LSDB";
    case MsgType::OriginateRequest: return "ORIGINATE_REQUEST";
    case MsgType::DeleteRequest: return "DELETE_REQUEST";
    case MsgType::SyncReachable: return "SYNC_REACHABLE";
    case MsgType::SyncIsm: return "SYNC_ISM";
    case MsgType::SyncNsm: return "SYNC_NSM";
    case MsgType::Reply: return "REPLY";
    case MsgType::ReadyNotify: return "READY_NOTIFY";
    case MsgType::LsaUpdateNotify: return "LSA_UPDATE_NOTIFY";
    case MsgType::LsaDeleteNotify: return "LSA_DELETE_NOTIFY";
    case MsgType::NewIf: return "NEW_IF";
    case MsgType::DelIf: return "DEL_IF";
    case MsgType::IsmChange: return "ISM_CHANGE";
    case MsgType::NsmChange: return "NSM_CHANGE";
    case MsgType::ReachableChange: return "REACHABLE_CHANGE";
    case MsgType::SyncRouterId: return "SYNC_ROUTER_ID";
    case MsgType::RouterIdChange: return "ROUTER_ID_CHANGE";
  }
  return "UNKNOWN";
}

std::string_view to_string(ApiErr e) {
  switch (e) {
    case ApiErr::Ok: return "OK";
    case ApiErr::NoSuchInterface: return "NOSUCHINTERFACE";
    case ApiErr::NoSuchArea: return "NOSUCHAREA";
    case ApiErr::NoSuchLsa: return "NOSUCHLSA";
    case ApiErr::IllegalLsaType: return "ILLEGALLSATYPE";
    case ApiErr::OpaqueTypeInUse: return "OPAQUETYPEINUSE";
    case ApiErr::OpaqueTypeNotRegistered: return "OPAQUETYPENOTREGISTERED";
    case ApiErr::NotReady: return "NOTREADY";
    case ApiErr::NoMemory: return "NOMEMORY";
    case ApiErr::Error: return "ERROR";
    case ApiErr::Undef: return "UNDEF";
  }
  return "UNKNOWN";
}

MsgType Message::type() const {
  static constexpr MsgType kOrder[] = {
      MsgType::RegisterOpaqueType, MsgType::UnregisterOpaqueType, MsgType::RegisterEvent,
      MsgType::SyncLsdb,           MsgType::OriginateRequest,     MsgType::DeleteRequest,
      MsgType::SyncReachable,      MsgType::SyncIsm,              MsgType::SyncNsm,
      MsgType::SyncRouterId,       MsgType::Reply,                MsgType::ReadyNotify,
      MsgType::LsaUpdateNotify,    MsgType::LsaDeleteNotify,      MsgType::NewIf,
      MsgType::DelIf,              MsgType::IsmChange,            MsgType::NsmChange,
      MsgType::ReachableChange,    MsgType::RouterIdChange};
  static_assert(std::size(kOrder) == std::variant_size_v<Body>);
  return kOrder[body.index()];
}

Result<Bytes> encode(const Message& m) {
  Bytes out;
  out.reserve(64);
  Writer w(out);
  w.u8(kVersion);
  w.u8(static_cast<std::uint8_t>(m.type()));
  w.u16(0);  // length, patched below
  w.u32(m.seq);
  if (auto ok = encode_body(w, m.body); !ok) return unexpected(ok.error());
  std::size_t body = out.size() - kHeaderSize;
  auto lim = body_limits(static_cast<std::uint8_t>(m.type()));
  if (body < lim.min || body > lim.max)
    return fail(fmt::format("{} body of {} bytes outside [{}, {}]", to_string(m.type()),
                                      body, lim.min, lim.max), EMSGSIZE);
  w.put_u16_at(2, static_cast<std::uint16_t>(body));
  return out;
}

Result<Header> decode_header(ByteView first8) {
  Reader r(first8);
  Header h;
  auto v = r.u8();
  auto t = r.u8();
  auto l = r.u16();
  auto s = r.u32();
  if (!v || !t || !l || !s) return fail("header truncated", EPROTO);
  h.version = *v, h.type = *t, h.length = *l, h.seq = *s;
  if (h.version != kVersion) return fail(fmt::format("bad API version {}", h.version), EPROTO);
  auto lim = body_limits(h.type);
  if (lim.max != 0 && h.length > lim.max)
    return fail(fmt::format("{} body length {} exceeds {}",
                                    to_string(static_cast<MsgType>(h.type)), h.length, lim.max), EPROTO);
  return h;
}

Result<Message> decode(ByteView whole) {
  auto h = decode_header(whole.first(std::min<std::size_t>(whole.size(), kHeaderSize)));
  if (!h) return unexpected(h.error());
  if (whole.size() != kHeaderSize + h->length)
    return fail(fmt::format("message of {} bytes, header says {}", whole.size(),
                                     kHeaderSize + h->length), EBADMSG);
  auto lim = body_limits(h->type);
  if (h->length < lim.min) return fail(fmt::format("body of {} bytes too short", h->length), EBADMSG);
  auto body = decode_body(h->type, whole.subspan(kHeaderSize));
  if (!body) return unexpected(body.error());
  return Message{h->seq, std::move(*body)};
}

void StreamDecoder::feed(ByteView data) {
  if (error_) return;
  // Compact once the consumed prefix dominates, to keep memory bounded.
  if (start_ > 0 && start_ >= buf_.size() / 2) {
    buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(start_));
    start_ = 0;
  }
  buf_.insert(buf_.end(), data.begin(), data.end());
}

Result<std::optional<Message>> StreamDecoder::next() {
  if (error_) return unexpected(*error_);
  ByteView avail(buf_.data() + start_, buf_.size() - start_);
  if (avail.size() < kHeaderSize) return std::optional<Message>{};
  auto h = decode_header(avail.first(kHeaderSize));
  if (!h) {
    error_ = h.error();  // framing lost: sticky (EPROTO)
    return unexpected(*error_);
  }
  std::size_t total = kHeaderSize + h->length;
  if (avail.size() < total) return std::optional<Message>{};
  start_ += total;
  // A bad body is reported (EBADMSG) but the framing is intact, so the stream goes on.
  auto m = decode(avail.first(total));
  if (!m) return unexpected(m.error());
  return std::optional<Message>{std::move(*m)};
}

void StreamDecoder::reset() {
  buf_.clear();
  start_ = 0;
  error_.reset();
}

}  // namespace anychain::ospf::api
