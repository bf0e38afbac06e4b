// libFuzzer target: the OSPF API message decoder (whole messages and the stream decoder).
// Property: whatever decodes re-encodes and decodes to the same message.
#include <cstddef>
#include <cstdint>

#include "ospf/api_msg.h"

using namespace anychain::ospf;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ByteView in(data, size);
  if (auto m = api::decode(in)) {
    auto again = api::encode(*m);
    if (!again) __builtin_trap();
    auto back = api::decode(*again);
    if (!back || !(*back == *m)) __builtin_trap();
  }
  // Stream decoding with chunk sizes taken from the first byte.
  if (size == 0) return 0;
  std::size_t chunk = 1 + data[0] % 64;
  api::StreamDecoder dec;
  for (std::size_t off = 1; off < size; off += chunk) {
    dec.feed(in.subspan(off, std::min(chunk, size - off)));
    for (int guard = 0; guard < 10000; ++guard) {
      auto n = dec.next();
      if (!n) {
        if (n.error().code == EPROTO) return 0;  // sticky framing error
        continue;
      }
      if (!*n) break;
    }
  }
  return 0;
}
