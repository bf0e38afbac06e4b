// state: a built-in network function instance's state (docs/nf.md), read from its own maps by
// the ids it published in <run_dir>/<name>.json. anychaind says where its run directory is; with
// --run-dir, or without a daemon, the file is read directly, so the command works whether or
// not anychaind runs (the instance's process must, since its maps live and die with it).
#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <iostream>

#include "anychain/nf.h"
#include "cli/cli.h"
#include "control/client.h"
#include "nf/ftc_control.h"
#include "nf/maps.h"
#include "nf/published.h"
#include "nf/state.h"

namespace anychain::cli {
namespace {

// The instance's shared-state replication as anychaind runs it (docs/state.md): its merged view
// is in its own maps (read below), the protocol's counters, peers and refusals only in the agent.
std::optional<json> replication_of(const Invocation& in, const std::string& name) {
  auto c = control::Client::connect(in.g.socket, std::chrono::seconds(in.g.timeout_s));
  if (!c) return std::nullopt;
  auto st = c->call("status");
  if (!st || !st->contains("state") || !(*st)["state"].contains("instances")) return std::nullopt;
  for (const auto& e : (*st)["state"]["instances"])
    if (e.value("name", "") == name) return e;
  return std::nullopt;
}

// The published file of instance `name`: from --run-dir, else from anychaind's status, else the
// default directory.
std::string published_file(const Invocation& in, const std::string& name) {
  if (in.vm.count("run-dir")) return nf::published_path(in.vm["run-dir"].as<std::string>(), name);
  if (auto c = control::Client::connect(in.g.socket, std::chrono::seconds(in.g.timeout_s)); c) {
    if (auto st = c->call("status"); st && st->contains("nf")) {
      for (const auto& e : (*st)["nf"])
        if (e.value("name", "") == name) return e.value("file", "");
      throw ExitError{runtime_error(fmt::format("anychaind runs no built-in network function named '{}'", name))};
    }
  }
  return nf::published_path(AC_NF_RUN_DIR, name);
}

std::string num(const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

void print_counters(const char* what, const json& c) {
  std::string line;
  for (const auto& [k, v] : c.items())
    if (v.is_number() && v.get<uint64_t>() != 0) line += fmt::format("{}{} {}", line.empty() ? "" : ", ", k, num(v));
  std::cout << what << ": " << (line.empty() ? "all zero" : line) << "\n";
}

// The instance's replication as anychaind reports it (docs/state.md): state, counters, refused
// messages by reason, peers with their RTT.
void print_replication(const json& r) {
  std::cout << fmt::format("\nreplication: {} ({}), version {}, {} messages accepted\n", num(r["state"]),
                           num(r["ready_how"]), num(r["counters"]["version"]), num(r["accepted"]));
  print_counters("replication counters", r["counters"]);
  print_counters("refused messages", r["rejected"]);
  if (r.contains("gone") && !r["gone"].empty()) {
    std::string g;
    for (const auto& o : r["gone"])
      g += fmt::format("{}{}/{} ({})", g.empty() ? "" : ", ", num(o["id"]), num(o["incarnation"]),
                       o.value("folded", false) ? "folded" : "relay version " + num(o["relay_version"]));
    std::cout << "gone origins being folded (id/incarnation): " << g << "\n";
  }
  if (r["counters"].value("declared_gone_self", uint64_t{0}))
    std::cout << "warning: another instance declared this incarnation gone and refuses its messages: restart it\n";
  for (const auto& p : r["peers"])
    if (p.value("node_lost", false))
      std::cout << fmt::format("instance {}: its node is not reached in the LSDB (dead, or beyond a partition): "
                               "declared gone in {} ms unless it is reached again\n",
                               num(p["id"]), num(p.value("gone_in_ms", json(0))));
  Table t({"PEER", "ADDRESS", "STATE", "WIRE", "SRTT_US", "MIN_RTT_US", "ACKED", "SENT", "RETRANSMITS", "RECEIVED"});
  for (const auto& p : r["peers"])
    t.add({num(p["id"]), num(p["address"]), num(p["state"]), num(p.value("wire_version", json(0))), num(p["srtt_us"]),
           num(p["min_rtt_us"]), num(p["acked"]), num(p["sent"]), num(p["retransmits"]), num(p["msgs_received"])});
  t.print();
}

void print_state(const json& s) {
  std::cout << fmt::format("{} ({}, instance {}): pid {}, program {}, incarnation {}\n", num(s["name"]), num(s["kind"]),
                           num(s["instance_id"]), num(s["pid"]), num(s["prog_id"]), num(s["incarnation"]));
  print_counters("counters", s["counters"]);
  print_counters(fmt::format("ftc ({} records)", num(s["ftc"]["records"])).c_str(), s["ftc"]["counters"]);
  if (s.contains("process")) print_counters("process (hold queue, overflow, reclaim, control)", s["process"]);
  if (s["ftc"].contains("peers")) {
    std::string peers;
    for (const auto& [id, inc] : s["ftc"]["peers"].items()) peers += fmt::format("{}{}/{}", peers.empty() ? "" : " ", id, num(inc));
    std::cout << fmt::format("ftc incarnation {}, peers (id/incarnation): {}\n", num(s["ftc"].value("incarnation", json(0))),
                             peers.empty() ? "none" : peers);
  }
  if (s["ftc"].contains("control")) {
    std::string succ;
    for (const auto& x : s["ftc"]["control"]["successors"]) succ += (succ.empty() ? "" : " ") + num(x);
    std::cout << fmt::format("ftc control: f {}, successors: {}\n", num(s["ftc"]["control"]["f"]),
                             succ.empty() ? "none" : succ);
  }
  if (s["ftc"].contains("control_error")) std::cout << "ftc control file: " << num(s["ftc"]["control_error"]) << "\n";
  if (s["ftc"].contains("replicas") && !s["ftc"]["replicas"].empty()) {
    std::cout << fmt::format("\nreplica records: {}\n", s["ftc"]["replicas"].size());
    Table t({"MIDDLEBOX", "HEAD SI", "PARTITION", "SEQ", "INC", "HELD", "KEYS"});
    for (const auto& r : s["ftc"]["replicas"])
      t.add({num(r["middlebox"]), num(r["head_si"]), fmt::format("{} {}", num(r["spi"]), num(r["hash"])), num(r["seq"]),
             num(r["incarnation"]), num(r["held"]), std::to_string(r["slots"].size())});
    t.print();
  }
  if (s.contains("crdt")) print_counters("shared state", s["crdt"]["counters"]);
  auto window = [](const json& w) {
    return w["generation"].get<int>() < 0 ? std::string("no window set up")
                                          : fmt::format("window {} ({} s)", num(w["current"]), num(w["length_s"]));
  };
  if (s.contains("ids")) {
    const json& d = s["ids"];
    std::cout << fmt::format("\n{}: threshold {} ports, action {}; {} distinct pairs counted ({} here)\n",
                             window(d["window"]), num(d["threshold"]), num(d["action"]), num(d["pairs"]["merged"]),
                             num(d["pairs"]["own"]));
    Table t({"SOURCE", "FLAGGED", "BY THIS INSTANCE", "PORTS IN WINDOW"});
    for (const auto& f : d["flagged"])
      t.add({num(f["source"]), f["flagged"] ? "yes" : "no (removed)", f["by_this_instance"] ? "yes" : "no",
             num(f["ports_in_window"])});
    t.print();
  }
  if (s.contains("ratelimit")) {
    const json& d = s["ratelimit"];
    std::cout << fmt::format("\n{}: {} of {} {} ({} here, {} merged from the others){}\n", window(d["window"]),
                             num(d["count"]["merged"]), num(d["limit"]), num(d["unit"]), num(d["count"]["own"]),
                             num(d["count"]["others"]), d["over_limit"] ? ": over the limit, dropping" : "");
  }
  if (s.contains("nat")) {
    const json& n = s["nat"];
    std::cout << fmt::format("\nexternal address {}, ports {}: {} of {} in use\n", num(n["address"]), num(n["ports"]),
                             num(n["pool"]["used"]), num(n["pool"]["size"]));
    Table t({"PROTO", "INSIDE", "REMOTE", "EXTERNAL", "REPLIES", "PARTITION"});
    for (const auto& m : n["mappings"])
      t.add({num(m["proto"]), fmt::format("{}:{}", num(m["src"]), num(m["sport"])),
             fmt::format("{}:{}", num(m["dst"]), num(m["dport"])),
             fmt::format("{}:{}", num(m["external"]), num(m["external_port"])), m["reply_path"] ? "yes" : "no",
             fmt::format("{}/{} {}", num(m["partition"]["spi"]), num(m["partition"]["si"]), num(m["partition"]["hash"]))});
    t.print();
  }
  if (s.contains("monitor")) {
    const json& m = s["monitor"];
    std::cout << fmt::format("\ntotal: {} packets, {} bytes; {} flows\n", num(m["total"]["packets"]),
                             num(m["total"]["bytes"]), m["flows"].size());
    Table t({"PROTO", "SOURCE", "DESTINATION", "PACKETS", "BYTES"});
    for (const auto& f : m["flows"]) {
      if (f.contains("digest")) {
        t.add({"?", "digest " + num(f["digest"]), "", num(f["packets"]), num(f["bytes"])});
        continue;
      }
      bool v6 = num(f["src"]).find(':') != std::string::npos;
      auto ep = [&](const char* a, const char* p) {
        return v6 ? fmt::format("[{}]:{}", num(f[a]), num(f[p])) : fmt::format("{}:{}", num(f[a]), num(f[p]));
      };
      t.add({num(f["proto"]), ep("src", "sport"), ep("dst", "dport"), num(f["packets"]), num(f["bytes"])});
    }
    t.print();
  }
  if (s.contains("firewall")) {
    const json& f = s["firewall"];
    std::cout << "\n";
    Table t({"#", "RULE", "PACKETS", "BYTES"});
    for (const auto& r : f["rules"]) t.add({num(r["index"]), num(r["rule"]), num(r["packets"]), num(r["bytes"])});
    t.add({"-", "default " + num(f["default"]), num(f["default_hits"]["packets"]), num(f["default_hits"]["bytes"])});
    t.print();
  }
  if (s.contains("replication")) print_replication(s["replication"]);
}

int state(const Invocation& in) {
  const std::string& name = in.operands[0];
  auto repl = replication_of(in, name);
  std::string file;
  try {
    file = published_file(in, name);
  } catch (const ExitError&) {
    if (!repl) throw;
    // not a built-in NF, but anychaind replicates it (a process that publishes its own objects)
    json j{{"name", name}, {"replication", *repl}};
    print_result(in.g, j, [&] {
      std::cout << name << ": not a built-in network function; replicated by anychaind\n";
      print_replication(*repl);
    });
    return kOk;
  }
  auto pub = nf::read_published(file);
  if (!pub) {
    if (pub.error().code == ENOENT)
      return runtime_error(fmt::format("instance '{}' is not running ({} does not exist)", name, file));
    return runtime_error(pub.error().str());
  }
  auto maps = nf::InstanceMaps::open(*pub);
  if (!maps) return runtime_error(maps.error().str());
  auto s = nf::decode_state(*maps);
  if (!s) return runtime_error(s.error().str());
  // the FTC control file beside the published one: f and successors live only there
  const std::string control = nf::ftc_control_path(std::filesystem::path(file).parent_path().string(), name);
  if (auto c = nf::read_ftc_control(control))
    (*s)["ftc"]["control"] = nf::to_json(*c);
  else if (c.error().code != ENOENT)
    (*s)["ftc"]["control_error"] = c.error().str();
  if (repl) (*s)["replication"] = *repl;
  print_result(in.g, *s, [&] { print_state(*s); });
  return kOk;
}

}  // namespace

std::vector<Command> nf_commands() {
  return {{.name = "state",
           .synopsis = "NAME [--run-dir DIR]",
           .brief = "Show a built-in NF instance's state: NAT mappings, monitor flows, firewall rules, IDS flags, rate limit.",
           .details = "Read from the instance's own maps by the ids its anychain-nf published in\n"
                      "<run_dir>/NAME.json (anychaind's nf.run_dir, /run/anychain/nf by default). Works without\n"
                      "anychaind; the instance's process must run (its state lives and dies with it).",
           .examples = "  anychain state nat1\n  anychain state mon1 --json\n  anychain state ids1\n"
                       "  anychain state fw1 --run-dir /run/anychain/nf\n",
           .operands = Operands::Name,
           .options = [](po::options_description& o) {
             o.add_options()("run-dir", po::value<std::string>()->value_name("DIR"),
                             "where the instance published NAME.json (default: ask anychaind, else /run/anychain/nf)");
           },
           .run = state}};
}

}  // namespace anychain::cli
