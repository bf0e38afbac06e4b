// anychain-crdt-test-nf: the test XDP program (crdt_test.bpf.c) as a stand-in stateful NF for
// the replication lab test (tests/integration/state_lab_test.py): loads it, publishes its maps,
// merge program and replicated objects in <run_dir>/<name>.json the way anychain-nf does (a new
// incarnation each start), and then answers one command per stdin line until EOF:
//   add INDEX AMOUNT   the packet path adds AMOUNT to counter t_gc[INDEX]; prints "ok"
//   value INDEX        prints what the packet path reads: own slot + the merged others
// The maps live as long as the process.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <iostream>
#include <sstream>
#include <string>

#include "crdt_test.h"
#include "crdt_test.skel.h"
#include "nf/published.h"

namespace {

uint32_t obj_id(int fd) {
  bpf_map_info info{};
  uint32_t len = sizeof info;
  return bpf_obj_get_info_by_fd(fd, &info, &len) == 0 ? info.id : 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: anychain-crdt-test-nf RUN_DIR NAME INSTANCE_ID\n";
    return 2;
  }
  using anychain::nf::Published;
  crdt_test_bpf* skel = crdt_test_bpf__open_and_load();
  if (!skel) {
    std::cerr << "load crdt_test: " << std::strerror(errno) << "\n";
    return 1;
  }
  Published p;
  p.name = argv[2];
  p.instance_id = static_cast<uint32_t>(std::stoul(argv[3]));
  p.pid = getpid();
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  p.incarnation = static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
  p.iface = "none";
  p.program = "crdt_update";
  for (bpf_map* m : {skel->maps.t_gc, skel->maps.t_gck, skel->maps.t_pn, skel->maps.t_cms, skel->maps.t_cbf,
                     skel->maps.t_set, skel->maps.t_reg, skel->maps.ac_crdt_ctl, skel->maps.ac_crdt_changes,
                     skel->maps.ac_crdt_stats})
    p.maps[bpf_map__name(m)] = obj_id(bpf_map__fd(m));
  bpf_prog_info pi{};
  uint32_t len = sizeof pi;
  bpf_obj_get_info_by_fd(bpf_program__fd(skel->progs.crdt_merge), &pi, &len);
  p.crdt = Published::Crdt{pi.id, p.map_id("ac_crdt_ctl"), p.map_id("ac_crdt_changes"), p.map_id("ac_crdt_stats")};
  p.crdt_objects = {{CT_OBJ_GC, "gcounter", "t_gc", CT_GC_CELLS, 0, 0},
                    {CT_OBJ_GCK, "gcounter", "t_gck", CT_GCK_KEYS, 8, 0},
                    {CT_OBJ_PN, "pncounter", "t_pn", CT_PN_CELLS, 0, 0},
                    {CT_OBJ_CMS, "count-min", "t_cms", CT_CMS_ROWS * CT_CMS_WIDTH, 0, CT_CMS_ROWS},
                    {CT_OBJ_CBF, "counting-bloom", "t_cbf", CT_CBF_CELLS, 0, CT_CBF_HASHES},
                    {CT_OBJ_SET, "add-wins-set", "t_set", CT_SET_KEYS, 16, 0},
                    {CT_OBJ_REG, "winner-map", "t_reg", CT_REG_KEYS, 16, 0}};
  std::string path = anychain::nf::published_path(argv[1], p.name);
  if (auto r = anychain::nf::write_published(path, p); !r) {
    std::cerr << r.error().str() << "\n";
    return 1;
  }
  std::cout << "published " << path << std::endl;
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream in(line);
    std::string cmd;
    uint32_t index = 0;
    in >> cmd >> index;
    if (cmd == "add") {
      uint64_t amount = 0;
      in >> amount;
      crdt_test_op o{};
      o.code = CT_GC_ADD;
      o.index = index;
      o.amount = amount;
      uint8_t frame[14 + sizeof o] = {};
      std::memcpy(frame + 14, &o, sizeof o);
      uint8_t out[sizeof frame + 64];
      LIBBPF_OPTS(bpf_test_run_opts, t, .data_in = frame, .data_out = out, .data_size_in = sizeof frame,
                  .data_size_out = sizeof out, .repeat = 1);
      bool ok = bpf_prog_test_run_opts(bpf_program__fd(skel->progs.crdt_update), &t) == 0 && t.retval == XDP_PASS;
      std::cout << (ok ? "ok" : "error") << std::endl;
    } else if (cmd == "value") {
      ac_gcounter c{};
      if (bpf_map_lookup_elem(bpf_map__fd(skel->maps.t_gc), &index, &c) == 0)
        std::cout << c.slot[0] + c.others << std::endl;
      else
        std::cout << "error" << std::endl;
    } else {
      std::cout << "error: unknown command" << std::endl;
    }
  }
  ::unlink(path.c_str());
  crdt_test_bpf__destroy(skel);
  return 0;
}
