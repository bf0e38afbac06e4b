// The FTC control file of an NF instance (docs/nf.md, "FTC control"): what anychain-nf needs to
// know about the rest of the chain and cannot learn from its packets. The node's agent (or an
// operator) writes <run_dir>/ftc/<name>.json atomically; anychain-nf applies it at start, again on
// SIGHUP and whenever the file changes (checked every second), into nf_ftc_cfg (the instance's FTC
// incarnation) and nf_peers (the FTC instances whose logs it accepts, each with its known
// incarnation), and keeps the rest (f, successors, the peers' idle timeouts) for its own work:
// reclaiming replica records (docs/ftc.md 6.2). A file that does not parse is refused whole
// (counted, logged); the previous version stays applied. No file: incarnation 0, no peers (every
// log is refused as ftc_unknown_mbox, which is what a chain without FTC never sends).
//
//   {"version": 1, "f": 1, "incarnation": 0,
//    "peers": [{"id": 7, "incarnation": 0, "idle_timeout_s": 60}, {"id": 9}],
//    "successors": [9, 12]}
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/error.h"

namespace anychain::nf {

inline constexpr uint32_t kFtcDefaultPeerIdle = 300;  // the longest default idle timeout of the stateful kinds

struct FtcPeer {
  uint16_t id = 0;                    // instance id, 1..16383
  uint8_t incarnation = 0;            // its FTC incarnation as the agent knows it
  uint32_t idle_timeout_s = kFtcDefaultPeerIdle;  // its per-flow idle timeout: replica records of it
                                                  // idle this long are reclaimed (0: never)
  bool operator==(const FtcPeer&) const = default;
};

struct FtcControl {
  uint8_t f = 1;                      // the chain's f, 1..4 (informational: packets carry theirs)
  uint8_t incarnation = 0;            // this instance's FTC incarnation (nf_ftc_cfg.inc)
  std::vector<FtcPeer> peers;         // nf_peers: distinct ids
  std::vector<uint16_t> successors;   // the instances after this one that hold its replicas (as the
                                      // daemon computed them; shown by `anychain state`, for
                                      // re-requests and recovery)
  bool operator==(const FtcControl&) const = default;
};

// <run_dir>/ftc/<name>.json
std::string ftc_control_path(const std::string& run_dir, const std::string& name);
nlohmann::json to_json(const FtcControl& c);
// Every field checked, the error names it ("peers[2].id: 0 is out of range 1..16383").
Result<FtcControl> ftc_control_from_json(const nlohmann::json& j);
Result<FtcControl> read_ftc_control(const std::string& path);
Result<void> write_ftc_control(const std::string& path, const FtcControl& c);  // atomic (rename)

}  // namespace anychain::nf
