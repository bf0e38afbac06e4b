// FTC in the config file (docs/config.md "ftc"): each value with its type and range, checked
// here only; the daemon maps them without checking again.
#include "config/parse_ftc.h"

#include <algorithm>
#include <map>
#include <optional>
#include <tuple>
#include <utility>

#include "anychain/ftc.h"

namespace anychain::config {

std::optional<FtcChain> Config::ftc_of(const Chain& ch) const {
  if (!ch.ftc) return std::nullopt;
  FtcChain out;
  auto pick = [&](std::optional<uint32_t> FtcParams::*field, uint32_t& dst) {
    if (((*ch.ftc).*field)) dst = *((*ch.ftc).*field);
    else if (ftc.defaults.*field) dst = *(ftc.defaults.*field);
  };
  pick(&FtcParams::f, out.f);
  pick(&FtcParams::buffer_frames, out.buffer_frames);
  pick(&FtcParams::buffer_per_partition, out.buffer_per_partition);
  pick(&FtcParams::hold_timeout_ms, out.hold_timeout_ms);
  pick(&FtcParams::propagate_after_ms, out.propagate_after_ms);
  return out;
}

namespace detail {
namespace {

constexpr uint32_t kBufferFramesMax = 1u << 20;

// replica_records and reorder_wait_us of r (the node's ftc: or an instance's), each when valid:
// the ranges of agent/nf/params.h (kReplicaRecordsMax; a gap is re-requested before anychain-nf's
// 1 s hold timeout drops its frames)
std::pair<std::optional<uint32_t>, std::optional<uint32_t>> read_nf_limits(MapReader& r) {
  std::pair<std::optional<uint32_t>, std::optional<uint32_t>> out;
  uint32_t v = 0;
  if (r.uint("replica_records", v, 1, 1u << 22)) out.first = v;
  if (r.uint("reorder_wait_us", v, 1, 999'999)) out.second = v;
  return out;
}

// the service is on a chain with ftc:
bool on_ftc_chain(const Config& c, const std::string& service) {
  return std::any_of(c.chains.begin(), c.chains.end(), [&](const Chain& ch) {
    return c.ftc_of(ch) && std::find(ch.services.begin(), ch.services.end(), service) != ch.services.end();
  });
}

// the keys of FtcParams in a map read by r (what names the map in messages)
void read_params(Ctx& ctx, MapReader& r, const std::string& what, FtcParams& out) {
  uint32_t v = 0;
  if (r.uint("f", v, AC_FTC_F_MIN, AC_FTC_F_MAX)) out.f = v;
  if (auto b = r.get("buffer", false); b && !b->IsNull()) {
    MapReader br(ctx, *b, what + ".buffer", {"frames", "per_partition"});
    if (br.ok()) {
      if (br.uint("frames", v, 1, kBufferFramesMax)) out.buffer_frames = v;
      if (br.uint("per_partition", v, 1, kBufferFramesMax)) out.buffer_per_partition = v;
    }
  }
  if (r.uint("hold_timeout_ms", v, 1, 60'000)) out.hold_timeout_ms = v;
  if (r.uint("propagate_after_ms", v, 1, 1'000)) out.propagate_after_ms = v;
}

}  // namespace

void read_chain_ftc(Ctx& ctx, MapReader& r, Chain& c) {
  auto n = r.get("ftc", false);
  if (!n || n->IsNull()) return;
  if (n->IsScalar()) {
    bool on = false;
    if (r.boolean("ftc", on) && on) c.ftc = FtcParams{};
    return;
  }
  MapReader fr(ctx, *n, r.what() + ".ftc", {"f", "buffer", "hold_timeout_ms", "propagate_after_ms"});
  if (!fr.ok()) return;
  FtcParams p;
  read_params(ctx, fr, r.what() + ".ftc", p);
  c.ftc = p;
}

void read_ftc_node(Ctx& ctx, const YAML::Node& n, FtcNode& out) {
  MapReader r(ctx, n, "ftc", {"f", "buffer", "hold_timeout_ms", "propagate_after_ms", "port", "key_file", "detect",
                              "recovery_hold_ms", "replica_records", "reorder_wait_us"});
  if (!r.ok()) return;
  read_params(ctx, r, "ftc", out.defaults);
  r.uint("port", out.port, 1, 65535);
  r.uint("recovery_hold_ms", out.recovery_hold_ms, 100, 3'600'000);
  auto [records, wait] = read_nf_limits(r);
  if (records) out.replica_records = *records;
  if (wait) out.reorder_wait_us = *wait;
  if (auto d = r.get("detect", false); d && !d->IsNull()) {
    MapReader dr(ctx, *d, "ftc.detect", {"interval_ms", "misses"});
    if (dr.ok()) {
      dr.uint("interval_ms", out.detect_interval_ms, 10, 10'000);
      dr.uint("misses", out.detect_misses, 2, 100);
    }
  }
  if (auto v = r.scalar("key_file", false, "an absolute path")) {
    if (!v->Scalar().starts_with("/"))
      ctx.err(*v, fmt::format("ftc: key_file '{}' must be an absolute path", v->Scalar()));
    else
      out.key_file = v->Scalar();
  }
}

void read_instance_ftc(Ctx& ctx, MapReader& r, Instance& in) {
  auto n = r.get("ftc", false);
  if (!n || n->IsNull()) return;
  if (!in.nf) {
    ctx.err(*n, fmt::format("{}: 'ftc' is only for a built-in network function (nf:): its replica store and "
                            "re-request wait are anychain-nf's", r.what()));
    return;
  }
  MapReader fr(ctx, *n, r.what() + " ftc", {"replica_records", "reorder_wait_us"});
  if (!fr.ok()) return;
  std::tie(in.nf->replica_records, in.nf->reorder_wait_us) = read_nf_limits(fr);
}

void validate_ftc(Ctx& ctx, const Config& c) {
  if (c.ftc.defaults.buffer_frames && c.ftc.defaults.buffer_per_partition &&
      *c.ftc.defaults.buffer_per_partition > *c.ftc.defaults.buffer_frames)
    ctx.err(Mark{}, fmt::format("ftc: buffer.per_partition {} is more than buffer.frames {}",
                                *c.ftc.defaults.buffer_per_partition, *c.ftc.defaults.buffer_frames));
  for (const auto& ch : c.chains) {
    auto f = c.ftc_of(ch);
    if (!f) continue;
    // every service of an FTC chain is an FTC hop (docs/ftc.md 1, 5.4)
    if (ch.services.size() < f->f + 1)
      ctx.err(ch.mark, fmt::format("chain '{}': FTC with f = {} needs at least {} FTC hops (each update held "
                                   "f + 1 times), the chain has {}; add replica services or lower f",
                                   ch.name, f->f, f->f + 1, ch.services.size()));
    if (f->buffer_per_partition > f->buffer_frames)
      ctx.err(ch.mark, fmt::format("chain '{}': ftc buffer.per_partition {} is more than buffer.frames {}", ch.name,
                                   f->buffer_per_partition, f->buffer_frames));
  }
  // the order of reclaiming (docs/ftc.md 6.2): other nodes reclaim their replicas of this node's
  // records after kFtcNfIdleMax (they do not know its NFs' settings), so a head must
  // reset and reclaim its records no later: an FTC NF with a longer idle timeout, or none, would
  // keep state that is live for it on one store only
  for (const auto& in : c.instances) {
    if (!in.nf) continue;
    const bool on_ftc = on_ftc_chain(c, in.service);
    if (!on_ftc && c.find_service(in.service) && (in.nf->replica_records || in.nf->reorder_wait_us))
      ctx.err(in.mark, fmt::format("instance '{}': ftc: replica_records/reorder_wait_us on service '{}', which is on "
                                   "no FTC chain (a chain with ftc:): it neither replicates nor holds logs",
                                   in.name, in.service));
    if (!in.nf->idle_timeout_s) continue;
    const uint32_t t = *in.nf->idle_timeout_s;
    if (on_ftc && (t == 0 || t > kFtcNfIdleMax))
      ctx.err(in.mark, fmt::format("instance '{}': idle_timeout_s {} on an FTC chain (service '{}'): must be 1..{}, "
                                   "the idle time after which other nodes reclaim their replicas of its records "
                                   "(docs/ftc.md 6.2); a longer one would leave its idle flows' state on one store",
                                   in.name, t, in.service, kFtcNfIdleMax));
  }
  for (const auto& p : c.policies) {
    const Chain* ch = c.find_chain(p.chain);
    if (ch && ch->ftc && p.md_type != 2)
      ctx.err(p.mark, fmt::format("policy '{}': chain '{}' uses FTC, whose control TLV and logs need NSH MD type 2; "
                                  "set md_type: 2",
                                  p.name, p.chain));
  }
}

void validate_standbys(Ctx& ctx, const Config& c) {
  std::map<uint32_t, const Instance*> local, standby;
  for (const auto& in : c.instances)
    if (!in.standby_for) local.emplace(in.id, &in);
  for (const auto& in : c.instances) {
    if (!in.standby_for) continue;
    const uint32_t a = *in.standby_for;
    if (auto it = local.find(a); it != local.end()) {
      ctx.err(in.mark, fmt::format("instance '{}': standby for instance {}, which is '{}' on this node: a standby "
                                   "replaces an instance of another node (this node restarts its own in place)",
                                   in.name, a, it->second->name));
      continue;
    }
    if (auto [it, fresh] = standby.emplace(a, &in); !fresh) {
      ctx.err(in.mark, fmt::format("instance '{}': a second standby for instance {} on this node ('{}' is one): "
                                   "one standby per instance and node, put the others on other nodes",
                                   in.name, a, it->second->name));
      continue;
    }
    if (c.find_service(in.service) && !on_ftc_chain(c, in.service))
      ctx.err(in.mark, fmt::format("instance '{}': standby for instance {} of service '{}', which is on no FTC chain: "
                                   "only an FTC instance's state survives its node (a chain with ftc:)",
                                   in.name, a, in.service));
    if (!in.nf)
      ctx.err(in.mark, fmt::format("instance '{}': a standby needs nf: (anychaind starts the replacement as a "
                                   "built-in network function)", in.name));
  }
}

}  // namespace detail
}  // namespace anychain::config
