// The replicated objects of one service: ids, kinds and geometry (docs/state.md, Section 1).
// Every instance of the service must hold the same schema; its digest travels in every message
// and a mismatch is refused.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "anychain/crdt.h"
#include "common/error.h"

namespace anychain::state {

enum class Kind : uint8_t {
  GCounter = AC_CRDT_GCOUNTER,
  PNCounter = AC_CRDT_PNCOUNTER,
  CountMin = AC_CRDT_CMS,
  CountingBloom = AC_CRDT_CBF,
  AwSet = AC_CRDT_AWSET,
  RegMap = AC_CRDT_REGMAP,
};
const char* to_string(Kind k);

struct ObjectSpec {
  uint8_t id = 0;         // 1..254, unique in the schema
  Kind kind = Kind::GCounter;
  std::string name;       // for messages and status
  uint32_t cells = 0;     // array objects: cells (a count-min sketch: rows * width); hash: max keys
  uint8_t key_size = 0;   // 0: an array indexed by a u32; else the hash map's key bytes (1..40)
  uint8_t rows = 0;       // count-min rows / Bloom filter hashes (1..8); 0 for other kinds

  bool keyed() const { return key_size != 0; }
  // count-min: width - 1 (width = cells / rows, a power of two); Bloom filter: cells - 1
  uint32_t mask() const;
  bool operator==(const ObjectSpec&) const = default;
};

// Bytes of one record's value on the wire for a kind.
size_t wire_value_size(Kind k);

// A cell's key as it travels: the key bytes of a hash-map object, or the array index as 4
// big-endian bytes.
struct Key {
  uint8_t len = 0;
  std::array<uint8_t, AC_CRDT_KEY_MAX> b{};

  static Key index(uint32_t i);
  static Key bytes(const void* p, size_t n);  // n <= AC_CRDT_KEY_MAX
  uint32_t as_index() const;                  // the array index (len must be 4)
  bool operator==(const Key& o) const;
  bool operator<(const Key& o) const;
};
struct KeyHash {
  size_t operator()(const Key& k) const;
};

// One value of one origin's slot of a cell, by kind (host order). G-counter, count-min and Bloom
// filter cells use a; PN cells a (inc) and b (dec); set elements a (add) and b (rm); registers reg.
struct CellValue {
  uint64_t a = 0;
  uint64_t b = 0;
  ac_reg_value reg{};
  bool operator==(const CellValue& o) const;
};

class Schema {
 public:
  Schema() = default;
  // Checks ids, kinds, geometry (a count-min sketch's width and a Bloom filter's size are powers
  // of two, rows 1..8, key sizes 0..40 as the kind allows).
  static Result<Schema> make(std::vector<ObjectSpec> objects);

  const std::vector<ObjectSpec>& objects() const { return objects_; }
  const ObjectSpec* find(uint8_t id) const;
  uint32_t digest() const { return digest_; }

 private:
  std::vector<ObjectSpec> objects_;
  std::array<int16_t, 256> index_{};  // id -> position + 1
  uint32_t digest_ = 0;
};

}  // namespace anychain::state
