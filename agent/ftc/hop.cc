#include "ftc/hop.h"

#include <fmt/format.h>

namespace anychain::ftc {

Log stub_of(const Log& log) {
  Log s = log;
  s.flags |= AC_FTC_LOG_STUB;
  s.writes.clear();
  return s;
}

namespace {

HopResult drop(HopResult r, enum ac_ftc_stat why, std::string detail) {
  r.verdict = Verdict::Drop;
  r.reason = why;
  r.detail = std::move(detail);
  r.stats[why]++;
  return r;
}

// The log whose TLV header is at off, from a window already walked.
Log log_in(const Window& w, uint32_t off) {
  uint32_t vlen = w[off + 3] & 0x7f;
  auto l = decode_log(std::span<const uint8_t>(w.data() + off + 4, vlen));
  return *l;  // ac_ftc_walk checked it
}

}  // namespace

HopResult run_hop(const HopConfig& cfg, Store& store, std::span<const uint8_t> nsh, const NfFn& nf) {
  HopResult r;
  auto win = to_window(nsh);
  if (!win) return drop(r, AC_FTC_ST_BAD_TLV, win.error().message);
  Window& w = *win;
  ac_ftc_view v;
  if (auto e = ac_ftc_walk(w.data(), static_cast<uint32_t>(nsh.size()), &v))
    return drop(r, AC_FTC_ST_BAD_TLV, fmt::format("{} (offset {})", err_str(e), v.err_off));
  if (!v.ctrl) {
    r.stats[AC_FTC_ST_NO_CTRL]++;
    nf(nullptr);
    r.verdict = Verdict::Plain;
    r.nsh.assign(nsh.begin(), nsh.end());
    return r;
  }
  if (!v.has_hash) return drop(r, AC_FTC_ST_BAD_TLV, "FTC packet without a flow hash TLV");
  uint32_t spsi = ac_ftc_rd32(w.data(), 4);
  Flow flow{spsi >> 8, v.hash};
  uint8_t si = spsi & 0xff;

  ac_ftc_commits commits;
  ac_ftc_commits_load(w.data(), &v, &commits);

  // 1. replicate the predecessors' logs, in order
  for (uint32_t k = 0; k < v.nlogs; ++k) {
    uint32_t off = v.log[k];
    Log log = log_in(w, off);
    if (log.mbox.id == cfg.id)
      return drop(r, AC_FTC_ST_OWN_LOG, fmt::format("a log of this instance ({}) came back: the chain is shorter than f + 1", cfg.id));
    if (cfg.known && !cfg.known(log.mbox.id))
      return drop(r, AC_FTC_ST_UNKNOWN_MBOX, fmt::format("log of instance {}, not an FTC instance", log.mbox.id));
    RecordKey rk{log.mbox.id, log.mbox.si, flow};
    uint8_t held_after = static_cast<uint8_t>(log.held + 1);
    auto o = store.apply(rk, log, held_after);
    if (!o) return drop(r, AC_FTC_ST_REPLICA_FULL, o.error().message);
    switch (*o) {
      case Outcome::Stale:
        if (!log.wrapped())
          return drop(r, AC_FTC_ST_STALE, fmt::format("log of instance {} incarnation {}: fenced", log.mbox.id, log.mbox.inc));
        // a returned log of an earlier packet (which the buffer drops as fenced): not this
        // packet's business, stripped so that it does not circulate
        w[off + 2] = AC_TLV_FTC_STRIP;
        r.stats[AC_FTC_ST_STALE]++;
        continue;
      case Outcome::Gap:
        r.verdict = Verdict::Hold;
        r.reason = AC_FTC_ST_GAP;
        r.gap = rk;
        r.detail = fmt::format("log {}..{} of instance {}", log.from(), log.seq, log.mbox.id);
        r.stats[AC_FTC_ST_GAP]++;
        return r;
      case Outcome::Applied:
        r.stats[AC_FTC_ST_APPLIED]++;
        break;
      case Outcome::Satisfied:
        r.stats[AC_FTC_ST_SATISFIED]++;
        break;
    }
    w[AC_FTC_LOG_HELD_AT(off)] = held_after;
    if (held_after == v.f + 1) {
      w[off + 2] = AC_TLV_FTC_STRIP;
      r.stats[AC_FTC_ST_TAIL_STRIPPED]++;
      if (log.wrapped()) {
        // the log's own sequence: every hop that counted it in held had reached it (a record's
        // MAX may be ahead of the replicas before it, after a re-request to the head)
        if (ac_ftc_commit_add(&commits, log.mbox.word(), log.seq) != 0)
          return drop(r, AC_FTC_ST_BAD_TLV, "more than 8 commit entries");
        r.stats[AC_FTC_ST_COMMITS]++;
      }
    }
  }

  // 2. the NF's transaction
  bool propagating = v.cflags & AC_FTC_CTRL_PROPAGATING;
  Window own{};
  uint32_t own_len = 0;
  if (propagating) {
    r.stats[AC_FTC_ST_PROPAGATING]++;
  } else if (cfg.stateful) {
    NfResult res;
    auto log = store.transact(flow, si, [&](Transaction& tx) { res = nf(&tx); });
    if (!log) {
      r.stats[AC_FTC_ST_STORE_FULL]++;
      res = nf(nullptr);
    } else {
      r.own = *log;
      Log on_wire = *log;
      if (log->tlv_len() > ac_ftc_share(v.f)) {
        on_wire = stub_of(*log);
        r.stubbed = true;
        r.stats[AC_FTC_ST_STUB]++;
      } else {
        r.stats[log->noop() ? AC_FTC_ST_NOOP_APPENDED : AC_FTC_ST_LOG_APPENDED]++;
      }
      auto bytes = encode_log(on_wire);
      if (!bytes) return drop(r, AC_FTC_ST_BAD_TLV, bytes.error().message);
      std::copy(bytes->begin(), bytes->end(), own.begin());
      own_len = static_cast<uint32_t>(bytes->size());
    }
    r.filtered = res.filter;
  } else {
    r.filtered = nf(nullptr).filter;
  }
  if (r.filtered) {
    w[v.ctrl + 4] |= AC_FTC_CTRL_PROPAGATING;
    r.stats[AC_FTC_ST_FILTERED]++;
  }

  // 3. rebuild
  Window out{};
  uint32_t len = ac_ftc_rebuild(w.data(), &v, out.data(), own.data(), own_len, &commits);
  if (!len) return drop(r, AC_FTC_ST_OVERFLOW, "the rebuilt NSH would exceed 252 bytes");
  r.verdict = Verdict::Forward;
  r.nsh.assign(out.begin(), out.begin() + len);
  return r;
}

}  // namespace anychain::ftc
