// flows, stats: the fast path's state read straight from its pinned maps (read-only), so they
// work whether or not anychaind runs.
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>
#include <optional>
#include <thread>
#include <tuple>

#include <fmt/format.h>

#include "cli/cli.h"
#include "control/client.h"
#include "dataplane/dataplane.h"
#include "dataplane/pinned.h"

namespace anychain::cli {
namespace {

namespace dp = anychain::dataplane;

volatile sig_atomic_t g_stop = 0;

// The pinned maps, or exit 1 saying why not: in particular when this network namespace's fast
// path pins them in another mount namespace (under 'ip netns exec'), or they are not the maps
// its programs use.
dp::PinnedMaps open_pinned(const Global& g) {
  auto m = dp::PinnedMaps::open(g.pin_root);
  if (auto foreign = foreign_fast_path(g)) throw ExitError{runtime_error(*foreign)};
  if (!m) throw ExitError{runtime_error(m.error().message)};
  return std::move(*m);
}

uint64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);  // bpf_ktime_get_ns()'s clock
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

int flows(const Invocation& in) {
  std::optional<uint32_t> spi;
  if (in.vm.count("spi")) {
    spi = in.vm["spi"].as<uint32_t>();
    if (*spi == 0 || *spi > 0xffffff) throw UsageError("--spi must be 1..16777215");
  }
  size_t limit = in.vm["limit"].as<size_t>();
  if (limit == 0) throw UsageError("--limit must be at least 1");

  auto maps = open_pinned(in.g);
  auto flows = maps.flows(limit, spi);
  if (!flows) return runtime_error(flows.error().str());
  std::sort(flows->begin(), flows->end(), [](const dp::FlowEntry& a, const dp::FlowEntry& b) {
    return std::tuple(a.spi, -static_cast<int>(a.si), a.hash) < std::tuple(b.spi, -static_cast<int>(b.si), b.hash);
  });
  json out = json::array();
  size_t split = 0;
  auto choice = [](const dp::FlowCpuEntry& c) {
    json e = json::object();
    if (c.cpu >= 0) e["cpu"] = c.cpu;  // the placement is shared: no CPU
    e["instance"] = c.instance_id;
    e["generation"] = c.generation;
    e["stale"] = !c.valid;
    return e;
  };
  for (const auto& f : *flows) {
    json e{{"spi", f.spi}, {"si", f.si}, {"hash", fmt::format("{:#010x}", f.hash)}, {"instance", f.instance_id},
           {"generation", f.generation}, {"age_s", std::round(f.age_s * 1000) / 1000}, {"cpus", f.cpus},
           {"placement", f.placement ? choice(*f.placement) : json(nullptr)}, {"split", f.split}};
    if (f.disagree) {
      json per = json::array();
      for (const auto& c : f.per_cpu) per.push_back(choice(c));
      e["per_cpu"] = per;
    }
    split += f.split;
    out.push_back(e);
  }
  if (in.g.json) {
    print_json(out);
  } else {
    Table t({"SPI", "SI", "HASH", "INSTANCE", "GEN", "AGE", "CPUS", "PLACED"});
    for (const auto& f : out) {
      const json& p = f["placement"];
      std::string placed = p.is_null() ? "-" : p["instance"].dump() + (p["stale"].get<bool>() ? " (stale)" : "");
      t.add({f["spi"].dump(), f["si"].dump(), f["hash"], f["instance"].dump(), f["generation"].dump(),
             fmt::format("{:.1f}s", f["age_s"].get<double>()), f["cpus"].dump(),
             placed + (f["split"].get<bool>() ? "  SPLIT" : "")});
      if (f.contains("per_cpu"))
        for (const auto& c : f["per_cpu"])
          t.add({"", "", "  cpu " + c["cpu"].dump(), c["instance"].dump(), c["generation"].dump(), "", "",
                 c["stale"].get<bool>() ? "stale" : ""});
    }
    t.print();
    std::cout << out.size() << " flow" << (out.size() == 1 ? "" : "s") << (out.size() == limit ? " (limit reached)" : "")
              << "\n";
  }
  if (split)
    std::cerr << "anychain: " << split << " flow" << (split == 1 ? " is" : "s are")
              << " split across instances (two CPUs, or a CPU and the flow's placement, use different live "
                 "instances): a fast-path bug, please report it with this output\n";
  return kOk;
}

struct Sample {
  std::vector<ac_counter> reasons;
  std::vector<dp::PathCounter> paths;
  uint64_t t_ns;
  json slow_path;  // anychaind's slow path counters, or null
  json ftc_buffer;  // anychaind's FTC egress buffer counters (docs/ftc.md 5.1), or null
};

// The three kinds of counter slot, as the JSON's sections: every packet ends under exactly one
// verdict or one drop, so those two sum to the packets seen; notes are work done on the way.
constexpr std::pair<dp::StatKind, const char*> kSections[] = {
    {dp::StatKind::Verdict, "verdicts"}, {dp::StatKind::Drop, "drops"}, {dp::StatKind::Note, "notes"}};

// The slow path's counters from anychaind (they live in the agent, not in a map): only from
// the daemon that pins under this --pin-root; null with the reason otherwise.
json slow_path_counters(const Global& g, uint32_t stats_map_id, std::string& why, json* ftc_buffer) {
  auto c = control::Client::connect(g.socket, std::chrono::seconds(2));
  if (!c) {
    why = control::daemon_absent(c.error()) ? "anychaind is not running" : c.error().str();
    return nullptr;
  }
  auto st = c->call("status");
  if (!st) {
    why = st.error().str();
    return nullptr;
  }
  // the same fast path: the daemon's ac_stats is the one read here (whatever path leads to it)
  const json agent = st->value("agent", json::object());
  if (agent.value("stats_map_id", 0u) != stats_map_id) {
    why = fmt::format("anychaind on {} runs another fast path (its maps: {})", g.socket, agent.value("pin_root", "?"));
    return nullptr;
  }
  if (ftc_buffer && st->contains("ftc_buffer")) *ftc_buffer = (*st)["ftc_buffer"];
  if (!st->contains("slow_path") || !(*st)["slow_path"].contains("handed_over")) {
    why = st->contains("slow_path") ? (*st)["slow_path"].value("state", "off") : "off";
    return nullptr;
  }
  return (*st)["slow_path"];
}

json stats_json(const Sample& s, const Sample* prev) {
  double dt = prev ? static_cast<double>(s.t_ns - prev->t_ns) / 1e9 : 0;
  auto rate = [&](uint64_t now, uint64_t before) {
    return dt > 0 && now >= before ? std::round(static_cast<double>(now - before) / dt * 10) / 10 : 0.0;
  };
  json out;
  uint64_t packets = 0, bytes = 0;
  for (const auto& [kind, key] : kSections) {
    json list = json::array();
    for (const auto& sr : dp::stat_reasons()) {
      if (sr.kind != kind) continue;
      uint32_t r = sr.slot;
      json e{{"reason", sr.name}, {"id", r}, {"packets", s.reasons[r].packets}, {"bytes", s.reasons[r].bytes}};
      if (prev) {
        e["pps"] = rate(s.reasons[r].packets, prev->reasons[r].packets);
        e["bps"] = rate(s.reasons[r].bytes * 8, prev->reasons[r].bytes * 8);
      }
      if (kind != dp::StatKind::Note) {
        packets += s.reasons[r].packets;
        bytes += s.reasons[r].bytes;
      }
      list.push_back(e);
    }
    out[key] = list;
  }
  out["outcomes"] = {{"packets", packets}, {"bytes", bytes}};
  json paths = json::array();
  for (const auto& [p, counter] : s.paths) {
    json e{{"spi", p.spi}, {"si", p.si}, {"service_id", p.service_id}, {"last_hop", p.last_hop},
           {"packets", counter.packets}, {"bytes", counter.bytes}};
    if (prev) {
      e["pps"] = 0.0;
      e["bps"] = 0.0;
      for (const auto& q : prev->paths)
        if (q.path.spi == p.spi && q.path.si == p.si) {
          e["pps"] = rate(counter.packets, q.counter.packets);
          e["bps"] = rate(counter.bytes * 8, q.counter.bytes * 8);
        }
    }
    paths.push_back(e);
  }
  out["paths"] = paths;
  out["slow_path"] = s.slow_path;
  out["ftc_buffer"] = s.ftc_buffer;
  return out;
}

// The FTC egress buffer's counters per interface (only when anychaind runs one)
void print_ftc_buffer(const json& fb) {
  if (fb.is_null() || !fb.contains("ports")) return;
  Table t({"FTC BUFFER", "RX", "HELD", "RELEASED", "CONSUMED", "FULL", "EXPIRED", "FENCED", "BAD"});
  for (const auto& [name, c] : fb["ports"].items())
    t.add({name, c.value("rx", json(0)).dump(), c.value("held", json(0)).dump(), c.value("released", json(0)).dump(),
           c.value("consumed", json(0)).dump(), c.value("drop_full", json(0)).dump(),
           c.value("drop_expired", json(0)).dump(), c.value("drop_fenced", json(0)).dump(),
           json(c.value("drop_bad_nsh", 0u) + c.value("drop_not_ftc", 0u) + c.value("release_failed", 0u)).dump()});
  std::cout << "\n";
  t.print();
  if (!fb.contains("unbound")) return;
  for (const auto& [name, why] : fb["unbound"].items())
    std::cout << "FTC buffer not bound on " << name << ": " << why.get<std::string>() << "\n";
}

void print_stats_text(const json& j, bool rates, bool all, const std::string& slow_why) {
  auto section = [&](const char* key, const char* head) {
    Table t(rates ? std::vector<std::string>{head, "PACKETS", "BYTES", "PPS", "BIT/S"}
                  : std::vector<std::string>{head, "PACKETS", "BYTES"});
    size_t shown = 0;
    for (const auto& r : j[key]) {
      if (!all && r["packets"].get<uint64_t>() == 0 && (!rates || r["pps"].get<double>() == 0)) continue;
      ++shown;
      std::vector<std::string> row{r["reason"], r["packets"].dump(), r["bytes"].dump()};
      if (rates) row.insert(row.end(), {r["pps"].dump(), r["bps"].dump()});
      t.add(row);
    }
    if (shown) t.print();
    return shown;
  };
  const size_t outcomes = section("verdicts", "VERDICT") + section("drops", "DROP");
  if (outcomes)
    std::cout << "outcomes: " << j["outcomes"]["packets"].dump() << " packets, " << j["outcomes"]["bytes"].dump()
              << " bytes (each packet under exactly one verdict or drop)\n";
  else
    std::cout << "no packets counted yet (use --all to list every reason)\n";
  std::cout << "\n";
  if (section("notes", "NOTE (work on the way, not outcomes)")) std::cout << "\n";
  Table p(rates ? std::vector<std::string>{"SPI", "SI", "SERVICE", "PACKETS", "BYTES", "PPS", "BIT/S"}
                : std::vector<std::string>{"SPI", "SI", "SERVICE", "PACKETS", "BYTES"});
  for (const auto& e : j["paths"]) {
    std::vector<std::string> row{e["spi"].dump(), e["si"].dump(),
                                 e["last_hop"].get<bool>() ? "(end)" : e["service_id"].dump(), e["packets"].dump(),
                                 e["bytes"].dump()};
    if (rates) row.insert(row.end(), {e["pps"].dump(), e["bps"].dump()});
    p.add(row);
  }
  if (j["paths"].empty())
    std::cout << "no chain paths programmed\n";
  else
    p.print();
  std::cout << "\n";
  const json& sp = j["slow_path"];
  if (sp.is_null()) {
    std::cout << "slow path: no counters (" << slow_why << ")\n";
    print_ftc_buffer(j["ftc_buffer"]);
    return;
  }
  Table t({"SLOW PATH (anychaind)", "PACKETS"});
  size_t shown = 0;
  for (const auto& [group, label] : {std::pair{"handed_over", "handed over: "}, std::pair{"vxlan_gpe", "VXLAN-GPE: "},
                                     std::pair{"notes", "note: "}}) {
    if (!sp.contains(group)) continue;
    for (const auto& [k, v] : sp[group].items()) {
      if (!all && v.get<uint64_t>() == 0) continue;
      ++shown;
      t.add({std::string(label) + k, v.dump()});
    }
  }
  if (shown)
    t.print();
  else
    std::cout << "slow path: nothing handed over or re-injected yet\n";
  print_ftc_buffer(j["ftc_buffer"]);
}

int stats(const Invocation& in) {
  std::optional<double> watch;
  std::optional<uint64_t> count;
  if (in.vm.count("watch")) {
    watch = in.vm["watch"].as<double>();
    if (!(*watch >= 0.1 && *watch <= 3600)) throw UsageError("--watch takes 0.1..3600 seconds");
  }
  if (in.vm.count("count")) {
    if (!watch) throw UsageError("--count needs --watch");
    count = in.vm["count"].as<uint64_t>();
    if (*count == 0) throw UsageError("--count must be at least 1");
  }
  const bool all = in.vm.count("all") > 0;
  const Global& g = in.g;

  auto maps = open_pinned(g);
  std::string slow_why;
  auto sample = [&]() -> std::optional<Sample> {
    auto r = maps.stats();
    auto p = maps.path_stats();
    if (!r || !p) {
      runtime_error((!r ? r.error() : p.error()).str());
      return std::nullopt;
    }
    json ftc_buffer;
    json slow = slow_path_counters(g, maps.stats_map_id(), slow_why, &ftc_buffer);
    return Sample{std::move(*r), std::move(*p), monotonic_ns(), std::move(slow), std::move(ftc_buffer)};
  };
  auto first = sample();
  if (!first) return kRuntime;
  if (!watch) {
    json j = stats_json(*first, nullptr);
    if (g.json)
      print_json(j);
    else
      print_stats_text(j, false, all, slow_why);
    return kOk;
  }
  struct sigaction sa{};
  sa.sa_handler = [](int) { g_stop = 1; };
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  Sample prev = std::move(*first);
  for (uint64_t n = 0; !count || n < *count; ++n) {
    auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(*watch);
    while (!g_stop && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (g_stop) break;
    auto s = sample();
    if (!s) return kRuntime;
    json j = stats_json(*s, &prev);
    if (g.json) {
      std::cout << j.dump() << std::endl;  // one sample per line
    } else {
      if (isatty(STDOUT_FILENO)) std::cout << "\033[H\033[2J";
      print_stats_text(j, true, all, slow_why);
      std::cout << std::endl;
    }
    prev = std::move(*s);
  }
  return kOk;
}

}  // namespace

std::vector<Command> observe_commands() {
  return {
      {.name = "flows",
       .synopsis = "[--spi N] [--limit N]",
       .brief = "Show the flow cache (read from the pinned maps; works without anychaind).",
       .details = "Columns: SPI, SI, flow hash, chosen instance (the newest CPU's), its generation, idle time,\n"
                  "CPUs holding it, and PLACED: the flow's shared placement that every CPU uses on a miss.\n"
                  "When the CPUs' entries or the placement differ, every CPU's entry follows on its own line\n"
                  "(stale: its instance died or changed; not used). SPLIT marks a flow whose live choices differ:\n"
                  "a bug, also reported on stderr.",
       .examples = "  anychain flows --spi 10 --limit 20\n  anychain flows --json --pin-root /sys/fs/bpf/lab1\n",
       .options =
           [](po::options_description& o) {
             o.add_options()("spi", po::value<uint32_t>()->value_name("N"), "only this chain")(
                 "limit", po::value<size_t>()->value_name("N")->default_value(1000), "at most N entries");
           },
       .run = flows},
      {.name = "stats",
       .synopsis = "[--watch [SECONDS]] [--count N] [--all]",
       .brief = "Show the fast path's counters per reason and per (SPI, SI) (read from the pinned maps).",
       .details = "Three kinds of reason, shown apart: every packet ends under exactly one verdict (passed or\n"
                  "sent on) or one drop, so those two sum to the packets seen ('outcomes'); notes count work\n"
                  "done on the way. Then the slow path's counters, from anychaind (docs/slow-path.md).\n"
                  "--watch repeats every SECONDS (default 1) with rates; --count stops after N samples;\n"
                  "--all also lists reasons that are zero (--json always lists them all).",
       .examples = "  anychain stats\n  anychain stats --watch 2\n  anychain stats --json --watch 1 --count 5\n",
       .options =
           [](po::options_description& o) {
             o.add_options()("watch,w", po::value<double>()->value_name("SECONDS")->implicit_value(1.0),
                             "repeat every SECONDS (default 1) with rates")(
                 "count,c", po::value<uint64_t>()->value_name("N"), "with --watch: stop after N samples")(
                 "all,a", "list reasons that are zero too");
           },
       .run = stats},
  };
}

}  // namespace anychain::cli
