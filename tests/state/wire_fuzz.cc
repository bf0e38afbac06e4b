// libFuzzer target: the state replication message decoder (agent/state/wire.cc, docs/state.md 3.8).
// Each input is decoded twice: as received (almost always refused at the tag), and re-signed
// with the test key after its version and length fields are made consistent, so the fuzzer
// reaches the body parser. Properties: nothing crashes or leaks; whatever decodes re-encodes to
// exactly the same bytes (the format has one encoding per message).
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "state/wire.h"

using namespace anychain::state;

namespace {
const Schema& schema() {
  static const Schema s = *Schema::make({
      {.id = 1, .kind = Kind::GCounter, .name = "gc", .cells = 16},
      {.id = 2, .kind = Kind::PNCounter, .name = "pn", .cells = 64, .key_size = 8},
      {.id = 3, .kind = Kind::CountMin, .name = "cms", .cells = 4 * 64, .rows = 4},
      {.id = 4, .kind = Kind::CountingBloom, .name = "cbf", .cells = 256, .rows = 3},
      {.id = 5, .kind = Kind::AwSet, .name = "set", .cells = 64, .key_size = 16},
      {.id = 6, .kind = Kind::RegMap, .name = "reg", .cells = 64, .key_size = 13},
  });
  return s;
}
const Keyring& keys() {
  static const auto k = *Keyring::make({{1, std::vector<uint8_t>(32, 0x42)}}, 1);
  return *k;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ByteView in(data, size);
  (void)decode(in, schema(), keys());
  if (size < kHeaderSize + kTagSize || size > kMaxMessage) return 0;
  Bytes b(data, data + size);
  b[0] = (data[0] & 2) ? kWireVersionMin : kWireVersion;  // both versions a peer may speak
  b[2] = 1;
  size_t body = size - kHeaderSize - kTagSize;
  b[6] = static_cast<uint8_t>(body >> 8);
  b[7] = static_cast<uint8_t>(body);
  // the schema digest too, half of the time, so records are parsed
  if (data[0] & 1) {
    uint32_t d = schema().digest();
    for (int i = 0; i < 4; ++i) b[8 + i] = static_cast<uint8_t>(d >> (24 - 8 * i));
  }
  std::array<uint8_t, kTagSize> tag;
  if (!keys().tag(1, ByteView(b).first(b.size() - kTagSize), tag)) __builtin_trap();
  std::memcpy(b.data() + b.size() - kTagSize, tag.data(), kTagSize);
  auto m = decode(b, schema(), keys());
  if (!m) return 0;
  auto again = encode(*m, schema(), keys());
  if (!again || *again != b) __builtin_trap();
  return 0;
}
