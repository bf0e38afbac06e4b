// anychain-nf's core (docs/nf.md, "The process"): load an NF's BPF object, configure its maps
// from the Params, attach its XDP program to the NF side of the veth with a bpf_link (held by
// this process only: it is detached when the process exits or is killed), publish the ids of
// its maps and programs, and reclaim idle state. Nothing is pinned: the instance's state lives
// and dies with the process.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>

#include "common/error.h"
#include "nf/ftc_control.h"
#include "nf/params.h"
#include "nf/published.h"

struct bpf_object;
struct bpf_link;

namespace anychain::nf {

struct LoadOptions {
  std::string name;                    // the instance's name (published as such)
  std::string iface = AC_NF_IFNAME;    // where to attach
  bool attach = true;                  // false: load and configure only (fixtures run the program
                                       // with BPF_PROG_TEST_RUN)
  std::string object_path;             // another object than the kind's embedded one (development,
                                       // tests); program: its XDP program ("" = the kind's)
  std::string program;
  uint32_t flows = kHeadFlowsDefault;  // nf_head records: partitions with state
  uint32_t replica_records = kReplicaRecordsDefault;  // nf_replica records (docs/ftc.md 3.1)
  std::chrono::seconds reclaim_grace{30}; // after the idle timeout, before a record is deleted
};

struct ReclaimStats {
  uint64_t records = 0;                // nf_head records deleted (idle past timeout + grace)
  uint64_t replicas = 0;               // nf_replica records deleted (idle past their head's timeout)
  uint64_t mappings = 0;               // NAT: reverse entries whose mapping is gone, ports given back
  uint64_t shared = 0;                 // NAT: shared-table entries whose merged `seen` is too old
  uint64_t held = 0;                   // NAT: ports no record holds, kept while the shared table
                                       // still maps them (another instance's flow; docs/state.md 4.3)
};

class Nf {
 public:
  static Result<std::unique_ptr<Nf>> load(const Params& p, const LoadOptions& o);
  ~Nf();
  Nf(const Nf&) = delete;
  Nf& operator=(const Nf&) = delete;

  const Params& params() const { return params_; }
  const Published& published() const { return pub_; }
  bpf_object* object() const { return obj_; }
  int prog_fd() const;
  int map_fd(const std::string& name) const;  // -1 if the object has no such map

  // One reclaim pass (docs/ftc.md 6.2). A record counts as idle once its last_used has not moved
  // for a while, measured on `now` (so no kernel clock is needed): a head record after the idle
  // timeout plus the grace, a replica record after its head's idle timeout (the peer's
  // idle_timeout_s in the FTC control, kFtcDefaultPeerIdle for a middlebox it does not list; 0:
  // never), so replicas go first and a head that starts a partition anew at seq 1 meets no old
  // replica record. Idle records are deleted. The NAT then gives back the ports (and drops the
  // reverse entries) of mappings no record holds any more: those of deleted records and of
  // mappings reset by an idle transaction, unless the shared table still maps the port to the
  // same inside flow (another instance translates the flow with it: docs/state.md 4.3); the
  // shared table's entries expire first, by their merged seen against `tai_ns` (CLOCK_TAI, ns;
  // the one-argument form reads the clock). Counted in nf_proc_stats.
  Result<ReclaimStats> reclaim(std::chrono::steady_clock::time_point now);
  Result<ReclaimStats> reclaim(std::chrono::steady_clock::time_point now, uint64_t tai_ns);

  // Apply an FTC control (docs/nf.md, "FTC control"): the incarnation into nf_ftc_cfg, the peers
  // into nf_peers (listed ids set to incarnation + 1, the others cleared), the peers' idle
  // timeouts for reclaim. Counted (control_loads) in nf_proc_stats.
  Result<void> apply_control(const FtcControl& c);
  const FtcControl& control() const { return control_; }
  // Add n to slot s of nf_proc_stats (the process's own counters)
  void count(uint32_t s, uint64_t n = 1) const;
  // Windowed objects (ids, ratelimit; docs/state.md 4.1): move to the window of `realtime_ns`
  // (CLOCK_REALTIME, window_s long) if it is later than the current one: the generation of the
  // new window is reset and given it (unless it was prepared already), the packet path switches
  // to it, and the other generation is reset and given the next window. Returns whether the
  // window moved; false as well for a kind without windows or a clock that went back.
  Result<bool> roll_windows(uint64_t realtime_ns);

  // The interface the program is attached to still exists with the same ifindex.
  bool iface_present() const;
  // Slot s of nf_ftc_stats (enum ac_ftc_stat), summed over CPUs; 0 for a kind without FTC.
  Result<uint64_t> ftc_counter(uint32_t s) const;

 private:
  Nf() = default;
  Result<void> configure();
  Result<void> do_attach();
  Result<void> fill_ids();
  // Give back the ports of reverse entries no record holds; `held` counts those kept because
  // nat_shared still maps them to the same inside flow.
  Result<uint64_t> reclaim_nat_ports(uint64_t& held);
  // Delete the shared-table entries (every instance's) whose merged seen (CLOCK_TAI) is older
  // than `limit` at `tai_ns`: each replica does the same from the same merged state (docs/state.md 4.3).
  Result<uint64_t> expire_nat_shared(std::chrono::seconds limit, uint64_t tai_ns);
  Result<void> reset_generation(int g);  // every windowed object of generation g, all zero

  Params params_;
  LoadOptions opts_;
  Published pub_;
  bpf_object* obj_ = nullptr;
  bpf_link* link_ = nullptr;
  void* pool_ = nullptr;               // the NAT's mmapped port bitmap
  struct Seen {
    uint64_t last_used;
    std::chrono::steady_clock::time_point since;
  };
  std::map<uint64_t, Seen> seen_;      // nf_head key (spi_si << 32 | hash) -> last_used and since when
  std::map<std::tuple<uint32_t, uint32_t, uint32_t>, Seen> seen_replica_;  // nf_replica key -> the same
  FtcControl control_;
  Result<uint64_t> reclaim_replicas(std::chrono::steady_clock::time_point now);
};

// anychain-nf's warning when a store of FTC records is full (docs/ftc.md 3.1): a transaction
// refused for want of a head record (ftc_store_full) or a predecessor's log refused for want of a
// replica record (ftc_replica_full) is state lost to recovery, which only the counters in
// `anychain state` showed. update() is given the counters on every tick and returns a warning the
// first time either moves and then at most once every `every` while they keep moving, naming how
// many were refused, the store's size and the option that sizes it.
class StoreFullWatch {
 public:
  StoreFullWatch(uint32_t head_records, uint32_t replica_records,
                 std::chrono::steady_clock::duration every = std::chrono::minutes(1))
      : head_(head_records), replica_(replica_records), every_(every) {}
  std::optional<std::string> update(uint64_t store_full, uint64_t replica_full,
                                    std::chrono::steady_clock::time_point now);

 private:
  uint32_t head_, replica_;
  std::chrono::steady_clock::duration every_;
  uint64_t store_seen_ = 0, replica_seen_ = 0;  // counts at the last warning
  std::optional<std::chrono::steady_clock::time_point> warned_;
};

// The kernel's tick, and a duration as jiffies (rounded up), for the idle timeouts the programs
// compare with bpf_jiffies64().
uint64_t tick_ns();
uint64_t seconds_to_jiffies(uint64_t s);

}  // namespace anychain::nf
