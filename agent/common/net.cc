#include "common/net.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <charconv>

namespace anychain {

std::string mac_str(const Mac& m) {
  return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5]);
}

std::optional<Mac> parse_mac(std::string_view s) {
  Mac m{};
  if (s.size() != 17) return std::nullopt;
  for (size_t i = 0; i < 6; ++i) {
    if (i && s[i * 3 - 1] != ':') return std::nullopt;
    unsigned v = 0;
    auto [p, ec] = std::from_chars(s.data() + i * 3, s.data() + i * 3 + 2, v, 16);
    if (ec != std::errc() || p != s.data() + i * 3 + 2) return std::nullopt;
    m[i] = static_cast<uint8_t>(v);
  }
  return m;
}

std::string_view to_string(XdpMode m) {
  switch (m) {
    case XdpMode::Native: return "native";
    case XdpMode::Generic: return "generic";
    case XdpMode::Auto: return "auto";
  }
  return "?";
}

Result<XdpMode> parse_xdp_mode(std::string_view s) {
  if (s == "native" || s == "drv") return XdpMode::Native;
  if (s == "generic" || s == "skb") return XdpMode::Generic;
  if (s == "auto") return XdpMode::Auto;
  return fail(fmt::format("unknown XDP mode '{}' (use native, generic or auto)", s), EINVAL);
}

Result<Prefix> parse_prefix(std::string_view text) {
  Prefix p;
  if (text == "any4" || text == "any") return p;  // 0.0.0.0/0
  if (text == "any6") {
    p.family = AF_INET6;
    return p;
  }
  auto slash = text.find('/');
  std::string addr(text.substr(0, slash));
  p.family = addr.find(':') != std::string::npos ? AF_INET6 : AF_INET;
  int maxlen = p.family == AF_INET ? 32 : 128;
  int len = maxlen;
  if (slash != std::string_view::npos) {
    auto ls = text.substr(slash + 1);
    auto [ptr, ec] = std::from_chars(ls.data(), ls.data() + ls.size(), len);
    if (ec != std::errc() || ptr != ls.data() + ls.size() || len < 0 || len > maxlen)
      return fail(fmt::format("bad prefix length in '{}' (0..{})", text, maxlen), EINVAL);
  }
  if (inet_pton(p.family, addr.c_str(), &p.addr) != 1)
    return fail(fmt::format("bad address in prefix '{}'", text), EINVAL);
  p.len = static_cast<uint8_t>(len);
  return p;
}

}  // namespace anychain
