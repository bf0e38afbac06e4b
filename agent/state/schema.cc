#include "state/schema.h"

#include <cstring>
#include <string>

namespace anychain::state {

const char* to_string(Kind k) {
  switch (k) {
    case Kind::GCounter: return "gcounter";
    case Kind::PNCounter: return "pncounter";
    case Kind::CountMin: return "count-min";
    case Kind::CountingBloom: return "counting-bloom";
    case Kind::AwSet: return "add-wins-set";
    case Kind::RegMap: return "winner-map";
  }
  return "unknown";
}

size_t wire_value_size(Kind k) {
  switch (k) {
    case Kind::GCounter:
    case Kind::CountMin:
    case Kind::CountingBloom: return 8;
    case Kind::PNCounter: return 16;
    case Kind::AwSet: return 8;
    case Kind::RegMap: return 8 + 4 + AC_CRDT_REG_DATA;
  }
  return 0;
}

uint32_t ObjectSpec::mask() const {
  if (kind == Kind::CountMin && rows) return cells / rows - 1;
  if (kind == Kind::CountingBloom) return cells - 1;
  return 0;
}

Key Key::index(uint32_t i) {
  Key k;
  k.len = 4;
  k.b[0] = static_cast<uint8_t>(i >> 24);
  k.b[1] = static_cast<uint8_t>(i >> 16);
  k.b[2] = static_cast<uint8_t>(i >> 8);
  k.b[3] = static_cast<uint8_t>(i);
  return k;
}

Key Key::bytes(const void* p, size_t n) {
  Key k;
  k.len = static_cast<uint8_t>(n > AC_CRDT_KEY_MAX ? AC_CRDT_KEY_MAX : n);
  std::memcpy(k.b.data(), p, k.len);
  return k;
}

uint32_t Key::as_index() const {
  return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | b[3];
}

bool Key::operator==(const Key& o) const { return len == o.len && std::memcmp(b.data(), o.b.data(), len) == 0; }

bool Key::operator<(const Key& o) const {
  if (len != o.len) return len < o.len;
  return std::memcmp(b.data(), o.b.data(), len) < 0;
}

size_t KeyHash::operator()(const Key& k) const {
  uint64_t h = 0xcbf29ce484222325ULL ^ k.len;  // FNV-1a, then the flow hash's finaliser
  for (uint8_t i = 0; i < k.len; ++i) h = (h ^ k.b[i]) * 0x100000001b3ULL;
  return static_cast<size_t>(ac_mix64(h));
}

bool CellValue::operator==(const CellValue& o) const {
  return a == o.a && b == o.b && std::memcmp(&reg, &o.reg, sizeof reg) == 0;
}

namespace {
bool pow2(uint32_t v) { return v && (v & (v - 1)) == 0; }

uint32_t fnv1a(uint32_t h, uint32_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) h = (h ^ ((v >> (8 * i)) & 0xff)) * 16777619u;
  return h;
}
}  // namespace

Result<Schema> Schema::make(std::vector<ObjectSpec> objects) {
  Schema s;
  if (objects.empty()) return fail("state schema: no objects");
  if (objects.size() > 254) return fail("state schema: more than 254 objects");
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < objects.size(); ++i) {
    const ObjectSpec& o = objects[i];
    std::string what = "state object " + std::to_string(o.id) + (o.name.empty() ? "" : " (" + o.name + ")");
    if (o.id == 0 || o.id == 255) return fail(what + ": id must be 1..254");
    if (s.index_[o.id]) return fail(what + ": duplicate id");
    if (o.cells == 0) return fail(what + ": needs at least one cell");
    if (o.key_size > AC_CRDT_KEY_MAX) return fail(what + ": key larger than 40 bytes");
    switch (o.kind) {
      case Kind::GCounter:
      case Kind::PNCounter:
        if (o.rows) return fail(what + ": rows are for count-min sketches and Bloom filters");
        break;
      case Kind::CountMin:
        if (o.keyed()) return fail(what + ": a count-min sketch is an array (key size 0)");
        if (o.rows < 1 || o.rows > AC_CRDT_MAX_ROWS) return fail(what + ": rows must be 1..8");
        if (o.cells % o.rows || !pow2(o.cells / o.rows))
          return fail(what + ": cells must be rows x a power of two");
        break;
      case Kind::CountingBloom:
        if (o.keyed()) return fail(what + ": a Bloom filter is an array (key size 0)");
        if (o.rows < 1 || o.rows > AC_CRDT_MAX_ROWS) return fail(what + ": hashes (rows) must be 1..8");
        if (!pow2(o.cells)) return fail(what + ": cells must be a power of two");
        break;
      case Kind::AwSet:
      case Kind::RegMap:
        if (!o.keyed()) return fail(what + ": needs a key size (1..40)");
        if (o.rows) return fail(what + ": rows are for count-min sketches and Bloom filters");
        break;
      default:
        return fail(what + ": unknown kind " + std::to_string(static_cast<int>(o.kind)));
    }
    s.index_[o.id] = static_cast<int16_t>(i + 1);
    h = fnv1a(h, o.id, 1);
    h = fnv1a(h, static_cast<uint32_t>(o.kind), 1);
    h = fnv1a(h, o.cells, 4);
    h = fnv1a(h, o.key_size, 1);
    h = fnv1a(h, o.rows, 1);
  }
  s.objects_ = std::move(objects);
  s.digest_ = h;
  return s;
}

const ObjectSpec* Schema::find(uint8_t id) const {
  int16_t i = index_[id];
  return i ? &objects_[static_cast<size_t>(i - 1)] : nullptr;
}

}  // namespace anychain::state
