// One FTC hop over a packet's NSH (docs/ftc.md 3.5), byte for byte what bpf/nf_state.h does:
// replicate the predecessors' logs in order, strip the logs this hop is the tail of (with a
// commit entry for wrapped ones), run the NF's transaction, append its log (or its stub), and
// rebuild the NSH with include/anychain/ftc.h's ac_ftc_rebuild. The BPF fixtures compare the
// two; the simulation runs every instance on it.
#pragma once

#include <array>
#include <functional>
#include <optional>
#include <string>

#include "ftc/store.h"

namespace anychain::ftc {

struct HopConfig {
  uint16_t id = 0;        // this instance
  bool stateful = false;  // it runs transactions and appends logs (else a replica-only hop)
  // nf_peers: is this instance id an FTC instance this hop may replicate? (empty: every id)
  std::function<bool(uint16_t)> known;
};

enum class Verdict {
  Forward,  // nsh is the rebuilt NSH
  Hold,     // a gap: hand the packet (unchanged) to the process, gap names the record
  Drop,     // reason says why (counted)
  Plain,    // no control TLV: not an FTC packet, the NSH is left alone
};

struct NfResult {
  bool filter = false;  // the NF drops the packet: it becomes a propagating packet
};
// The NF's work for one packet. tx is null when the hop has no store for it (replica-only
// hop, store full, or not an FTC packet); a stateful NF then refuses the flow.
using NfFn = std::function<NfResult(Transaction* tx)>;

struct HopResult {
  Verdict verdict = Verdict::Drop;
  enum ac_ftc_stat reason = AC_FTC_ST_END;  // Drop and Hold
  std::string detail;
  Bytes nsh;                      // Forward
  std::optional<RecordKey> gap;   // Hold: the record the early log belongs to
  std::optional<Log> own;         // the log of this hop's transaction (whole, also when stubbed)
  bool stubbed = false;           // own did not fit the share: the packet carries its stub
  bool filtered = false;          // the NF filtered the packet: it left as a propagating packet
  std::array<uint64_t, AC_FTC_STAT_SLOTS> stats{};  // what the NF's counters add for this packet
};

HopResult run_hop(const HopConfig& cfg, Store& store, std::span<const uint8_t> nsh, const NfFn& nf);

// The stub that replaces a log over the share (docs/ftc.md 2.6).
Log stub_of(const Log& log);

}  // namespace anychain::ftc
