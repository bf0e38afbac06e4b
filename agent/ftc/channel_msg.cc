#include "ftc/channel_msg.h"

#include <cstring>

namespace anychain::ftc::chan {

const char* to_string(Type t) {
  switch (t) {
    case Type::Hello: return "hello";
    case Type::Heartbeat: return "heartbeat";
    case Type::ResyncReq: return "resync_req";
    case Type::Resync: return "resync";
    case Type::Feedback: return "feedback";
    case Type::Released: return "released";
    case Type::RecoverReq: return "recover_req";
    case Type::Recover: return "recover";
    case Type::RecoverDone: return "recover_done";
  }
  return "unknown";
}

const char* to_string(Reject r) {
  switch (r) {
    case Reject::Truncated: return "truncated";
    case Reject::Version: return "version";
    case Reject::Oversize: return "oversize";
    case Reject::UnknownType: return "unknown_type";
    case Reject::UnknownKey: return "unknown_key";
    case Reject::BadTag: return "bad_tag";
    case Reject::Sequence: return "sequence";
    case Reject::Malformed: return "malformed";
    case Reject::Protocol: return "protocol";
    case Reject::Count: break;
  }
  return "unknown";
}

Type type_of(const Body& b) { return static_cast<Type>(b.index() + 1); }

namespace {

using Buf = std::vector<uint8_t>;

// Big-endian writer.
class Writer {
 public:
  explicit Writer(Buf& b) : b_(b) {}
  void u8(uint8_t v) { b_.push_back(v); }
  void u16(uint16_t v) { be(v, 2); }
  void u32(uint32_t v) { be(v, 4); }
  void u64(uint64_t v) { be(v, 8); }
  void bytes(ByteView v) { b_.insert(b_.end(), v.begin(), v.end()); }
  void zeros(size_t n) { b_.insert(b_.end(), n, 0); }

 private:
  void be(uint64_t v, unsigned n) {
    while (n--) b_.push_back(static_cast<uint8_t>(v >> (8 * n)));
  }
  Buf& b_;
};

// Big-endian reader: a read past the end marks it failed and yields zeros.
class Reader {
 public:
  explicit Reader(ByteView d) : d_(d) {}
  uint8_t u8() { return static_cast<uint8_t>(be(1)); }
  uint16_t u16() { return static_cast<uint16_t>(be(2)); }
  uint32_t u32() { return static_cast<uint32_t>(be(4)); }
  uint64_t u64() { return be(8); }
  Buf bytes(size_t n) {
    if (!need(n)) return {};
    Buf out(d_.begin() + static_cast<std::ptrdiff_t>(at_), d_.begin() + static_cast<std::ptrdiff_t>(at_ + n));
    at_ += n;
    return out;
  }
  // reserved bytes must be zero
  void zeros(size_t n) {
    if (!need(n)) return;
    for (size_t i = 0; i < n; ++i)
      if (d_[at_ + i]) ok_ = false;
    at_ += n;
  }
  void fail() { ok_ = false; }
  [[nodiscard]] bool ok() const { return ok_; }
  [[nodiscard]] bool done() const { return ok_ && at_ == d_.size(); }
  [[nodiscard]] size_t left() const { return d_.size() - at_; }

 private:
  bool need(size_t n) {
    if (!ok_ || d_.size() - at_ < n) {
      ok_ = false;
      at_ = d_.size();
      return false;
    }
    return true;
  }
  uint64_t be(unsigned n) {
    if (!need(n)) return 0;
    uint64_t v = 0;
    while (n--) v = (v << 8) | d_[at_++];
    return v;
  }
  ByteView d_;
  size_t at_ = 0;
  bool ok_ = true;
};

void put_flow(Writer& w, const Flow& f) {
  w.u32(f.spi);
  w.u32(f.hash);
}
Flow get_flow(Reader& r) {
  Flow f;
  f.spi = r.u32();
  f.hash = r.u32();
  return f;
}

// record: seq, inc, held, nslots, 0, then nslots x [table, klen, vlen, 0, key, value]
Result<void> check_record(const Record& rec) {
  if (rec.kv.size() > AC_ST_SLOTS) return fail("record: more than " + std::to_string(AC_ST_SLOTS) + " keys");
  for (const auto& [tk, v] : rec.kv) {
    if (tk.second.empty() || tk.second.size() > AC_FTC_KEY_MAX) return fail("record: key of 1..16 bytes");
    if (v.size() > AC_FTC_VAL_MAX) return fail("record: value over 32 bytes");
  }
  return {};
}
void put_record(Writer& w, const Record& rec) {
  w.u32(rec.seq);
  w.u8(rec.inc);
  w.u8(rec.held);
  w.u8(static_cast<uint8_t>(rec.kv.size()));
  w.u8(0);
  for (const auto& [tk, v] : rec.kv) {
    w.u8(tk.first);
    w.u8(static_cast<uint8_t>(tk.second.size()));
    w.u8(static_cast<uint8_t>(v.size()));
    w.u8(0);
    w.bytes(tk.second);
    w.bytes(v);
  }
}
Record get_record(Reader& r) {
  Record rec;
  rec.seq = r.u32();
  rec.inc = r.u8();
  rec.held = r.u8();
  uint8_t n = r.u8();
  r.zeros(1);
  if (n > AC_ST_SLOTS) r.fail();
  for (uint8_t i = 0; i < n && r.ok(); ++i) {
    uint8_t table = r.u8(), klen = r.u8(), vlen = r.u8();
    r.zeros(1);
    if (klen == 0 || klen > AC_FTC_KEY_MAX || vlen > AC_FTC_VAL_MAX) {
      r.fail();
      break;
    }
    Bytes key = r.bytes(klen);
    Bytes val = r.bytes(vlen);
    std::pair<uint8_t, Bytes> k{table, std::move(key)};
    // ascending (table, key), each once: the one encoding of a record
    if (!rec.kv.empty() && !(rec.kv.rbegin()->first < k)) r.fail();
    rec.kv.emplace(std::move(k), std::move(val));
  }
  return rec;
}
size_t record_size(const Record& rec) {
  size_t n = 8;
  for (const auto& [tk, v] : rec.kv) n += 4 + tk.second.size() + v.size();
  return n;
}

template <class... F>
struct Overload : F... {
  using F::operator()...;
};
template <class... F>
Overload(F...) -> Overload<F...>;  // clang 14 (the fuzz build) does not deduce it

}  // namespace

size_t entry_size(const RecordEntry& e) { return 12 + record_size(e.rec); }

Result<std::vector<uint8_t>> encode_body(const Body& body) {
  Buf b;
  Writer w(b);
  Result<void> r = std::visit(
      Overload{
          [&](const Hello& m) -> Result<void> {
            w.bytes(m.nonce);
            w.u32(m.interval_ms);
            return {};
          },
          [&](const Heartbeat& m) -> Result<void> {
            w.u64(m.tx_us);
            return {};
          },
          [&](const ResyncReq& m) -> Result<void> {
            w.u32(m.req);
            put_flow(w, m.flow);
            w.u32(m.mbox.word());
            w.u32(m.have);
            return {};
          },
          [&](const Resync& m) -> Result<void> {
            w.u32(m.req);
            put_flow(w, m.flow);
            w.u32(m.mbox.word());
            w.u8(m.record ? 1 : 0);
            w.zeros(3);
            if (m.record) {
              if (auto c = check_record(*m.record); !c) return c;
              put_record(w, *m.record);
            }
            return {};
          },
          [&](const Feedback& m) -> Result<void> {
            if (m.logs.size() > kMaxFeedbackLogs) return fail("feedback: more than 64 logs");
            if (m.f < AC_FTC_F_MIN || m.f > AC_FTC_F_MAX) return fail("feedback: f outside 1..4");
            put_flow(w, m.flow);
            w.u32(m.ingress);
            w.u8(m.f);
            w.u8(static_cast<uint8_t>(m.logs.size()));
            w.zeros(2);
            for (const auto& log : m.logs) {
              auto v = encode_log(log);
              if (!v) return unexpected(v.error());
              w.u8(static_cast<uint8_t>(v->size()));
              w.bytes(*v);
            }
            return {};
          },
          [&](const Released& m) -> Result<void> {
            if (m.cv.size() > kMaxCommits) return fail("released: more than 256 commit entries");
            put_flow(w, m.flow);
            w.u16(static_cast<uint16_t>(m.cv.size()));
            w.zeros(2);
            for (const auto& [mb, is] : m.cv) {
              w.u32(Mbox{mb.first, is.first, mb.second}.word());
              w.u32(is.second);
            }
            return {};
          },
          [&](const RecoverReq& m) -> Result<void> {
            if (m.round != 1 && m.round != 2) return fail("recover_req: round must be 1 or 2");
            if (m.mboxes.size() > 0xffff) return fail("recover_req: too many middleboxes");
            w.u32(m.req);
            w.u16(m.instance);
            w.u8(m.new_inc);
            w.u8(m.round);
            w.u16(static_cast<uint16_t>(m.mboxes.size()));
            w.zeros(2);
            w.u32(static_cast<uint32_t>(m.flows.size()));
            for (const auto& [id, si] : m.mboxes) {
              w.u16(id);
              w.u8(si);
              w.u8(0);
            }
            for (const auto& f : m.flows) put_flow(w, f);
            return {};
          },
          [&](const Recover& m) -> Result<void> {
            w.u32(m.req);
            w.u32(m.batch);
            w.u32(static_cast<uint32_t>(m.records.size()));
            size_t start = b.size();
            for (const auto& e : m.records) {
              if (auto c = check_record(e.rec); !c) return c;
              w.u16(e.key.id);
              w.u8(e.key.si);
              w.u8(static_cast<uint8_t>(e.role));
              put_flow(w, e.key.flow);
              put_record(w, e.rec);
            }
            if (b.size() - start > kMaxBatch) return fail("recover: a batch over 64 KB");
            return {};
          },
          [&](const RecoverDone& m) -> Result<void> {
            w.u32(m.req);
            w.u32(m.batches);
            w.u32(m.records);
            w.u8(static_cast<uint8_t>(m.status));
            w.zeros(3);
            return {};
          },
      },
      body);
  if (!r) return unexpected(r.error());
  if (b.size() > kMaxBody) return fail("ftc channel: message body over " + std::to_string(kMaxBody) + " bytes");
  return b;
}

expected<Body, Reject> decode_body(Type t, ByteView body) {
  if (body.size() > kMaxBody) return unexpected(Reject::Oversize);
  Reader r(body);
  Body out;
  switch (t) {
    case Type::Hello: {
      Hello m;
      auto n = r.bytes(kNonceSize);
      if (r.ok()) std::memcpy(m.nonce.data(), n.data(), kNonceSize);
      m.interval_ms = r.u32();
      out = m;
      break;
    }
    case Type::Heartbeat: out = Heartbeat{r.u64()}; break;
    case Type::ResyncReq: {
      ResyncReq m;
      m.req = r.u32();
      m.flow = get_flow(r);
      m.mbox = Mbox::of(r.u32());
      m.have = r.u32();
      out = m;
      break;
    }
    case Type::Resync: {
      Resync m;
      m.req = r.u32();
      m.flow = get_flow(r);
      m.mbox = Mbox::of(r.u32());
      uint8_t found = r.u8();
      r.zeros(3);
      if (found > 1) r.fail();
      if (found == 1) m.record = get_record(r);
      out = std::move(m);
      break;
    }
    case Type::Feedback: {
      Feedback m;
      m.flow = get_flow(r);
      m.ingress = r.u32();
      m.f = r.u8();
      uint8_t n = r.u8();
      r.zeros(2);
      if (m.f < AC_FTC_F_MIN || m.f > AC_FTC_F_MAX || n > kMaxFeedbackLogs) r.fail();
      for (uint8_t i = 0; i < n && r.ok(); ++i) {
        uint8_t len = r.u8();
        Bytes v = r.bytes(len);
        if (!r.ok()) break;
        auto log = decode_log(v);
        if (!log) {
          r.fail();
          break;
        }
        m.logs.push_back(std::move(*log));
      }
      out = std::move(m);
      break;
    }
    case Type::Released: {
      Released m;
      m.flow = get_flow(r);
      uint16_t n = r.u16();
      r.zeros(2);
      if (n > kMaxCommits) r.fail();
      for (uint16_t i = 0; i < n && r.ok(); ++i) {
        Mbox mb = Mbox::of(r.u32());
        uint32_t seq = r.u32();
        // ascending (instance, head SI), each once: the one encoding of a commit vector
        std::pair<uint16_t, uint8_t> k{mb.id, mb.si};
        if (!m.cv.empty() && !(m.cv.rbegin()->first < k)) r.fail();
        m.cv.emplace(k, std::pair{mb.inc, seq});
      }
      out = std::move(m);
      break;
    }
    case Type::RecoverReq: {
      RecoverReq m;
      m.req = r.u32();
      m.instance = r.u16();
      m.new_inc = r.u8();
      m.round = r.u8();
      uint16_t nm = r.u16();
      r.zeros(2);
      uint32_t nf = r.u32();
      if ((m.round != 1 && m.round != 2) || static_cast<uint64_t>(nm) * 4 + static_cast<uint64_t>(nf) * 8 != r.left())
        r.fail();
      for (uint16_t i = 0; i < nm && r.ok(); ++i) {
        uint16_t id = r.u16();
        uint8_t si = r.u8();
        r.zeros(1);
        m.mboxes.emplace_back(id, si);
      }
      for (uint32_t i = 0; i < nf && r.ok(); ++i) m.flows.push_back(get_flow(r));
      out = std::move(m);
      break;
    }
    case Type::Recover: {
      Recover m;
      m.req = r.u32();
      m.batch = r.u32();
      uint32_t n = r.u32();
      if (static_cast<uint64_t>(n) * 20 > r.left() || r.left() > kMaxBatch) r.fail();
      for (uint32_t i = 0; i < n && r.ok(); ++i) {
        RecordEntry e;
        e.key.id = r.u16();
        e.key.si = r.u8();
        uint8_t role = r.u8();
        if (role > 1) r.fail();
        e.role = static_cast<Role>(role);
        e.key.flow = get_flow(r);
        e.rec = get_record(r);
        m.records.push_back(std::move(e));
      }
      out = std::move(m);
      break;
    }
    case Type::RecoverDone: {
      RecoverDone m;
      m.req = r.u32();
      m.batches = r.u32();
      m.records = r.u32();
      uint8_t st = r.u8();
      r.zeros(3);
      if (st > 2) r.fail();
      m.status = static_cast<RecoverStatus>(st);
      out = m;
      break;
    }
    default: return unexpected(Reject::UnknownType);
  }
  if (!r.done()) return unexpected(Reject::Malformed);
  return out;
}

std::optional<Header> peek_header(ByteView b) {
  if (b.size() < kHeaderSize) return std::nullopt;
  Reader r(b.first(kHeaderSize));
  Header h;
  h.version = r.u8();
  h.type = static_cast<Type>(r.u8());
  h.key_id = r.u8();
  (void)r.u8();  // flags: reserved, covered by the tag, must be zero (checked after the tag)
  h.sender = r.u32();
  h.receiver = r.u32();
  h.seq = r.u64();
  h.body_len = r.u32();
  return h;
}

Session::Session(std::shared_ptr<const state::Keyring> keys, uint32_t self, uint32_t peer, const Nonce& nonce)
    : keys_(std::move(keys)), self_(self), peer_(peer), nonce_(nonce) {}

// What the tag covers: HELLO its header and body; every later frame the sender's nonce, the
// receiver's nonce, then its header and body.
void Session::mac_input(std::vector<uint8_t>& out, bool outgoing, Type t, ByteView hb) const {
  out.clear();
  if (t != Type::Hello) {
    const Nonce& first = outgoing ? nonce_ : peer_nonce_;
    const Nonce& second = outgoing ? peer_nonce_ : nonce_;
    out.insert(out.end(), first.begin(), first.end());
    out.insert(out.end(), second.begin(), second.end());
  }
  out.insert(out.end(), hb.begin(), hb.end());
}

Result<std::vector<uint8_t>> Session::frame(Type t, uint64_t seq, const std::vector<uint8_t>& body) {
  Buf f;
  f.reserve(kHeaderSize + body.size() + kTagSize);
  Writer w(f);
  uint8_t kid = keys_->send_id();
  w.u8(kVersion);
  w.u8(static_cast<uint8_t>(t));
  w.u8(kid);
  w.u8(0);
  w.u32(self_);
  w.u32(peer_);
  w.u64(seq);
  w.u32(static_cast<uint32_t>(body.size()));
  w.bytes(body);
  Buf in;
  mac_input(in, true, t, f);
  std::array<uint8_t, kTagSize> tag{};
  if (!keys_->tag(kid, in, tag)) return fail("ftc channel: HMAC failed");
  w.bytes(tag);
  return f;
}

Result<std::vector<uint8_t>> Session::hello(uint32_t interval_ms) {
  if (sent_hello_) return fail("ftc channel: HELLO sent twice");
  auto body = encode_body(Hello{nonce_, interval_ms});
  if (!body) return unexpected(body.error());
  auto f = frame(Type::Hello, 0, *body);
  if (f) sent_hello_ = true;
  return f;
}

Result<std::vector<uint8_t>> Session::seal(const Body& b) {
  if (!established() || !sent_hello_) return fail("ftc channel: connection not established");
  if (type_of(b) == Type::Hello) return fail("ftc channel: HELLO only starts a connection");
  auto body = encode_body(b);
  if (!body) return unexpected(body.error());
  auto f = frame(type_of(b), tx_seq_ + 1, *body);
  if (f) ++tx_seq_;
  return f;
}

expected<std::optional<Body>, Reject> Session::next(std::vector<uint8_t>& buf) {
  auto h = peek_header(buf);
  if (!h) return std::optional<Body>{};
  // the fixed header only: enough to know how much to wait for, nothing trusted
  if (h->version != kVersion) return unexpected(Reject::Version);
  if (h->body_len > kMaxBody) return unexpected(Reject::Oversize);
  size_t total = kHeaderSize + h->body_len + kTagSize;
  if (buf.size() < total) return std::optional<Body>{};
  ByteView frame_bytes(buf.data(), total);
  if (!keys_->has(h->key_id)) return unexpected(Reject::UnknownKey);
  if (h->type == Type::Hello && have_peer_nonce_) return unexpected(Reject::Protocol);
  if (h->type != Type::Hello && !have_peer_nonce_) return unexpected(Reject::Protocol);
  Buf in;
  mac_input(in, false, h->type, frame_bytes.first(kHeaderSize + h->body_len));
  if (!keys_->verify(h->key_id, in, frame_bytes.subspan(kHeaderSize + h->body_len, kTagSize)))
    return unexpected(Reject::BadTag);
  // authenticated from here on
  if (buf[3] != 0) return unexpected(Reject::Malformed);
  if (static_cast<uint8_t>(h->type) == 0 || static_cast<uint8_t>(h->type) >= kTypeSlots)
    return unexpected(Reject::UnknownType);
  // an accepting side sends its HELLO before it knows who connected: receiver 0
  bool to_me = h->receiver == self_ || (h->type == Type::Hello && h->receiver == 0);
  if (!to_me || (peer_ && h->sender != peer_) || h->sender == self_ || h->sender == 0)
    return unexpected(Reject::Protocol);
  uint64_t want = h->type == Type::Hello ? 0 : rx_seq_ + 1;
  if (h->seq != want) return unexpected(Reject::Sequence);
  auto body = decode_body(h->type, frame_bytes.subspan(kHeaderSize, h->body_len));
  if (!body) return unexpected(body.error());
  if (h->type == Type::Hello) {
    const auto& hello = std::get<Hello>(*body);
    if (hello.nonce == nonce_) return unexpected(Reject::Protocol);  // our own HELLO reflected
    peer_nonce_ = hello.nonce;
    peer_interval_ms_ = hello.interval_ms;
    have_peer_nonce_ = true;
    peer_ = h->sender;
  } else {
    rx_seq_ = h->seq;
  }
  last_key_id_ = h->key_id;
  buf.erase(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(total));
  return std::optional<Body>{std::move(*body)};
}

}  // namespace anychain::ftc::chan
