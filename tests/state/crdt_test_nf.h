// The test XDP program (crdt_test.bpf.c) driven from user space and published like an NF
// instance (agent/nf/published.h), shared by the BPF store test, the daemon's replication test
// and anychain-crdt-test-nf (the stand-in stateful NF of the replication lab test).
#pragma once

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include <cstring>
#include <stdexcept>
#include <string>

#include "crdt_test.h"
#include "crdt_test.skel.h"
#include "nf/published.h"

namespace anychain::state::test {

// One operation through the update program (the packet path); o.result is its read result.
inline void crdt_test_run(crdt_test_bpf* skel, crdt_test_op& o) {
  uint8_t frame[14 + sizeof o] = {};
  std::memcpy(frame + 14, &o, sizeof o);
  uint8_t out[sizeof frame + 64];
  LIBBPF_OPTS(bpf_test_run_opts, t, .data_in = frame, .data_out = out, .data_size_in = sizeof frame,
              .data_size_out = sizeof out, .repeat = 1);
  if (bpf_prog_test_run_opts(bpf_program__fd(skel->progs.crdt_update), &t) || t.retval != XDP_PASS)
    throw std::runtime_error("crdt_update failed");
  std::memcpy(&o, out + 14, sizeof o);
}

// What a t_gc cell reads on the packet path: own slot plus the merged others.
inline uint64_t crdt_test_gc_value(crdt_test_bpf* skel, uint32_t index) {
  ac_gcounter c{};
  if (bpf_map_lookup_elem(bpf_map__fd(skel->maps.t_gc), &index, &c)) throw std::runtime_error("t_gc lookup");
  return c.slot[0] + c.others;
}

// The published file of the loaded program as instance `id`: its maps and merge program by id
// and its replicated objects (the schema of tests/state/bpf_store_test.cc).
inline nf::Published crdt_test_published(crdt_test_bpf* skel, const std::string& name, uint32_t id,
                                         uint64_t incarnation, int pid) {
  auto id_of = [](int fd) {
    bpf_map_info info{};
    uint32_t len = sizeof info;
    return bpf_obj_get_info_by_fd(fd, &info, &len) == 0 ? info.id : 0u;
  };
  nf::Published p;
  p.name = name;
  p.instance_id = id;
  p.pid = pid;
  p.incarnation = incarnation;
  p.iface = "none";
  p.program = "crdt_update";
  for (bpf_map* m : {skel->maps.t_gc, skel->maps.t_gck, skel->maps.t_pn, skel->maps.t_cms, skel->maps.t_cbf,
                     skel->maps.t_set, skel->maps.t_reg, skel->maps.ac_crdt_ctl, skel->maps.ac_crdt_changes,
                     skel->maps.ac_crdt_stats})
    p.maps[bpf_map__name(m)] = id_of(bpf_map__fd(m));
  bpf_prog_info pi{};
  uint32_t len = sizeof pi;
  bpf_obj_get_info_by_fd(bpf_program__fd(skel->progs.crdt_merge), &pi, &len);
  p.crdt = nf::Published::Crdt{};
  p.crdt->merge_prog_id = pi.id;
  p.crdt->ctl_map_id = p.map_id("ac_crdt_ctl");
  p.crdt->changes_map_id = p.map_id("ac_crdt_changes");
  p.crdt->stats_map_id = p.map_id("ac_crdt_stats");
  auto obj = [&](uint8_t oid, const char* kind, const char* map, uint32_t cells, uint8_t key_size, uint8_t rows) {
    nf::Published::Crdt::Object o;
    o.id = oid;
    o.kind = kind;
    o.map = map;
    o.cells = cells;
    o.key_size = key_size;
    o.rows = rows;
    o.map_id = p.map_id(map);
    return o;
  };
  p.crdt->objects = {obj(CT_OBJ_GC, "gcounter", "t_gc", CT_GC_CELLS, 0, 0),
                     obj(CT_OBJ_GCK, "gcounter", "t_gck", CT_GCK_KEYS, 8, 0),
                     obj(CT_OBJ_PN, "pncounter", "t_pn", CT_PN_CELLS, 0, 0),
                     obj(CT_OBJ_CMS, "count-min", "t_cms", CT_CMS_ROWS * CT_CMS_WIDTH, 0, CT_CMS_ROWS),
                     obj(CT_OBJ_CBF, "counting-bloom", "t_cbf", CT_CBF_CELLS, 0, CT_CBF_HASHES),
                     obj(CT_OBJ_SET, "add-wins-set", "t_set", CT_SET_KEYS, 16, 0),
                     obj(CT_OBJ_REG, "winner-map", "t_reg", CT_REG_KEYS, 16, 0)};
  return p;
}

}  // namespace anychain::state::test
