// Private to the config module: reading YAML with every error collected at its line:column.
// MapReader is how every section and list entry is read, so unknown keys, duplicates, types
// and ranges are reported the same way everywhere.
#pragma once

#include <arpa/inet.h>
#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/net.h"
#include "config/config.h"

namespace anychain::config::detail {

inline Mark mark_of(const YAML::Node& n) {
  if (!n.IsDefined()) return {};
  YAML::Mark m = n.Mark();
  if (m.is_null()) return {};
  return {m.line + 1, m.column + 1};
}

inline const char* kind_of(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null: return "null";
    case YAML::NodeType::Scalar: return "a scalar";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a map";
    default: return "nothing";
  }
}

inline bool valid_name(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           c == '.';
  });
}

inline bool parse_u64(std::string_view s, uint64_t& out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

inline bool parse_ipv4(const std::string& s, in_addr* out = nullptr) {
  in_addr a{};
  if (inet_pton(AF_INET, s.c_str(), &a) != 1) return false;
  if (out) *out = a;
  return true;
}

inline std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}


// A protocol name or number (any = 0)
inline std::optional<uint8_t> parse_proto(std::string_view s) {
  if (s == "any") return 0;
  if (s == "tcp") return 6;
  if (s == "udp") return 17;
  if (s == "icmp") return 1;
  if (s == "icmpv6" || s == "ipv6-icmp") return 58;
  uint64_t v;
  if (parse_u64(s, v) && v <= 255) return static_cast<uint8_t>(v);
  return std::nullopt;
}

// N or N-M, 0..65535, N <= M
inline bool parse_ports(std::string_view s, uint16_t& lo, uint16_t& hi) {
  auto dash = s.find('-');
  uint64_t a, b;
  if (dash == std::string_view::npos) {
    if (!parse_u64(s, a) || a > 65535) return false;
    b = a;
  } else if (!parse_u64(s.substr(0, dash), a) || !parse_u64(s.substr(dash + 1), b) || a > 65535 || b > 65535 ||
             a > b) {
    return false;
  }
  lo = static_cast<uint16_t>(a);
  hi = static_cast<uint16_t>(b);
  return true;
}

struct Ctx {
  std::string file;
  Diagnostics diags;
  void err(Mark m, std::string msg) { diags.push_back({file, m, std::move(msg)}); }
  void err(const YAML::Node& n, std::string msg) { err(mark_of(n), std::move(msg)); }
};

// One YAML map with a known set of keys: reports unknown and duplicate keys, then hands out
// typed values, reporting wrong types and ranges at the value's position.
class MapReader {
 public:
  MapReader(Ctx& ctx, const YAML::Node& node, std::string what, std::vector<std::string> allowed)
      : ctx_(ctx), node_(node), what_(std::move(what)) {
    if (!node.IsMap()) {
      ctx.err(node, fmt::format("{}: expected a map, got {}", what_, kind_of(node)));
      ok_ = false;
      return;
    }
    for (const auto& kv : node) {
      const YAML::Node& k = kv.first;
      if (!k.IsScalar()) {
        ctx.err(k, fmt::format("{}: keys must be scalars", what_));
        continue;
      }
      std::string key = k.Scalar();
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
        ctx.err(k, fmt::format("{}: unknown key '{}' (expected one of: {})", what_, key, join(allowed)));
        continue;
      }
      if (values_.count(key)) {
        ctx.err(k, fmt::format("{}: duplicate key '{}'", what_, key));
        continue;
      }
      values_.emplace(key, kv.second);
    }
  }

  bool ok() const { return ok_; }
  Mark mark() const { return mark_of(node_); }
  const std::string& what() const { return what_; }

  std::optional<YAML::Node> get(const std::string& key, bool required) {
    auto it = values_.find(key);
    if (it == values_.end()) {
      if (required && ok_) ctx_.err(node_, fmt::format("{}: missing required key '{}'", what_, key));
      return std::nullopt;
    }
    return it->second;
  }

  std::optional<YAML::Node> scalar(const std::string& key, bool required, const char* expected) {
    auto n = get(key, required);
    if (!n) return std::nullopt;
    if (!n->IsScalar()) {
      ctx_.err(*n, fmt::format("{}: '{}' must be {}, got {}", what_, key, expected, kind_of(*n)));
      return std::nullopt;
    }
    return n;
  }

  bool str(const std::string& key, std::string& out, bool required = false) {
    auto n = scalar(key, required, "a string");
    if (!n) return false;
    out = n->Scalar();
    return true;
  }

  bool name(const std::string& key, std::string& out, bool required = true) {
    auto n = scalar(key, required, "a name");
    if (!n) return false;
    if (!valid_name(n->Scalar())) {
      ctx_.err(*n, fmt::format("{}: bad {} '{}' (1..64 characters of A-Z a-z 0-9 _ . -)", what_, key, n->Scalar()));
      return false;
    }
    out = n->Scalar();
    return true;
  }

  template <class T>
  bool uint(const std::string& key, T& out, uint64_t lo, uint64_t hi, bool required = false) {
    auto n = scalar(key, required, "an integer");
    if (!n) return false;
    uint64_t v;
    if (!parse_u64(n->Scalar(), v)) {
      ctx_.err(*n, fmt::format("{}: '{}' must be an integer, got '{}'", what_, key, n->Scalar()));
      return false;
    }
    if (v < lo || v > hi) {
      ctx_.err(*n, fmt::format("{}: '{}' = {} out of range {}..{}", what_, key, v, lo, hi));
      return false;
    }
    out = static_cast<T>(v);
    return true;
  }

  // A duration given as an integer count of D's unit (the key names the unit, e.g. _ms).
  template <class D>
  bool duration(const std::string& key, D& out, uint64_t lo, uint64_t hi) {
    typename D::rep v{};
    if (!uint(key, v, lo, hi)) return false;
    out = D(v);
    return true;
  }

  bool boolean(const std::string& key, bool& out) {
    auto n = scalar(key, false, "true or false");
    if (!n) return false;
    const std::string& s = n->Scalar();
    if (s == "true" || s == "yes" || s == "on") {
      out = true;
    } else if (s == "false" || s == "no" || s == "off") {
      out = false;
    } else {
      ctx_.err(*n, fmt::format("{}: '{}' must be true or false, got '{}'", what_, key, s));
      return false;
    }
    return true;
  }

  bool real(const std::string& key, double& out, double lo, double hi) {
    auto n = scalar(key, false, "a number");
    if (!n) return false;
    const std::string& s = n->Scalar();
    double v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size()) {
      ctx_.err(*n, fmt::format("{}: '{}' must be a number, got '{}'", what_, key, s));
      return false;
    }
    if (!(v >= lo && v <= hi)) {
      ctx_.err(*n, fmt::format("{}: '{}' = {} out of range {}..{}", what_, key, s, lo, hi));
      return false;
    }
    out = v;
    return true;
  }

  // A prefix ("any", "10.0.0.0/8", "2001:db8::/32"); ipv4_only for anycast addresses.
  bool prefix(const std::string& key, std::string& out, bool required, bool ipv4_only) {
    auto n = scalar(key, required, "a prefix");
    if (!n) return false;
    auto p = parse_prefix(n->Scalar());
    if (!p) {
      ctx_.err(*n, fmt::format("{}: {}", what_, p.error().message));
      return false;
    }
    if (ipv4_only && (p->family != AF_INET || n->Scalar().starts_with("any"))) {
      ctx_.err(*n, fmt::format("{}: '{}' must be an IPv4 prefix, got '{}'", what_, key, n->Scalar()));
      return false;
    }
    out = n->Scalar();
    return true;
  }

  Ctx& ctx() { return ctx_; }

 private:
  Ctx& ctx_;
  YAML::Node node_;
  std::string what_;
  bool ok_ = true;
  std::map<std::string, YAML::Node> values_;
};


inline void sort_diags(Diagnostics& d) {
  std::stable_sort(d.begin(), d.end(), [](const Diagnostic& a, const Diagnostic& b) {
    return std::pair(a.mark.line, a.mark.column) < std::pair(b.mark.line, b.mark.column);
  });
}


}  // namespace anychain::config::detail
