// The shared-state objects of a built-in NF (docs/state.md 4): which maps of its BPF object are
// replicated objects, with their ids, kinds and geometry (the schema every instance of the
// service must share), as anychain-nf publishes them in <name>.json ("crdt") and as the agent
// opens them, by id, into a state::BpfStore over the instance's maps and merge program.
#pragma once

#include <memory>
#include <vector>

#include "common/error.h"
#include "common/unique_fd.h"
#include "nf/params.h"
#include "nf/published.h"
#include "state/bpf_store.h"

namespace anychain::nf {

// The NAT's shared entries are deleted this long after the idle timeout (as its own records).
inline constexpr uint32_t kNatSharedGrace = 30;

// The objects of an NF with its parameters' geometry (map ids 0); empty for a kind without
// shared state.
std::vector<Published::Crdt::Object> crdt_objects(const Params& p);

// The schema of published objects (ids, kinds, geometry), checked.
Result<state::Schema> crdt_schema(const Published::Crdt& c);

// An instance's objects opened by the ids it published: the fds are this object's, the maps the
// instance process's (ENOENT once it is gone).
struct CrdtStore {
  std::vector<UniqueFd> fds;
  std::unique_ptr<state::BpfStore> store;
};
Result<CrdtStore> open_crdt_store(const Published& p);

}  // namespace anychain::nf
