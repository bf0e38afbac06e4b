// What anychain-nf publishes about itself in <run_dir>/<name>.json (docs/nf.md, "Files"): its
// pid, its incarnation (start time, wall-clock ns), its XDP program and link, and the ids of its
// maps and programs, so that the agent and `anychain state` open them with
// bpf_map_get_fd_by_id() (the maps are not pinned: they live and die with the process). Written
// atomically (temporary file, rename) once the program is attached; removed at a clean exit.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "nf/kind.h"

namespace anychain::nf {

struct Published {
  std::string name;
  Kind kind = Kind::Monitor;
  uint32_t instance_id = 0;
  int pid = 0;
  uint64_t incarnation = 0;              // CLOCK_REALTIME ns at start: grows across restarts
  std::string iface;                     // the NF side of the veth (eth0)
  int ifindex = 0;                       // in the instance's namespace
  std::string program;                   // the attached XDP program's name
  uint32_t prog_id = 0;
  uint32_t link_id = 0;                  // the bpf_link holding the attachment
  std::map<std::string, uint32_t> maps;  // every map of the object, by name
  std::map<std::string, uint32_t> progs; // every program of the object, by name
  // Shared state (docs/state.md, issue 14): present when the object has bpf/nf_crdt.h's maps.
  struct Crdt {
    uint32_t merge_prog_id = 0;          // the never-attached merge program (0: none)
    uint32_t ctl_map_id = 0, changes_map_id = 0, stats_map_id = 0;
    uint32_t win_map_id = 0;             // ac_crdt_win (windowed objects' generations)
    uint32_t window_s = 0;               // the windows' length (0: no windowed object)
    // The replicated objects (the schema every instance of the service must share, agent/nf/crdt.h)
    struct Object {
      uint8_t id = 0;
      std::string kind;                  // state::to_string(Kind): gcounter, count-min, ...
      std::string map;                   // the map's name in the object
      uint32_t cells = 0;
      uint8_t key_size = 0, rows = 0;
      int generation = -1;               // windowed: 0 or 1
      uint32_t map_id = 0;
      // an add-wins set: seconds an element stays after its last add; a winner map: seconds after
      // its merged `seen` (CLOCK_TAI ns) an entry is deleted; 0: never (state/expiry.h)
      uint32_t expire_s = 0;
      bool operator==(const Object&) const = default;
    };
    std::vector<Object> objects;
  };
  std::optional<Crdt> crdt;

  uint32_t map_id(const std::string& n) const {
    auto it = maps.find(n);
    return it == maps.end() ? 0 : it->second;
  }
};

nlohmann::json to_json(const Published& p);
Result<Published> published_from_json(const nlohmann::json& j);

// <run_dir>/<name>.json
std::string published_path(const std::string& run_dir, const std::string& name);
Result<Published> read_published(const std::string& path);
Result<void> write_published(const std::string& path, const Published& p);  // atomic

// The files of this module (published, FTC control): JSON read whole; text written atomically
// (a temporary file beside it, renamed; the directory created).
Result<nlohmann::json> read_json_file(const std::string& path);
Result<void> write_file_atomic(const std::string& path, const std::string& text);

}  // namespace anychain::nf
