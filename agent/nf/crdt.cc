#include "nf/crdt.h"

#include <bpf/bpf.h>
#include <fmt/format.h>

#include "anychain/nf.h"

namespace anychain::nf {

std::vector<Published::Crdt::Object> crdt_objects(const Params& p) {
  using state::Kind;
  auto obj = [](uint8_t id, Kind k, const char* map, uint32_t cells, uint8_t key, uint8_t rows, int gen,
                uint32_t expire_s = 0) {
    return Published::Crdt::Object{id, state::to_string(k), map, cells, key, rows, gen, 0, expire_s};
  };
  switch (p.kind) {
    case nf::Kind::Ids: {
      const uint32_t sketch = p.ids_sketch_rows * p.ids_sketch_width;
      const auto h = static_cast<uint8_t>(p.ids_pairs_hashes), r = static_cast<uint8_t>(p.ids_sketch_rows);
      return {obj(AC_NF_IDS_OBJ_PAIRS0, Kind::CountingBloom, "ids_pairs0", p.ids_pairs_cells, 0, h, 0),
              obj(AC_NF_IDS_OBJ_PAIRS1, Kind::CountingBloom, "ids_pairs1", p.ids_pairs_cells, 0, h, 1),
              obj(AC_NF_IDS_OBJ_PORTS0, Kind::CountMin, "ids_ports0", sketch, 0, r, 0),
              obj(AC_NF_IDS_OBJ_PORTS1, Kind::CountMin, "ids_ports1", sketch, 0, r, 1),
              obj(AC_NF_IDS_OBJ_FLAGGED, Kind::AwSet, "ids_flagged", p.ids_flagged_max, sizeof(ac_nf_ids_src), 0, -1,
                  p.ids_flag_expire_s)};
    }
    case nf::Kind::Ratelimit:
      return {obj(AC_NF_RL_OBJ_COUNT0, Kind::GCounter, "rl_count0", 1, 0, 0, 0),
              obj(AC_NF_RL_OBJ_COUNT1, Kind::GCounter, "rl_count1", 1, 0, 0, 1)};
    case nf::Kind::Nat: {
      const uint32_t expire = p.idle_timeout_s ? p.idle_timeout_s + kNatSharedGrace : 0;
      return {obj(AC_NF_NAT_OBJ_SHARED, Kind::RegMap, "nat_shared", p.nat_shared_entries, sizeof(ac_nf_nat_rkey), 0, -1,
                  expire),
              obj(AC_NF_NAT_OBJ_FWD, Kind::RegMap, "nat_fwd", p.nat_shared_entries, sizeof(ac_nf_nat_fkey), 0, -1,
                  expire)};
    }
    case nf::Kind::Monitor:
    case nf::Kind::Replica:
    case nf::Kind::Firewall: break;
  }
  return {};
}

namespace {
std::optional<state::Kind> kind_of(const std::string& s) {
  for (state::Kind k : {state::Kind::GCounter, state::Kind::PNCounter, state::Kind::CountMin,
                        state::Kind::CountingBloom, state::Kind::AwSet, state::Kind::RegMap})
    if (s == state::to_string(k)) return k;
  return std::nullopt;
}
}  // namespace

Result<state::Schema> crdt_schema(const Published::Crdt& c) {
  std::vector<state::ObjectSpec> specs;
  for (const auto& o : c.objects) {
    auto k = kind_of(o.kind);
    if (!k) return fail(fmt::format("shared-state object {} ({}): unknown kind '{}'", o.id, o.map, o.kind), EINVAL);
    specs.push_back({.id = o.id, .kind = *k, .name = o.map, .cells = o.cells, .key_size = o.key_size, .rows = o.rows});
  }
  return state::Schema::make(std::move(specs));
}

Result<CrdtStore> open_crdt_store(const Published& p) {
  if (!p.crdt || p.crdt->objects.empty())
    return fail(fmt::format("instance '{}' ({}) has no shared-state objects", p.name, to_string(p.kind)), ENOENT);
  const Published::Crdt& c = *p.crdt;
  auto schema = crdt_schema(c);
  if (!schema) return unexpected(schema.error());
  CrdtStore out;
  auto map = [&](uint32_t id, const std::string& what) -> Result<int> {
    if (!id) return -1;
    UniqueFd fd(bpf_map_get_fd_by_id(id));
    if (!fd) return fail_errno(fmt::format("instance '{}': map {} ({})", p.name, id, what));
    out.fds.push_back(std::move(fd));
    return out.fds.back().get();
  };
  state::BpfStoreMaps m;
  for (const auto& o : c.objects) {
    auto fd = map(o.map_id, o.map);
    if (!fd) return unexpected(fd.error());
    m.objects.push_back({o.id, *fd, static_cast<int8_t>(o.generation)});
  }
  for (auto [id, what, dst] : {std::tuple{c.ctl_map_id, "ac_crdt_ctl", &m.ctl_fd},
                               std::tuple{c.changes_map_id, "ac_crdt_changes", &m.changes_fd},
                               std::tuple{c.stats_map_id, "ac_crdt_stats", &m.stats_fd},
                               std::tuple{c.win_map_id, "ac_crdt_win", &m.win_fd}}) {
    auto fd = map(id, what);
    if (!fd) return unexpected(fd.error());
    *dst = *fd;
  }
  UniqueFd prog(bpf_prog_get_fd_by_id(c.merge_prog_id));
  if (!c.merge_prog_id || !prog)
    return fail_errno(fmt::format("instance '{}': merge program {}", p.name, c.merge_prog_id));
  m.merge_prog_fd = prog.get();
  out.fds.push_back(std::move(prog));
  auto s = state::BpfStore::open(std::move(*schema), m);
  if (!s) return unexpected(wrap(s.error(), fmt::format("instance '{}'", p.name)));
  out.store = std::move(*s);
  return out;
}

}  // namespace anychain::nf
