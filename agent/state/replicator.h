// The replication of one instance's objects to the other instances of its service
// (docs/state.md, Section 3): versions of local changes, delta ranges per peer with current
// values, acknowledgement vectors, retransmission, RTT, lagging peers and coalescing, stragglers,
// join from a snapshot, drain on leave, departed origins (relay, fold).
//
// Single-threaded: the caller (the daemon's event loop, or a test) calls on_datagram() for what
// the transport received and tick() often (every millisecond or so, and after input). Nothing
// here blocks.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <unordered_map>
#include <vector>

#include "state/gate.h"
#include "state/store.h"
#include "state/transport.h"

namespace anychain::state {

struct ReplicatorConfig {
  Identity me;                          // service, instance id, incarnation (process start)
  size_t max_message = kDefaultMessage; // UDP payload bytes
  uint64_t keepalive_us = 100'000;      // an idle peer gets an ack/keepalive this often
  uint64_t ack_delay_us = 2'000;        // an acknowledgement owed goes out within this
  uint64_t rto_initial_us = 200'000;    // before the first RTT sample
  uint64_t rto_min_us = 10'000;
  uint64_t rto_max_us = 2'000'000;
  uint64_t window_bytes = 256 * 1024;   // sent and not acknowledged, per peer
  double lag_rtt_factor = 2.0;          // lagging: srtt > factor x min RTT + slack
  uint64_t lag_rtt_slack_us = 1'000;
  uint64_t lookahead_min_us = 1'000;
  uint64_t lookahead_max_us = 1'000'000;
  uint64_t straggler_after_us = 5'000'000;
  uint64_t unreachable_after_us = 3'000'000;
  uint64_t max_skew_us = 60'000'000;    // wall-clock freshness of messages (0: off)
  size_t snapshot_burst = 64;           // snapshot chunks sent per tick
  uint64_t snapshot_linger_us = 30'000'000;  // a served snapshot is kept for re-requests
  uint64_t drain_timeout_us = 10'000'000;
  uint64_t gone_grace_us = 2'000'000;   // removed from the members without a leave: gone after this
  // its node lost (Member::lost: the router unreachable in the LSDB): gone after this, longer
  // than a partition that heals should last (docs/state.md 3.13)
  uint64_t node_gone_grace_us = 30'000'000;
  size_t max_messages_per_tick = 256;   // per peer
  bool coalesce = true;                 // false: a lagging peer is sent like any other
};

enum class PeerState : uint8_t { Active, Lagging, Straggler, Unreachable };
const char* to_string(PeerState s);

struct PeerStatus {
  uint32_t id = 0;
  Endpoint addr;
  bool member = false;
  uint64_t incarnation = 0;
  PeerState state = PeerState::Active;
  bool joining = false, draining = false;
  uint64_t acked = 0, sent = 0;         // versions of ours
  uint64_t srtt_us = 0, min_rtt_us = 0, rto_us = 0;
  uint64_t in_flight_bytes = 0;
  uint64_t msgs_sent = 0, bytes_sent = 0, records_sent = 0, retransmits = 0;
  uint64_t coalesced = 0;               // versions superseded before they were sent
  uint64_t msgs_received = 0;
  uint8_t wire_version = 0;             // of its last message (0: none yet); 1 cannot fold crashes
  // taken out of the members without a leave: declared gone in this many µs (its node lost:
  // the node grace); 0: not pending
  uint64_t gone_in_us = 0;
  bool node_lost = false;
};

struct ReplicatorStats {
  uint64_t version = 0;                 // our latest version
  uint64_t changes = 0;                 // local cell changes stamped (versions)
  uint64_t records_applied = 0;
  uint64_t records_own_origin = 0;      // records about ourselves (echoes: counters ignore them)
  uint64_t records_folded_origin = 0;   // late records of an origin already folded: dropped
  uint64_t records_no_slot = 0;         // a new origin with every slot taken: dropped
  uint64_t not_member = 0;              // authenticated messages from instances not in members
  uint64_t send_errors = 0;
  uint64_t snapshots_served = 0, snapshot_chunks_sent = 0;
  uint64_t folded = 0, gone = 0, relayed_cells = 0;
  uint64_t folded_gone = 0;             // of `folded`: gone (crashed) origins folded (3.12)
  uint64_t gone_adopted = 0;            // of `gone`: learnt from another member's gone section
  uint64_t gone_node_lost = 0;          // of `gone`: its node lost for node_gone_grace_us (3.13)
  uint64_t gone_sender = 0;             // messages sent by an origin declared gone: dropped
  uint64_t declared_gone_self = 0;      // another member names this incarnation gone: restart it
  uint64_t store_errors = 0;
};

enum class JoinState : uint8_t { None, Requested, Receiving, Done };

class Replicator {
 public:
  Replicator(ReplicatorConfig cfg, Store& store, Transport& transport, std::shared_ptr<const Keyring> keys,
             const Clock& clock);

  // The other instances of the service (from the LSDB in the daemon). A member removed without
  // a leave becomes a gone origin (its slot is relayed).
  struct Member {
    uint32_t id = 0;
    Endpoint addr;
    // Announced by a node that the LSDB no longer connects to ours (dead, or beyond a
    // partition): not a member; gone after node_gone_grace_us unless it is a member again.
    bool lost = false;
  };
  void set_members(const std::vector<Member>& members);
  // A new keyring (rotation): takes effect for the next message in both directions.
  void set_keyring(std::shared_ptr<const Keyring> keys) { keys_ = std::move(keys); }
  // A reload's node grace: also for the lost members whose grace runs.
  void set_node_gone_grace(uint64_t us) { cfg_.node_gone_grace_us = us; }

  void on_datagram(ByteView datagram, const Endpoint& from);
  // Extract local changes, send what is due, retransmit, keep alive, serve snapshots, drain.
  void tick();
  // Receive everything the transport holds, then tick().
  void poll();

  // Join from a snapshot of `source` (or the member with the lowest RTT, then the lowest id).
  Result<void> join(std::optional<uint32_t> source = std::nullopt);
  JoinState join_state() const { return join_; }
  // Leave: keep replicating until every member acknowledged our last version, then LEAVE until
  // every member acknowledged it. drained() is true then (or after the timeout, see below).
  void leave();
  bool drained() const;
  bool drain_timed_out() const { return drain_timed_out_; }
  std::vector<uint32_t> drain_missing() const;  // members that did not acknowledge

  const ReplicatorStats& stats() const { return stats_; }
  std::vector<PeerStatus> peers() const;
  const Gate& gate() const { return gate_; }
  Origin self() const { return {cfg_.me.id, cfg_.me.incarnation}; }
  // Our contiguous version of each origin's changes (the ack vector).
  std::map<Origin, uint64_t> received() const;
  // The origin held in each local slot (1..15), for status and tests.
  std::map<uint8_t, Origin> slots() const;
  const std::set<Origin>& folded() const { return folded_; }
  // Gone origins still announced: relay version, or kGoneFolded once folded here (3.12).
  std::map<Origin, uint64_t> gone() const;

 private:
  struct CellId {
    uint8_t object = 0;
    Key key;
    bool operator==(const CellId& o) const { return object == o.object && key == o.key; }
  };
  struct CellHash {
    size_t operator()(const CellId& c) const { return KeyHash{}(c.key) * 31 + c.object; }
  };
  struct RecvState {
    uint64_t contig = 0;
    std::map<uint64_t, uint64_t> ranges;  // out of order: from -> to, above contig, disjoint
    bool add(uint64_t from, uint64_t to);  // true if contig advanced
    void raise(uint64_t v);                // contig = max(contig, v) (a snapshot's coverage)
  };
  struct InFlight {
    uint64_t to;
    size_t bytes;
  };
  struct TheirGone {
    uint64_t relay = 0;                // its relay version, kGoneFolded once it folded (max)
    uint64_t since_seq = 0;            // the first of its messages that announced it
  };
  struct Peer {
    uint32_t id = 0;
    Endpoint addr;
    bool member = false;
    uint64_t incarnation = 0;          // 0: nothing received yet
    uint64_t acked = 0, sent = 0;
    uint64_t high_sent = 0;            // highest version ever sent (coalescing accounting)
    std::deque<InFlight> in_flight;
    uint64_t in_flight_bytes = 0;
    uint64_t last_progress_us = 0;     // acked advanced, or sending began
    uint64_t rto_us = 0, srtt_us = 0, rttvar_us = 0, min_rtt_us = 0, min_rtt_at_us = 0;
    bool have_rtt = false;
    uint64_t last_rx_us = 0, last_tx_us = 0;
    uint64_t echo_tx_us = 0, echo_rx_at_us = 0;
    bool ack_owed = false;
    uint64_t ack_owed_since_us = 0;
    bool joining = false, draining = false;
    std::map<Origin, uint64_t> their_acks;
    std::map<Origin, TheirGone> their_gone;  // its gone section
    uint8_t wire_version = 0;               // of its last message
    PeerState state = PeerState::Active;
    uint64_t lagging_since_us = 0;
    uint64_t next_flush_us = 0;
    // its leave
    uint64_t removed_us = 0;           // taken out of the members (not leaving): gone after the grace
    bool node_lost = false;            // removed because its node is lost: the node grace applies
    bool leave_seen = false;
    uint64_t leave_final = 0;
    uint64_t leave_ack_sent = 0;       // the final version we acknowledged to it
    // our leave
    uint64_t leave_acked = 0;          // the final version it acknowledged
    uint64_t leave_sent_us = 0;
    // counters
    uint64_t msgs_sent = 0, bytes_sent = 0, records_sent = 0, retransmits = 0, coalesced = 0, msgs_received = 0;
  };
  struct Snapshot {
    uint32_t id = 0;
    uint32_t joiner = 0;
    uint64_t joiner_incarnation = 0;
    std::vector<AckEntry> coverage;
    std::vector<Origin> origins;       // slot table: index = slot (slot 0 = us)
    std::vector<std::vector<WireRecord>> chunks;
    std::deque<uint16_t> queue;        // chunks to send
    uint64_t touched_us = 0;
  };
  struct Incoming {                    // the snapshot we are joining from
    uint32_t source = 0;
    uint32_t id = 0;
    uint16_t chunks = 0;
    std::vector<bool> have;
    size_t received = 0;
    std::map<Origin, uint64_t> coverage;
    uint64_t progress_us = 0;
    uint64_t requested_us = 0;
  };

  // local versions
  void stamp(const CellId& c);
  void extract();
  // origins and slots
  std::optional<uint8_t> slot_of(const Origin& o, bool allocate);
  std::optional<uint8_t> reserved_slot(const Origin& o);  // a folded origin's live set adds
  void origin_gone(const Origin& o);
  void try_folds();
  void try_gone_folds();
  bool fold_slot(const Origin& o);
  void unpin(std::vector<uint64_t>& pins);
  void on_gone(Peer& p, const Message& m);
  // sending
  Message header_for(Peer& p, MsgType t);
  bool send(Peer& p, Message& m, size_t records);
  void send_range(Peer& p, size_t max_msgs);
  void send_keepalive(Peer& p);
  void answer_leave(uint32_t id, Peer& p);
  std::vector<AckEntry> ack_vector() const;
  std::vector<GoneEntry> gone_section(const Peer& p) const;
  void update_state(Peer& p, uint64_t now);
  // receiving
  Peer* peer_for(const Message& m);
  void on_ack(Peer& p, const std::vector<AckEntry>& acks, uint64_t now);
  void on_rtt(Peer& p, const Header& h, uint64_t now);
  size_t apply_records(const Message& m);
  void on_delta(Peer& p, const Message& m);
  void on_snap_req(Peer& p, const Message& m);
  void on_snap(Peer& p, const Message& m);
  void on_leave(Peer& p, const Message& m);
  void serve_snapshots(uint64_t now);
  void join_progress(uint64_t now);
  void drain_progress(uint64_t now);
  uint64_t lookahead(const Peer& p) const;

  ReplicatorConfig cfg_;
  Store& store_;
  Transport& transport_;
  std::shared_ptr<const Keyring> keys_;
  const Clock& clock_;
  Gate gate_;
  uint64_t seq_ = 0;

  uint64_t cur_ = 0;
  std::map<uint64_t, CellId> index_;                     // version -> cell (latest only)
  std::unordered_map<CellId, uint64_t, CellHash> version_of_;
  SlotMask relayed_ = 0;                                  // slots of gone origins we relay

  std::map<Origin, uint8_t> slot_;                        // remote origin -> local slot
  std::array<std::optional<Origin>, AC_CRDT_SLOTS> origin_of_{};
  std::set<Origin> folded_;
  // A gone origin (3.12): the versions of its relay stamps stay in index_ (pinned) until it is
  // folded, so a member that acknowledged our relay version holds every relayed cell even if
  // the cell was stamped again since.
  struct GoneState {
    uint64_t relay = 0;                 // our relay version (0: we held none of it)
    std::vector<uint64_t> pins;
    bool folded = false;                // folded here; still announced until every member folded it
  };
  std::map<Origin, GoneState> gone_;
  std::map<uint64_t, uint32_t> pins_;   // version -> gone origins pinning it
  std::set<Origin> dead_;               // every origin ever declared gone: its messages are refused
  std::map<Origin, RecvState> recv_;

  std::map<uint32_t, Peer> peers_;
  std::map<uint32_t, Snapshot> snapshots_;                // by id
  uint32_t next_snap_id_ = 1;

  JoinState join_ = JoinState::None;
  std::optional<uint32_t> join_source_;
  Incoming incoming_;

  uint64_t last_fold_try_us_ = 0;

  bool leaving_ = false;
  uint64_t leave_started_us_ = 0;
  bool drain_timed_out_ = false;

  ReplicatorStats stats_;
};

}  // namespace anychain::state
