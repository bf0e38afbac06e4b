#include "state/auth.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <cctype>
#include <set>

namespace anychain::state {

namespace {
struct MacDeleter {
  void operator()(EVP_MAC* m) const { EVP_MAC_free(m); }
};
struct CtxDeleter {
  void operator()(EVP_MAC_CTX* c) const { EVP_MAC_CTX_free(c); }
};
using MacCtx = std::unique_ptr<EVP_MAC_CTX, CtxDeleter>;

int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}
}  // namespace

// One key: an HMAC-SHA256 context initialised with it; each message works on a copy.
struct Keyring::Entry {
  uint8_t id = 0;
  MacCtx base;
};

Result<std::vector<uint8_t>> parse_hex_key(std::string_view text) {
  if (text.starts_with("0x") || text.starts_with("0X")) text.remove_prefix(2);
  if (text.size() % 2) return fail("key: odd number of hex digits");
  if (text.size() < 2 * kMinKeyBytes || text.size() > 2 * kMaxKeyBytes)
    return fail("key: must be 32 to 64 bytes (64 to 128 hex digits), got " + std::to_string(text.size() / 2) + " bytes");
  std::vector<uint8_t> out;
  for (size_t i = 0; i < text.size(); i += 2) {
    int hi = hexval(text[i]), lo = hexval(text[i + 1]);
    if (hi < 0 || lo < 0) return fail("key: '" + std::string(text.substr(i, 2)) + "' is not hex");
    out.push_back(static_cast<uint8_t>(hi << 4 | lo));
  }
  return out;
}

Result<std::shared_ptr<const Keyring>> Keyring::make(const std::vector<KeySpec>& keys, uint8_t send_id) {
  if (keys.empty() || keys.size() > kMaxKeys) return fail("keyring: needs 1 to 4 keys");
  std::unique_ptr<EVP_MAC, MacDeleter> mac(EVP_MAC_fetch(nullptr, "HMAC", nullptr));
  if (!mac) return fail("keyring: OpenSSL has no HMAC");
  std::shared_ptr<Keyring> ring(new Keyring());
  std::set<uint8_t> seen;
  for (const KeySpec& k : keys) {
    std::string what = "keyring: key " + std::to_string(k.id);
    if (k.id == 0) return fail(what + ": ids are 1..255");
    if (!seen.insert(k.id).second) return fail(what + ": duplicate id");
    if (k.secret.size() < kMinKeyBytes || k.secret.size() > kMaxKeyBytes)
      return fail(what + ": must be 32 to 64 bytes, got " + std::to_string(k.secret.size()));
    auto e = std::make_unique<Entry>();
    e->id = k.id;
    e->base.reset(EVP_MAC_CTX_new(mac.get()));
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0), OSSL_PARAM_construct_end()};
    if (!e->base || !EVP_MAC_init(e->base.get(), k.secret.data(), k.secret.size(), params))
      return fail(what + ": HMAC-SHA256 init failed");
    ring->keys_.push_back(std::move(e));
  }
  if (!seen.count(send_id)) return fail("keyring: send key " + std::to_string(send_id) + " is not one of the keys");
  ring->send_id_ = send_id;
  return std::shared_ptr<const Keyring>(std::move(ring));
}

Keyring::~Keyring() = default;

const Keyring::Entry* Keyring::find(uint8_t id) const {
  for (const auto& e : keys_)
    if (e->id == id) return e.get();
  return nullptr;
}

bool Keyring::has(uint8_t id) const { return find(id) != nullptr; }

std::vector<uint8_t> Keyring::ids() const {
  std::vector<uint8_t> v;
  for (const auto& e : keys_) v.push_back(e->id);
  return v;
}

bool Keyring::tag(uint8_t id, std::span<const uint8_t> data, std::array<uint8_t, kTagSize>& out) const {
  const Entry* e = find(id);
  if (!e) return false;
  MacCtx c(EVP_MAC_CTX_dup(e->base.get()));
  uint8_t full[32];
  size_t n = 0;
  if (!c || !EVP_MAC_update(c.get(), data.data(), data.size()) || !EVP_MAC_final(c.get(), full, &n, sizeof full) ||
      n != sizeof full)
    return false;
  std::copy(full, full + kTagSize, out.begin());
  OPENSSL_cleanse(full, sizeof full);
  return true;
}

bool Keyring::verify(uint8_t id, std::span<const uint8_t> data, std::span<const uint8_t> tag) const {
  std::array<uint8_t, kTagSize> want;
  if (tag.size() != kTagSize || !this->tag(id, data, want)) return false;
  return CRYPTO_memcmp(want.data(), tag.data(), kTagSize) == 0;
}

}  // namespace anychain::state
