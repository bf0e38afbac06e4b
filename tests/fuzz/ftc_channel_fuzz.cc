// libFuzzer target: the FTC channel's decoder (agent/ftc/channel_msg.cc, docs/ftc.md 4.4).
// The first byte picks a message type, the rest is its body: decode_body must never crash, and
// whatever decodes re-encodes to exactly the same bytes (one encoding per message). The whole
// input is also fed as a stream to an established session, which must refuse it (it is not
// signed with the session's nonces) without reading past the input.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "ftc/channel_msg.h"

using namespace anychain::ftc::chan;

namespace {
std::shared_ptr<const anychain::state::Keyring> keys() {
  static const auto k = *anychain::state::Keyring::make({{1, std::vector<uint8_t>(32, 0x42)}}, 1);
  return k;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  auto t = static_cast<Type>(data[0]);
  ByteView body(data + 1, size - 1);
  auto d = decode_body(t, body);
  if (d) {
    if (type_of(*d) != t) std::abort();
    auto again = encode_body(*d);
    if (!again || again->size() != body.size() || !std::equal(body.begin(), body.end(), again->begin())) std::abort();
  }
  Nonce na{}, nb{};
  na.fill(1);
  nb.fill(2);
  Session a(keys(), 1, 2, na), b(keys(), 2, 0, nb);
  auto ha = *a.hello(100);
  auto hb = *b.hello(100);
  if (!b.next(ha) || !a.next(hb)) std::abort();
  std::vector<uint8_t> stream(data, data + size);
  for (int i = 0; i < 4; ++i) {
    auto m = b.next(stream);
    if (!m || !*m) break;
    std::abort();  // an unsigned input accepted
  }
  return 0;
}
