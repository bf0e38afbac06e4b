// The test XDP program's objects (tests/state/crdt_test.bpf.c) as the agent's replication sees
// them: their schema and a BpfStore's maps over a loaded skeleton. Shared by the BPF store test
// and the state benchmark.
#pragma once

#include <bpf/libbpf.h>

#include "crdt_test.h"
#include "crdt_test.skel.h"
#include "state/bpf_store.h"

namespace anychain::state {

inline const Schema& crdt_test_schema() {
  static const Schema s = *Schema::make({
      {.id = CT_OBJ_GC, .kind = Kind::GCounter, .name = "t_gc", .cells = CT_GC_CELLS},
      {.id = CT_OBJ_GCK, .kind = Kind::GCounter, .name = "t_gck", .cells = CT_GCK_KEYS, .key_size = 8},
      {.id = CT_OBJ_PN, .kind = Kind::PNCounter, .name = "t_pn", .cells = CT_PN_CELLS},
      {.id = CT_OBJ_CMS, .kind = Kind::CountMin, .name = "t_cms", .cells = CT_CMS_ROWS * CT_CMS_WIDTH,
       .rows = CT_CMS_ROWS},
      {.id = CT_OBJ_CBF, .kind = Kind::CountingBloom, .name = "t_cbf", .cells = CT_CBF_CELLS, .rows = CT_CBF_HASHES},
      {.id = CT_OBJ_SET, .kind = Kind::AwSet, .name = "t_set", .cells = CT_SET_KEYS, .key_size = 16},
      {.id = CT_OBJ_REG, .kind = Kind::RegMap, .name = "t_reg", .cells = CT_REG_KEYS, .key_size = 16},
  });
  return s;
}

inline BpfStoreMaps crdt_test_maps(const crdt_test_bpf* skel) {
  BpfStoreMaps m;
  m.objects = {{CT_OBJ_GC, bpf_map__fd(skel->maps.t_gc)},   {CT_OBJ_GCK, bpf_map__fd(skel->maps.t_gck)},
               {CT_OBJ_PN, bpf_map__fd(skel->maps.t_pn)},   {CT_OBJ_CMS, bpf_map__fd(skel->maps.t_cms)},
               {CT_OBJ_CBF, bpf_map__fd(skel->maps.t_cbf)}, {CT_OBJ_SET, bpf_map__fd(skel->maps.t_set)},
               {CT_OBJ_REG, bpf_map__fd(skel->maps.t_reg)}};
  m.ctl_fd = bpf_map__fd(skel->maps.ac_crdt_ctl);
  m.changes_fd = bpf_map__fd(skel->maps.ac_crdt_changes);
  m.stats_fd = bpf_map__fd(skel->maps.ac_crdt_stats);
  m.merge_prog_fd = bpf_program__fd(skel->progs.crdt_merge);
  return m;
}

}  // namespace anychain::state
