#include "ftc/wire.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

namespace anychain::ftc {

namespace {

void put16(Bytes& b, uint32_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}
void put32(Bytes& b, uint32_t v) {
  put16(b, v >> 16);
  put16(b, v & 0xffff);
}
uint32_t get32(std::span<const uint8_t> b, size_t o) {
  return uint32_t{b[o]} << 24 | uint32_t{b[o + 1]} << 16 | uint32_t{b[o + 2]} << 8 | b[o + 3];
}
void pad4(Bytes& b) {
  while (b.size() % 4) b.push_back(0);
}

}  // namespace

const char* err_str(enum ac_ftc_err e) {
  switch (e) {
    case AC_FTC_OK: return "ok";
    case AC_FTC_E_MD: return "not an MD type 2 NSH of 8..252 bytes with a matching length field";
    case AC_FTC_E_LEN: return "a TLV overruns the NSH";
    case AC_FTC_E_CTRL: return "bad control TLV (length, f outside 1..4, flags, reserved bits) or logs without one";
    case AC_FTC_E_CTRL_DUP: return "two control TLVs";
    case AC_FTC_E_COMMIT: return "bad commit TLV (length not 8..64 in steps of 8, or two of them)";
    case AC_FTC_E_LOG_LEN: return "log value shorter than its 12-byte header or over the 124-byte limit";
    case AC_FTC_E_LOG_VERSION: return "log version is not 0";
    case AC_FTC_E_LOG_FLAGS: return "unknown log flags";
    case AC_FTC_E_LOG_HELD: return "log held count is 0 or not below f + 1";
    case AC_FTC_E_LOG_COUNT: return "no-op or stub log with writes, or a transaction without writes";
    case AC_FTC_E_WRITE: return "bad write (key 1..16 bytes, value 0..32 bytes, delete without value, at most 4)";
    case AC_FTC_E_WRITE_OVERRUN: return "writes overrun the log value";
    case AC_FTC_E_PAD: return "bytes after the last write, or non-zero padding";
    case AC_FTC_E_TOO_MANY_LOGS: return "more than 8 logs in one NSH";
    case AC_FTC_E_TOO_BIG: return "the NSH would exceed 252 bytes";
    case AC_FTC_E_END: break;
  }
  return "unknown error";
}

size_t Log::value_len() const {
  size_t n = AC_FTC_LOG_HDR;
  for (const auto& w : writes) n += AC_FTC_WRITE_HDR + w.key.size() + w.value.size();
  return n;
}

std::optional<uint32_t> Nsh::hash() const {
  for (const auto& t : other)
    if (t.md_class == AC_MD_CLASS && t.type == AC_TLV_FLOW_HASH && t.value.size() == 4)
      return get32(t.value, 0);
  return std::nullopt;
}

Tlv flow_hash_tlv(uint32_t hash) {
  Tlv t{AC_MD_CLASS, AC_TLV_FLOW_HASH, 4, {}};
  put32(t.value, hash);
  return t;
}

Result<Window> to_window(std::span<const uint8_t> nsh) {
  if (nsh.size() > AC_NSH_MAX_LEN) return fail(fmt::format("NSH of {} bytes exceeds 252", nsh.size()));
  Window w{};
  std::copy(nsh.begin(), nsh.end(), w.begin());
  return w;
}

namespace {

// Decode the log whose value starts at vo in a window already checked by ac_ftc_log_check.
Log log_at(const Window& w, uint32_t vo) {
  Log l;
  l.flags = w[vo];
  l.held = w[vo + 1];
  uint32_t nw = w[vo + 2];
  l.count = w[vo + 3];
  l.mbox = Mbox::of(ac_ftc_rd32(w.data(), vo + 4));
  l.seq = ac_ftc_rd32(w.data(), vo + 8);
  uint32_t o = vo + AC_FTC_LOG_HDR;
  for (uint32_t i = 0; i < nw; ++i) {
    Write x;
    x.table = w[o];
    x.del = w[o + 1] & AC_FTC_W_DELETE;
    uint32_t klen = w[o + 2], vlen = w[o + 3];
    o += AC_FTC_WRITE_HDR;
    x.key.assign(w.begin() + o, w.begin() + o + klen);
    o += klen;
    x.value.assign(w.begin() + o, w.begin() + o + vlen);
    o += vlen;
    l.writes.push_back(std::move(x));
  }
  return l;
}

}  // namespace

Result<Log> decode_log(std::span<const uint8_t> value) {
  if (value.size() > AC_FTC_LOG_MAX)
    return fail(fmt::format("log of {} bytes: {}", value.size(), err_str(AC_FTC_E_LOG_LEN)));
  Window w{};
  std::copy(value.begin(), value.end(), w.begin());
  if (auto e = ac_ftc_log_check(w.data(), 0, static_cast<uint32_t>(value.size())))
    return fail(fmt::format("log of {} bytes: {}", value.size(), err_str(e)));
  return log_at(w, 0);
}

Result<Bytes> encode_log(const Log& l) {
  if (l.held == 0) return fail("log: held must be at least 1");
  if (l.flags & ~AC_FTC_LOG_FLAGS) return fail(fmt::format("log: unknown flags {}", l.flags));
  if ((l.noop() || l.stub()) && !l.writes.empty()) return fail("log: a no-op or stub log carries no writes");
  if (!l.noop() && !l.stub() && l.writes.empty()) return fail("log: a transaction log needs at least one write");
  if (l.writes.size() > AC_FTC_MAX_WRITES)
    return fail(fmt::format("log: {} writes, at most {}", l.writes.size(), AC_FTC_MAX_WRITES));
  for (const auto& w : l.writes) {
    if (w.key.empty() || w.key.size() > AC_FTC_KEY_MAX)
      return fail(fmt::format("log: key of {} bytes (1..{})", w.key.size(), AC_FTC_KEY_MAX));
    if (w.value.size() > AC_FTC_VAL_MAX)
      return fail(fmt::format("log: value of {} bytes (at most {})", w.value.size(), AC_FTC_VAL_MAX));
    if (w.del && !w.value.empty()) return fail("log: a delete carries no value");
  }
  if (l.value_len() > AC_FTC_LOG_MAX)
    return fail(fmt::format("log over the size limit: {} bytes > {}", l.value_len(), AC_FTC_LOG_MAX));
  Bytes b;
  b.reserve(l.value_len());
  b.push_back(l.flags);
  b.push_back(l.held);
  b.push_back(static_cast<uint8_t>(l.writes.size()));
  b.push_back(l.count);
  put32(b, l.mbox.word());
  put32(b, l.seq);
  for (const auto& w : l.writes) {
    b.push_back(w.table);
    b.push_back(w.del ? AC_FTC_W_DELETE : 0);
    b.push_back(static_cast<uint8_t>(w.key.size()));
    b.push_back(static_cast<uint8_t>(w.value.size()));
    b.insert(b.end(), w.key.begin(), w.key.end());
    b.insert(b.end(), w.value.begin(), w.value.end());
  }
  return b;
}

Result<Bytes> encode_log_tlv(const Log& l) {
  auto v = encode_log(l);
  if (!v) return unexpected(v.error());
  Bytes b;
  put16(b, AC_MD_CLASS);
  b.push_back(AC_TLV_FTC_LOG);
  b.push_back(static_cast<uint8_t>(v->size()));
  b.insert(b.end(), v->begin(), v->end());
  pad4(b);
  return b;
}

Result<Nsh> decode_nsh(std::span<const uint8_t> bytes) {
  if (bytes.size() < AC_NSH_BASE_LEN) return fail(fmt::format("NSH truncated: {} bytes", bytes.size()));
  uint32_t len = (bytes[1] & 0x3f) * 4u;
  if (len < AC_NSH_BASE_LEN || len > bytes.size())
    return fail(fmt::format("NSH length {} does not fit the {} bytes given", len, bytes.size()));
  auto w = to_window(bytes.first(len));
  if (!w) return unexpected(w.error());
  ac_ftc_view v;
  if (auto e = ac_ftc_walk(w->data(), len, &v)) {
    return fail(fmt::format("NSH: {} (TLV at offset {})", err_str(e), v.err_off));
  }
  Nsh n;
  n.flags = (bytes[0] >> 4) & 0x3;
  n.ttl = static_cast<uint8_t>(((bytes[0] & 0x0f) << 2) | (bytes[1] >> 6));
  n.next_proto = bytes[3];
  uint32_t spsi = get32(bytes, 4);
  n.spi = spsi >> 8;
  n.si = spsi & 0xff;
  uint32_t off = AC_NSH_BASE_LEN;
  while (off < len) {
    uint16_t cls = static_cast<uint16_t>(ac_ftc_rd16(w->data(), off));
    uint8_t type = (*w)[off + 2], lb = (*w)[off + 3];
    uint32_t vlen = lb & 0x7f;
    if (cls == AC_MD_CLASS && type == AC_TLV_FTC_LOG) {
      n.logs.push_back(log_at(*w, off + 4));
    } else if (cls == AC_MD_CLASS && type == AC_TLV_FTC_COMMIT) {
      for (uint32_t i = 0; i < vlen / AC_FTC_COMMIT_LEN; ++i) {
        uint32_t o = off + 4 + i * AC_FTC_COMMIT_LEN;
        n.commits.push_back({Mbox::of(ac_ftc_rd32(w->data(), o)), ac_ftc_rd32(w->data(), o + 4)});
      }
    } else if (cls == AC_MD_CLASS && type == AC_TLV_FTC_CTRL) {
      n.ctrl = Ctrl{(*w)[off + 4], (*w)[off + 5], ac_ftc_rd32(w->data(), off + 8)};
    } else {
      n.other.push_back({cls, type, lb, Bytes(w->begin() + off + 4, w->begin() + off + 4 + vlen)});
    }
    off += 4 + ac_ftc_pad4(vlen);
  }
  return n;
}

Result<Bytes> encode_nsh(const Nsh& n) {
  Bytes b(AC_NSH_BASE_LEN, 0);
  b[2] = AC_NSH_MD_TYPE2;
  b[3] = n.next_proto;
  uint32_t spsi = (n.spi << 8) | n.si;
  for (int i = 0; i < 4; ++i) b[4 + i] = static_cast<uint8_t>(spsi >> (24 - 8 * i));
  for (const auto& t : n.other) {
    if (t.value.size() != (t.len & 0x7fu)) return fail("NSH: a TLV's length byte does not match its value");
    put16(b, t.md_class);
    b.push_back(t.type);
    b.push_back(t.len);
    b.insert(b.end(), t.value.begin(), t.value.end());
    pad4(b);
  }
  if (n.ctrl) {
    if (n.ctrl->f < AC_FTC_F_MIN || n.ctrl->f > AC_FTC_F_MAX)
      return fail(fmt::format("NSH: f = {} outside 1..4", n.ctrl->f));
    put16(b, AC_MD_CLASS);
    b.push_back(AC_TLV_FTC_CTRL);
    b.push_back(AC_FTC_CTRL_LEN);
    b.push_back(n.ctrl->flags);
    b.push_back(n.ctrl->f);
    put16(b, 0);
    put32(b, n.ctrl->ingress);
  }
  for (const auto& l : n.logs) {
    auto t = encode_log_tlv(l);
    if (!t) return unexpected(t.error());
    b.insert(b.end(), t->begin(), t->end());
  }
  if (!n.commits.empty()) {
    if (n.commits.size() > AC_FTC_MAX_COMMITS)
      return fail(fmt::format("NSH: {} commit entries, at most {}", n.commits.size(), AC_FTC_MAX_COMMITS));
    put16(b, AC_MD_CLASS);
    b.push_back(AC_TLV_FTC_COMMIT);
    b.push_back(static_cast<uint8_t>(n.commits.size() * AC_FTC_COMMIT_LEN));
    for (const auto& c : n.commits) {
      put32(b, c.mbox.word());
      put32(b, c.seq);
    }
  }
  if (b.size() > AC_NSH_MAX_LEN) return fail(fmt::format("NSH of {} bytes: {}", b.size(), err_str(AC_FTC_E_TOO_BIG)));
  uint16_t w0 = AC_NSH_W0(AC_NSH_VERSION, n.ttl, b.size() / 4);
  b[0] = static_cast<uint8_t>(w0 >> 8) | static_cast<uint8_t>((n.flags & 0x3) << 4);
  b[1] = static_cast<uint8_t>(w0);
  return b;
}

}  // namespace anychain::ftc
