// The kinds of built-in network function (docs/nf.md): their names, their XDP programs and
// whether they keep per-flow state. Each kind with a program is one BPF object,
// bpf/nf_<kind>.bpf.c, embedded in anychain-nf (its libbpf skeleton's ELF bytes).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace anychain::nf {

enum class Kind { Nat, Monitor, Firewall, Ids, Ratelimit, Replica };

struct KindInfo {
  Kind kind;
  std::string_view name;     // as in the config and on the command line
  std::string_view program;  // the XDP program's name in its object ("" = not built yet)
  bool stateful;             // keeps per-flow state through bpf/nf_state.h (an FTC head)
  uint32_t idle_timeout_s;   // default idle timeout of its per-flow state (0: none)
  std::string_view what;     // one line for help texts
};

std::span<const KindInfo> kinds();
const KindInfo& info(Kind k);
std::string_view to_string(Kind k);
std::optional<Kind> parse_kind(std::string_view s);
// "nat, monitor, firewall" (kinds with a program; all = every kind)
std::string kind_names(bool all = false);

// The largest log TLV (its 4-byte header included, padded as on the wire) an FTC head of the
// kind appends for one packet: the log header and the largest write its program makes (the
// monitor's IPv6 flow, the NAT's mapping); 0 for a kind that writes no per-flow state. Compared
// with ac_ftc_share(f) as bpf/nf_state.h does: a larger log goes as a stub (docs/ftc.md 2.6).
uint32_t ftc_log_tlv_max(Kind k);

// The kind's BPF object, embedded at build time; empty for a kind without a program.
std::span<const uint8_t> object_bytes(Kind k);

}  // namespace anychain::nf
