#include "state/wire.h"

#include <cstring>
#include <optional>

namespace anychain::state {

const char* to_string(MsgType t) {
  switch (t) {
    case MsgType::Delta: return "delta";
    case MsgType::SnapReq: return "snapshot-request";
    case MsgType::Snap: return "snapshot";
    case MsgType::Leave: return "leave";
    case MsgType::LeaveAck: return "leave-ack";
  }
  return "unknown";
}

const char* to_string(Reject r) {
  switch (r) {
    case Reject::Truncated: return "truncated";
    case Reject::Version: return "version";
    case Reject::UnknownKey: return "unknown_key";
    case Reject::BadTag: return "bad_tag";
    case Reject::Malformed: return "malformed";
    case Reject::Service: return "other_service";
    case Reject::Receiver: return "other_receiver";
    case Reject::ReceiverIncarnation: return "old_receiver_incarnation";
    case Reject::Schema: return "schema_mismatch";
    case Reject::StaleIncarnation: return "stale_incarnation";
    case Reject::Replay: return "replay";
    case Reject::TooOld: return "below_window";
    case Reject::Clock: return "clock_skew";
    case Reject::Count: break;
  }
  return "unknown";
}

namespace {

// Appends big-endian integers.
struct Out {
  Bytes& b;
  template <class T>
  void put(T v) {
    for (int i = static_cast<int>(sizeof(T)) - 1; i >= 0; --i) b.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  void raw(const void* p, size_t n) {
    auto* c = static_cast<const uint8_t*>(p);
    b.insert(b.end(), c, c + n);
  }
  template <class T>
  void put_at(size_t at, T v) {
    for (size_t i = 0; i < sizeof(T); ++i) b[at + i] = static_cast<uint8_t>(v >> (8 * (sizeof(T) - 1 - i)));
  }
};

// Reads big-endian integers; any read past the end sets `bad` and yields 0.
struct In {
  ByteView d;
  size_t pos = 0;
  bool bad = false;
  template <class T>
  T get() {
    if (d.size() - pos < sizeof(T)) {
      bad = true;
      pos = d.size();
      return 0;
    }
    T v = 0;
    for (size_t i = 0; i < sizeof(T); ++i) v = static_cast<T>((v << 8) | d[pos++]);
    return v;
  }
  bool raw(void* p, size_t n) {
    if (n == 0) return true;
    if (d.size() - pos < n) {
      bad = true;
      pos = d.size();
      return false;
    }
    std::memcpy(p, d.data() + pos, n);
    pos += n;
    return true;
  }
  size_t left() const { return d.size() - pos; }
};

bool counter_kind(Kind k) { return k == Kind::GCounter || k == Kind::PNCounter || k == Kind::CountMin || k == Kind::CountingBloom; }

void put_value(Out& o, Kind k, const CellValue& v) {
  switch (k) {
    case Kind::GCounter:
    case Kind::CountMin:
    case Kind::CountingBloom: o.put<uint64_t>(v.a); break;
    case Kind::PNCounter:
      o.put<uint64_t>(v.a);
      o.put<uint64_t>(v.b);
      break;
    case Kind::AwSet:
      o.put<uint32_t>(static_cast<uint32_t>(v.a));
      o.put<uint32_t>(static_cast<uint32_t>(v.b));
      break;
    case Kind::RegMap:
      o.put<uint64_t>(v.reg.seen);
      o.put<uint32_t>(v.reg.writer);
      o.raw(v.reg.data, sizeof v.reg.data);
      break;
  }
}

CellValue get_value(In& in, Kind k) {
  CellValue v;
  switch (k) {
    case Kind::GCounter:
    case Kind::CountMin:
    case Kind::CountingBloom: v.a = in.get<uint64_t>(); break;
    case Kind::PNCounter:
      v.a = in.get<uint64_t>();
      v.b = in.get<uint64_t>();
      break;
    case Kind::AwSet:
      v.a = in.get<uint32_t>();
      v.b = in.get<uint32_t>();
      break;
    case Kind::RegMap:
      v.reg.seen = in.get<uint64_t>();
      v.reg.writer = in.get<uint32_t>();
      in.raw(v.reg.data, sizeof v.reg.data);
      break;
  }
  return v;
}

bool has_sections(MsgType t) { return t == MsgType::Delta || t == MsgType::Snap; }

size_t key_size(const ObjectSpec& s) { return s.keyed() ? s.key_size : 4; }

}  // namespace

size_t record_size(const ObjectSpec& spec) { return 6 + key_size(spec) + wire_value_size(spec.kind); }

size_t base_size(const Message& m) {
  size_t n = kHeaderSize + kTagBytes;
  switch (m.h.type) {
    case MsgType::Delta:
    case MsgType::Snap:
      n += kRangeBytes + kSectionsHeader + m.acks.size() * kAckBytes + m.origins.size() * kOriginBytes +
           m.gone.size() * kGoneBytes;
      break;
    case MsgType::SnapReq: n += 10 + m.bitmap.size(); break;
    case MsgType::Leave:
    case MsgType::LeaveAck: n += 8; break;
  }
  return n;
}

Result<Bytes> encode(const Message& m, const Schema& schema, const Keyring& keys) {
  Bytes b;
  b.reserve(base_size(m) + m.records.size() * 32);
  Out o{b};
  if (!wire_version_supported(m.h.version)) return fail("state message: wire version " + std::to_string(m.h.version) + " not supported");
  if (m.h.version < 2 && !m.gone.empty()) return fail("state message: wire version 1 has no gone section");
  o.put<uint8_t>(m.h.version);
  o.put<uint8_t>(static_cast<uint8_t>(m.h.type));
  o.put<uint8_t>(keys.send_id());
  o.put<uint8_t>(m.h.flags);
  o.put<uint16_t>(m.h.service);
  o.put<uint16_t>(0);  // body length, below
  o.put<uint32_t>(m.h.schema);
  o.put<uint32_t>(m.h.sender.id);
  o.put<uint64_t>(m.h.sender.incarnation);
  o.put<uint32_t>(m.h.receiver);
  o.put<uint32_t>(0);
  o.put<uint64_t>(m.h.receiver_incarnation);
  o.put<uint64_t>(m.h.seq);
  o.put<uint64_t>(m.h.wall_us);
  o.put<uint64_t>(m.h.tx_us);
  o.put<uint64_t>(m.h.echo_us);
  o.put<uint32_t>(m.h.echo_delay_us);
  o.put<uint32_t>(0);
  switch (m.h.type) {
    case MsgType::Delta:
      o.put<uint64_t>(m.from);
      o.put<uint64_t>(m.to);
      break;
    case MsgType::Snap:
      o.put<uint32_t>(m.snap_id);
      o.put<uint16_t>(m.chunk);
      o.put<uint16_t>(m.chunks);
      o.put<uint64_t>(0);
      break;
    case MsgType::SnapReq:
      o.put<uint32_t>(m.snap_id);
      o.put<uint32_t>(m.first_missing);
      o.put<uint16_t>(static_cast<uint16_t>(m.bitmap.size()));
      o.raw(m.bitmap.data(), m.bitmap.size());
      break;
    case MsgType::Leave:
    case MsgType::LeaveAck: o.put<uint64_t>(m.final_version); break;
  }
  if (has_sections(m.h.type)) {
    if (m.acks.size() > 0xffff || m.origins.size() > 0xfe || m.records.size() > 0xffff || m.gone.size() > 0xffff)
      return fail("state message: too many acks, origins, records or gone origins");
    o.put<uint16_t>(static_cast<uint16_t>(m.acks.size()));
    o.put<uint16_t>(static_cast<uint16_t>(m.origins.size()));
    o.put<uint16_t>(static_cast<uint16_t>(m.records.size()));
    o.put<uint16_t>(static_cast<uint16_t>(m.gone.size()));  // reserved (0) in version 1
    for (const AckEntry& a : m.acks) {
      o.put<uint32_t>(a.origin.id);
      o.put<uint64_t>(a.origin.incarnation);
      o.put<uint64_t>(a.version);
    }
    for (const Origin& g : m.origins) {
      o.put<uint32_t>(g.id);
      o.put<uint64_t>(g.incarnation);
    }
    for (const GoneEntry& g : m.gone) {
      o.put<uint32_t>(g.origin.id);
      o.put<uint64_t>(g.origin.incarnation);
      o.put<uint64_t>(g.relay);
    }
    for (const WireRecord& r : m.records) {
      const ObjectSpec* s = schema.find(r.object);
      if (!s) return fail("state message: record for unknown object " + std::to_string(r.object));
      if (r.key.len != key_size(*s))
        return fail("state message: key of " + std::to_string(r.key.len) + " bytes for object " + s->name);
      o.put<uint8_t>(r.object);
      o.put<uint8_t>(r.origin);
      o.put<uint16_t>(r.epoch);
      o.put<uint8_t>(r.key.len);
      o.put<uint8_t>(static_cast<uint8_t>(wire_value_size(s->kind)));
      o.raw(r.key.b.data(), r.key.len);
      put_value(o, s->kind, r.value);
    }
  }
  size_t body = b.size() - kHeaderSize;
  if (b.size() + kTagBytes > kMaxMessage) return fail("state message: " + std::to_string(b.size() + kTagBytes) + " bytes, over the limit");
  o.put_at<uint16_t>(6, static_cast<uint16_t>(body));
  std::array<uint8_t, kTagSize> tag;
  if (!keys.tag(keys.send_id(), b, tag)) return fail("state message: HMAC failed");
  o.raw(tag.data(), tag.size());
  return b;
}

namespace {

Decoded<Message> parse(ByteView d, const Schema& schema) {
  Message m;
  In in{d.first(d.size() - kTagBytes)};
  m.h.version = in.get<uint8_t>();  // checked by the caller
  uint8_t type = in.get<uint8_t>();
  m.h.key_id = in.get<uint8_t>();
  m.h.flags = in.get<uint8_t>();
  m.h.service = in.get<uint16_t>();
  in.get<uint16_t>();  // body length, checked by the caller
  m.h.schema = in.get<uint32_t>();
  m.h.sender.id = in.get<uint32_t>();
  m.h.sender.incarnation = in.get<uint64_t>();
  m.h.receiver = in.get<uint32_t>();
  uint32_t reserved = in.get<uint32_t>();
  m.h.receiver_incarnation = in.get<uint64_t>();
  m.h.seq = in.get<uint64_t>();
  m.h.wall_us = in.get<uint64_t>();
  m.h.tx_us = in.get<uint64_t>();
  m.h.echo_us = in.get<uint64_t>();
  m.h.echo_delay_us = in.get<uint32_t>();
  reserved |= in.get<uint32_t>();
  if (type < 1 || type > 5 || reserved || (m.h.flags & ~(kFlagJoining | kFlagDraining)) || m.h.sender.id == 0 ||
      m.h.sender.incarnation == 0 || m.h.receiver == 0 || m.h.seq == 0)
    return unexpected(Reject::Malformed);
  // The records are read against our objects: a sender with other objects is refused first.
  if (m.h.schema != schema.digest()) return unexpected(Reject::Schema);
  m.h.type = static_cast<MsgType>(type);
  switch (m.h.type) {
    case MsgType::Delta:
      m.from = in.get<uint64_t>();
      m.to = in.get<uint64_t>();
      if (m.from > m.to) return unexpected(Reject::Malformed);
      break;
    case MsgType::Snap:
      m.snap_id = in.get<uint32_t>();
      m.chunk = in.get<uint16_t>();
      m.chunks = in.get<uint16_t>();
      if (in.get<uint64_t>() != 0 || m.snap_id == 0 || m.chunks == 0 || m.chunk >= m.chunks)
        return unexpected(Reject::Malformed);
      break;
    case MsgType::SnapReq: {
      m.snap_id = in.get<uint32_t>();
      m.first_missing = in.get<uint32_t>();
      uint16_t n = in.get<uint16_t>();
      if (n > in.left()) return unexpected(Reject::Malformed);
      m.bitmap.resize(n);
      in.raw(m.bitmap.data(), n);
      break;
    }
    case MsgType::Leave:
    case MsgType::LeaveAck: m.final_version = in.get<uint64_t>(); break;
  }
  if (has_sections(m.h.type)) {
    uint16_t acks = in.get<uint16_t>(), origins = in.get<uint16_t>(), records = in.get<uint16_t>();
    uint16_t gone = in.get<uint16_t>();
    if ((m.h.version < 2 && gone != 0) || origins > 0xfe) return unexpected(Reject::Malformed);
    // every count must fit the bytes left before anything is allocated
    if (in.bad || size_t{acks} * kAckBytes + size_t{origins} * kOriginBytes + size_t{gone} * kGoneBytes +
                          size_t{records} * 6 > in.left())
      return unexpected(Reject::Malformed);
    m.acks.resize(acks);
    for (AckEntry& a : m.acks) {
      a.origin.id = in.get<uint32_t>();
      a.origin.incarnation = in.get<uint64_t>();
      a.version = in.get<uint64_t>();
      if (a.origin.id == 0 || a.origin.incarnation == 0) return unexpected(Reject::Malformed);
    }
    m.origins.resize(origins);
    for (Origin& g : m.origins) {
      g.id = in.get<uint32_t>();
      g.incarnation = in.get<uint64_t>();
      if (g.id == 0 || g.incarnation == 0) return unexpected(Reject::Malformed);
    }
    m.gone.resize(gone);
    for (GoneEntry& g : m.gone) {
      g.origin.id = in.get<uint32_t>();
      g.origin.incarnation = in.get<uint64_t>();
      g.relay = in.get<uint64_t>();
      if (g.origin.id == 0 || g.origin.incarnation == 0) return unexpected(Reject::Malformed);
    }
    m.records.reserve(records);
    for (uint16_t i = 0; i < records; ++i) {
      WireRecord r;
      r.object = in.get<uint8_t>();
      r.origin = in.get<uint8_t>();
      r.epoch = in.get<uint16_t>();
      uint8_t klen = in.get<uint8_t>(), vlen = in.get<uint8_t>();
      if (in.bad) return unexpected(Reject::Malformed);
      const ObjectSpec* s = schema.find(r.object);
      if (!s || klen != key_size(*s) || vlen != wire_value_size(s->kind)) return unexpected(Reject::Malformed);
      if (r.origin == kRetiredOrigin ? !counter_kind(s->kind) : r.origin >= origins) return unexpected(Reject::Malformed);
      r.key.len = klen;
      in.raw(r.key.b.data(), klen);
      if (!s->keyed() && r.key.as_index() >= s->cells) return unexpected(Reject::Malformed);
      r.value = get_value(in, s->kind);
      if (in.bad) return unexpected(Reject::Malformed);
      m.records.push_back(r);
    }
  }
  if (in.bad || in.left() != 0) return unexpected(Reject::Malformed);
  return m;
}

// The fixed header's own checks: what is known before the tag is.
std::optional<Reject> check_frame(ByteView d) {
  if (d.size() < kHeaderSize + kTagBytes || d.size() > kMaxMessage) return Reject::Truncated;
  if (!wire_version_supported(d[0])) return Reject::Version;
  size_t body = (size_t{d[6]} << 8) | d[7];
  if (kHeaderSize + body + kTagBytes != d.size()) return Reject::Truncated;
  return std::nullopt;
}

}  // namespace

Decoded<Message> decode_unauthenticated(ByteView d, const Schema& schema) {
  if (auto r = check_frame(d)) return unexpected(*r);
  return parse(d, schema);
}

Decoded<Message> decode(ByteView d, const Schema& schema, const Keyring& keys) {
  if (auto r = check_frame(d)) return unexpected(*r);
  uint8_t key_id = d[2];
  if (!keys.has(key_id)) return unexpected(Reject::UnknownKey);
  if (!keys.verify(key_id, d.first(d.size() - kTagBytes), d.last(kTagBytes))) return unexpected(Reject::BadTag);
  return parse(d, schema);
}

}  // namespace anychain::state
