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

#include "crdt_test_nf.h"

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
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  const uint64_t incarnation = static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
  Published p = anychain::state::test::crdt_test_published(skel, argv[2], static_cast<uint32_t>(std::stoul(argv[3])),
                                                           incarnation, getpid());
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
      bool ok = true;
      try {
        anychain::state::test::crdt_test_run(skel, o);
      } catch (const std::exception&) {
        ok = false;
      }
      std::cout << (ok ? "ok" : "error") << std::endl;
    } else if (cmd == "value") {
      try {
        std::cout << anychain::state::test::crdt_test_gc_value(skel, index) << std::endl;
      } catch (const std::exception&) {
        std::cout << "error" << std::endl;
      }
    } else {
      std::cout << "error: unknown command" << std::endl;
    }
  }
  ::unlink(path.c_str());
  crdt_test_bpf__destroy(skel);
  return 0;
}
