// service, chain, policy, instance: add, del, list through anychaind (changes persist in its
// config file). An entry is checked here with the config file's own rules before it is sent.
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <iostream>
#include <sstream>

#include "cli/cli.h"
#include "control/protocol.h"

namespace anychain::cli {
namespace {

// One kind of config list entry: its three commands are generated from this row.
struct Kind {
  std::string kind{};  // commands "<kind> add|del|list", control commands "<kind>_add|_del|_list"
  std::string add_synopsis{}, add_brief{}, add_details{}, add_examples{};
  std::string del_brief{}, del_examples{};
  std::string list_brief{}, list_examples{};
  std::function<void(po::options_description&)> add_options{};
  // the add command's options into the control command's args, checked locally
  std::function<void(const po::variables_map&, json&)> add_args{};
  std::function<void(const json&)> print_list{};
};

// Validate an entry with the config file's rules (usage error if bad).
template <class T>
void check_entry(const json& args, config::Parsed<T> (*from)(const json&)) {
  auto v = from(args);
  if (!v) {
    std::string msg;
    for (const auto& d : v.error()) msg += (msg.empty() ? "" : "\n") + d.message;
    throw UsageError(msg);
  }
}

// --flag VALUE as args[key]; numbers go as JSON numbers when they are integers (the parser
// range-checks them).
void opt(const po::variables_map& vm, json& args, const char* flag, const char* key, bool number = false) {
  if (!vm.count(flag)) return;
  const std::string& v = vm[flag].as<std::string>();
  if (number) {
    try {
      size_t used = 0;
      unsigned long long n = std::stoull(v, &used);
      if (used == v.size() && v[0] != '-') {
        args[key] = n;
        return;
      }
    } catch (const std::exception&) {
    }
  }
  args[key] = v;
}

void yesno(const po::variables_map& vm, json& args, const char* flag, const char* key) {
  if (!vm.count(flag)) return;
  std::string v = vm[flag].as<std::string>();
  if (v == "yes" || v == "true" || v == "on" || v == "1")
    args[key] = true;
  else if (v == "no" || v == "false" || v == "off" || v == "0")
    args[key] = false;
  else
    throw UsageError(fmt::format("--{} takes yes or no, not '{}'", flag, v));
}

auto value(const char* name) { return po::value<std::string>()->value_name(name); }

// --nf and its options as the config entry's keys (nf, restart, nat/monitor/firewall sections);
// the config parser checks them. A firewall rule's words are the rule map's keys:
// "drop proto udp dport 53" is {action: drop, proto: udp, dport: "53"}.
void nf_args(const po::variables_map& vm, json& args) {
  opt(vm, args, "nf", "nf");
  opt(vm, args, "restart", "restart");
  const std::string kind = args.value("nf", "");
  auto section = [&](const char* name) -> json& {
    if (!args.contains(name)) args[name] = json::object();
    return args[name];
  };
  if (vm.count("nat-address")) section("nat")["address"] = vm["nat-address"].as<std::string>();
  if (vm.count("nat-ports")) section("nat")["ports"] = vm["nat-ports"].as<std::string>();
  if (vm.count("idle-timeout")) {
    if (kind != "nat" && kind != "monitor") throw UsageError("--idle-timeout is for --nf nat or --nf monitor");
    json t;
    opt(vm, t, "idle-timeout", "idle_timeout_s", true);
    section(kind.c_str())["idle_timeout_s"] = t["idle_timeout_s"];
  }
  if (vm.count("window")) {
    if (kind != "ids" && kind != "ratelimit") throw UsageError("--window is for --nf ids or --nf ratelimit");
    json t;
    opt(vm, t, "window", "window_s", true);
    section(kind.c_str())["window_s"] = t["window_s"];
  }
  if (vm.count("ids-threshold")) {
    json t;
    opt(vm, t, "ids-threshold", "threshold", true);
    section("ids")["threshold"] = t["threshold"];
  }
  if (vm.count("ids-action")) section("ids")["action"] = vm["ids-action"].as<std::string>();
  if (vm.count("ids-filter")) section("ids")["filter"] = vm["ids-filter"].as<std::string>();
  if (vm.count("ids-sketch")) section("ids")["sketch"] = vm["ids-sketch"].as<std::string>();
  if (vm.count("rl-limit")) {
    json t;
    opt(vm, t, "rl-limit", "limit", true);
    section("ratelimit")["limit"] = t["limit"];
  }
  if (vm.count("rl-unit")) section("ratelimit")["unit"] = vm["rl-unit"].as<std::string>();
  opt(vm, section("ftc"), "replica-records", "replica_records", true);
  opt(vm, section("ftc"), "reorder-wait-us", "reorder_wait_us", true);
  if (args["ftc"].empty()) args.erase("ftc");
  if (vm.count("fw-default")) section("firewall")["default"] = vm["fw-default"].as<std::string>();
  if (vm.count("fw-rule")) {
    json rules = json::array();
    for (const auto& text : vm["fw-rule"].as<std::vector<std::string>>()) {
      std::istringstream in(text);
      std::vector<std::string> w;
      for (std::string x; in >> x;) w.push_back(x);
      if (w.empty()) throw UsageError("--fw-rule is empty (ACTION [src P] [dst P] [proto P] [sport N[-M]] [dport N[-M]])");
      json r{{"action", w[0]}};
      for (size_t i = 1; i < w.size(); i += 2) {
        if (i + 1 == w.size()) throw UsageError(fmt::format("--fw-rule '{}': '{}' needs a value", text, w[i]));
        if (r.contains(w[i])) throw UsageError(fmt::format("--fw-rule '{}': '{}' given twice", text, w[i]));
        r[w[i]] = w[i + 1];
      }
      rules.push_back(r);
    }
    section("firewall")["rules"] = rules;
  }
}

void print_services(const json& list) {
  Table t({"NAME", "ID", "ANYCAST"});
  for (const auto& e : list) t.add({field(e, "name"), field(e, "id"), field(e, "anycast")});
  t.print();
}

void print_chains(const json& list) {
  Table t({"NAME", "SPI", "PATH (SI: service)"});
  for (const auto& e : list) {
    std::string path;
    int si = 255;
    for (const auto& s : e.value("services", json::array()))
      path += fmt::format("{}: {} -> ", si--, s.is_string() ? s.get<std::string>() : s.dump());
    path += fmt::format("{}: end", si);
    t.add({field(e, "name"), field(e, "spi"), path});
  }
  t.print();
}

void print_policies(const json& list) {
  Table t({"#", "NAME", "CHAIN", "SRC", "DST", "PROTO", "SPORT", "DPORT", "SYMMETRIC", "MD"});
  int i = 0;
  for (const auto& e : list)
    t.add({std::to_string(i++), field(e, "name"), field(e, "chain"), field(e, "src", "any"), field(e, "dst", "any"),
           field(e, "proto", "any"), field(e, "sport", "any"), field(e, "dport", "any"),
           field(e, "symmetric", "default"), field(e, "md_type", "1")});
  t.print();
}

void print_instances(const json& list) {
  std::vector<std::string> head{"NAME", "ID", "SERVICE", "VETH", "MAC", "CAPACITY", "NSH", "NF"};
  static const std::vector<std::string> known{"name",     "id",     "service", "veth",    "mac",     "capacity",
                                              "nsh_aware", "pid_file", "cgroup", "nf",      "restart", "nat",
                                              "monitor",  "firewall", "ids",     "ratelimit"};
  std::vector<std::string> extra;  // live fields a daemon adds (load, cost, ...)
  for (const auto& e : list)
    for (const auto& [k, v] : e.items())
      if (std::find(known.begin(), known.end(), k) == known.end() &&
          std::find(extra.begin(), extra.end(), k) == extra.end())
        extra.push_back(k);
  for (const auto& k : extra) {
    std::string h = k;
    for (auto& ch : h) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    head.push_back(h);
  }
  Table t(head);
  for (const auto& e : list) {
    std::string nf = "-";
    if (e.contains("nf")) {
      nf = field(e, "nf");
      if (e.contains("nat")) nf += fmt::format(" {} {}", field(e["nat"], "address"), field(e["nat"], "ports"));
      if (e.contains("firewall"))
        nf += fmt::format(" ({} rules, default {})", e["firewall"].value("rules", json::array()).size(),
                          field(e["firewall"], "default"));
      if (e.contains("ids"))
        nf += fmt::format(" (threshold {}, {}, window {} s)", field(e["ids"], "threshold"), field(e["ids"], "action"),
                          field(e["ids"], "window_s"));
      if (e.contains("ratelimit"))
        nf += fmt::format(" ({} {} per {} s)", field(e["ratelimit"], "limit"), field(e["ratelimit"], "unit"),
                          field(e["ratelimit"], "window_s"));
      nf += fmt::format(", restart {}", field(e, "restart"));
    }
    std::vector<std::string> row{field(e, "name"),     field(e, "id"),       field(e, "service"),
                                 field(e, "veth"),     field(e, "mac", e.contains("nf") ? "nf" : "learn"),
                                 field(e, "capacity"), field(e, "nsh_aware", "yes"), nf};
    for (const auto& k : extra) row.push_back(field(e, k.c_str()));
    t.add(row);
  }
  t.print();
}

const std::vector<Kind>& kinds() {
  static const std::vector<Kind> k = {
      {.kind = "service",
       .add_synopsis = "NAME --id N --anycast PREFIX",
       .add_brief = "Add a service (id 1..1023, IPv4 anycast prefix).",
       .add_examples = "  anychain service add fw --id 1 --anycast 10.100.0.1/32\n",
       .del_brief = "Delete a service (refused while a chain or an instance uses it).",
       .del_examples = "  anychain service del fw\n",
       .list_brief = "List the services.",
       .list_examples = "  anychain service list --json\n",
       .add_options = [](po::options_description& o) {
         o.add_options()("id", value("N"), "service id 1..1023")("anycast", value("PREFIX"), "IPv4 prefix");
       },
       .add_args = [](const po::variables_map& vm, json& args) {
         opt(vm, args, "id", "id", true);
         opt(vm, args, "anycast", "anycast");
         check_entry(args, control::service_from_json);
       },
       .print_list = print_services},
      {.kind = "chain",
       .add_synopsis = "NAME --spi N --services S1,S2,...",
       .add_brief = "Add a chain: SI 255 is the first service, 254 the second, ...; after the last, NSH is popped.",
       .add_examples = "  anychain chain add web --spi 10 --services fw,ids\n",
       .del_brief = "Delete a chain (refused while a policy uses it).",
       .del_examples = "  anychain chain del web\n",
       .list_brief = "List the chains with their service index map.",
       .list_examples = "  anychain chain list\n",
       .add_options = [](po::options_description& o) {
         o.add_options()("spi", value("N"), "1..16777215")("services", value("S1,S2,..."),
                                                          "services in order (SI 255 first)");
       },
       .add_args = [](const po::variables_map& vm, json& args) {
         opt(vm, args, "spi", "spi", true);
         if (vm.count("services")) {
           json list = json::array();
           std::stringstream ss(vm["services"].as<std::string>());
           for (std::string s; std::getline(ss, s, ',');)
             if (!s.empty()) list.push_back(s);
           args["services"] = list;
         }
         check_entry(args, control::chain_from_json);
       },
       .print_list = print_chains},
      {.kind = "policy",
       .add_synopsis = "NAME --chain CHAIN [--src PREFIX] [--dst PREFIX] [--proto P] [--sport N[-M]] [--dport N[-M]]\n"
                       "                    [--symmetric yes|no] [--md-type 1|2] [--index N]",
       .add_brief = "Add a classifier policy (ordered, first match wins; --index inserts at a position, default last).",
       .add_examples = "  anychain policy add web-in --chain web --dst 10.0.2.0/24 --proto tcp --dport 80\n"
                       "  anychain policy add first --chain web --src 10.0.9.0/24 --index 0 --md-type 2\n",
       .del_brief = "Delete a policy.",
       .del_examples = "  anychain policy del web-in\n",
       .list_brief = "List the policies in match order.",
       .list_examples = "  anychain policy list\n",
       .add_options = [](po::options_description& o) {
         o.add_options()("chain", value("NAME"), "chain of matching traffic")("src", value("PREFIX"),
                                                                              "source prefix (any)")(
             "dst", value("PREFIX"), "destination prefix (any)")("proto", value("P"),
                                                                 "tcp, udp, icmp, icmpv6, any or a number")(
             "sport", value("N[-M]"), "source ports (tcp/udp)")("dport", value("N[-M]"), "destination ports (tcp/udp)")(
             "symmetric", value("yes|no"), "hash both directions alike (default: the node's setting)")(
             "md-type", value("1|2"), "NSH MD type pushed (default 1)")(
             "index", po::value<int>()->value_name("N"), "position in the list (0 = first; default last)");
       },
       .add_args = [](const po::variables_map& vm, json& args) {
         for (const char* k : {"chain", "src", "dst", "proto", "sport", "dport"}) opt(vm, args, k, k);
         yesno(vm, args, "symmetric", "symmetric");
         opt(vm, args, "md-type", "md_type", true);
         check_entry(args, control::policy_from_json);
         if (vm.count("index")) args["index"] = vm["index"].as<int>();  // not part of the entry
       },
       .print_list = print_policies},
      {.kind = "instance",
       .add_synopsis = "NAME --id N --service S --veth IFACE --capacity PPS [--mac MAC] [--nsh-aware yes|no]\n"
                       "                      [--pid-file FILE] [--cgroup PATH]\n"
                       "       anychain instance add NAME --id N --service S --veth IFACE --capacity PPS\n"
                       "                      --nf nat|monitor|firewall|ids|ratelimit [NF OPTIONS] [--restart always|never]\n"
                       "       anychain instance add NAME --standby-for ID --service S --veth IFACE --capacity PPS\n"
                       "                      --nf KIND [NF OPTIONS]",
       .add_brief = "Add a local VNF instance (id 1..16383, unique in the network; MAC learnt when not given).",
       .add_details =
           "A local instance only: a VNF of this node behind the veth IFACE. anychaind attaches the fast path\n"
           "to the veth itself (also when it appears later) and announces the instance in OSPF. Instances of\n"
           "other nodes come only from OSPF (their nodes' VNF LSAs): there is no static remote instance, and\n"
           "without ospfd no instance, local or remote, is placed (the service plane is computed from the LSDB).\n"
           "The veth's MTU must hold the inner packet plus the NSH (24 bytes for MD type 1; the bare packet\n"
           "with --nsh-aware no); longer packets go through the slow path (docs/slow-path.md).\n"
           "With --nf, anychaind runs a built-in network function for it (docs/nf.md): it creates the\n"
           "namespace acnf-NAME and the veth (IFACE on this side, eth0 inside), starts anychain-nf there,\n"
           "withdraws the instance at once when it dies and restarts it (--restart, default always).\n"
           "  nat:      --nat-address ADDR (required), --nat-ports LO-HI (default 1024-65535)\n"
           "  firewall: --fw-rule 'ACTION [src P] [dst P] [proto P] [sport N[-M]] [dport N[-M]]'\n"
           "            (repeat, in order; ACTION pass or drop), --fw-default pass|drop (default pass)\n"
           "  nat, monitor: --idle-timeout SECONDS (per-flow state; default nat 300, monitor 60)\n"
           "  ids:      --ids-threshold PORTS (default 64), --ids-action pass|drop (default pass),\n"
           "            --ids-filter HASHESxCELLS (3x65536), --ids-sketch ROWSxWIDTH (4x4096)\n"
           "  ratelimit: --rl-limit N (required, per window over every instance), --rl-unit bytes|packets\n"
           "  ids, ratelimit: --window SECONDS (default 10; the same on every instance of the service)\n"
           "  on an FTC chain: --replica-records N, --reorder-wait-us US (this instance's; default the\n"
           "            config's top-level ftc: values, docs/config.md \"ftc\")\n"
           "With --standby-for ID, the entry stands by for the FTC instance ID of another node (docs/ftc.md\n"
           "7.3): nothing runs and this node announces only that it stands by. When that instance's node\n"
           "fails (unreachable in OSPF, or silent on the FTC channel) or it stays withdrawn, the standby on the\n"
           "reachable router with the lowest router id starts it here as ID, incarnation + 1, with the state\n"
           "recovered from its replicas, and announces it. Same service and NF options as the instance (a NAT:\n"
           "the same address and port block); --id may be left out. One standby per instance and node.",
       .add_examples = "  anychain instance add fw-a --id 101 --service fw --veth vfw-a --capacity 200000\n"
                       "  anychain instance add ids-a --id 102 --service ids --veth vids-a --capacity 1e5 --nsh-aware no\n"
                       "  anychain instance add fw1 --id 1 --service fw --veth nf-fw1 --capacity 100000 --nf firewall \\\n"
                       "      --fw-rule 'drop proto udp dport 53' --fw-rule 'drop src 10.9.0.0/16'\n"
                       "  anychain instance add nat1 --id 3 --service nat --veth nf-nat1 --capacity 100000 --nf nat \\\n"
                       "      --nat-address 192.0.2.10 --nat-ports 20000-29999 --restart always\n"
                       "  anychain instance add ids1 --id 4 --service ids --veth nf-ids1 --capacity 100000 --nf ids \\\n"
                       "      --ids-threshold 64 --ids-action drop --window 10\n"
                       "  anychain instance add rl1 --id 5 --service rl --veth nf-rl1 --capacity 100000 --nf ratelimit \\\n"
                       "      --rl-limit 100000 --rl-unit packets --window 1\n"
                       "  anychain instance add nat1-sb --standby-for 3 --service nat --veth nf-nat1 --capacity 100000 \\\n"
                       "      --nf nat --nat-address 192.0.2.10 --nat-ports 20000-29999\n",
       .del_brief = "Delete a local VNF instance (its flows are re-balanced).",
       .del_examples = "  anychain instance del fw-a\n",
       .list_brief = "List the local VNF instances.",
       .list_examples = "  anychain instance list\n",
       .add_options = [](po::options_description& o) {
         o.add_options()("id", value("N"), "instance id 1..16383, unique in the network")("service", value("NAME"),
                                                                                          "its service")(
             "veth", value("IFACE"), "host side of its veth")("capacity", value("PPS"), "packets per second it can serve")(
             "mac", value("MAC"), "the VNF's MAC (learnt when not given)")("nsh-aware", value("yes|no"), "default yes")(
             "pid-file", value("FILE"), "for CPU load")("cgroup", value("PATH"), "for CPU load")(
             "nf", value("KIND"), "run a built-in network function: nat, monitor, firewall, ids, ratelimit or replica (an FTC replica-only hop)")(
             "restart", value("always|never"), "nf: restart it when it dies (default always)")(
             "nat-address", value("ADDR"), "nat: the external IPv4 address")(
             "nat-ports", value("LO-HI"), "nat: the port pool (default 1024-65535)")(
             "fw-rule", po::value<std::vector<std::string>>()->composing()->value_name("RULE"),
             "firewall: 'ACTION [src P] [dst P] [proto P] [sport N[-M]] [dport N[-M]]' (repeat, in order)")(
             "fw-default", value("pass|drop"), "firewall: the action when no rule matches (default pass)")(
             "idle-timeout", value("SECONDS"), "nat, monitor: per-flow state idle longer is reset")(
             "ids-threshold", value("PORTS"), "ids: distinct ports of a source in a window that flag it (default 64)")(
             "ids-action", value("pass|drop"), "ids: what happens to a flagged source's packets (default pass: counted)")(
             "ids-filter", value("KxM"), "ids: pair filter, hashes x cells (default 3x65536)")(
             "ids-sketch", value("RxW"), "ids: source sketch, rows x width (default 4x4096)")(
             "rl-limit", value("N"), "ratelimit: the limit per window over every instance")(
             "rl-unit", value("bytes|packets"), "ratelimit: what the limit counts (default bytes)")(
             "window", value("SECONDS"), "ids, ratelimit: the window of their shared counts (default 10)")(
             "replica-records", value("N"), "FTC: this NF's replica store, partitions (default ftc.replica_records)")(
             "reorder-wait-us", value("US"), "FTC: a gap held this long is re-requested (default ftc.reorder_wait_us)")(
             "standby-for", value("ID"), "stand by for the FTC instance ID of another node (docs/ftc.md 7.3)");
       },
       .add_args = [](const po::variables_map& vm, json& args) {
         opt(vm, args, "id", "id", true);
         opt(vm, args, "standby-for", "standby_for", true);
         for (const char* k : {"service", "veth", "mac", "cgroup"}) opt(vm, args, k, k);
         opt(vm, args, "capacity", "capacity", true);
         opt(vm, args, "pid-file", "pid_file");
         yesno(vm, args, "nsh-aware", "nsh_aware");
         nf_args(vm, args);
         if (args.contains("capacity") && args["capacity"].is_string()) {
           // accept 1e5, 2.5e6: whole packets per second
           try {
             size_t used = 0;
             const std::string text = args["capacity"].get<std::string>();
             double d = std::stod(text, &used);
             if (used == text.size() && d >= 1 && d == std::floor(d) && d < 1e12) args["capacity"] = static_cast<uint64_t>(d);
           } catch (const std::exception&) {
           }
         }
         check_entry(args, control::instance_from_json);
       },
       .print_list = print_instances},
  };
  return k;
}

}  // namespace

std::vector<Command> config_commands() {
  std::vector<Command> out;
  for (const Kind& k : kinds()) {
    out.push_back({.name = k.kind + " add",
                   .synopsis = k.add_synopsis,
                   .brief = k.add_brief,
                   .details = k.add_details,
                   .examples = k.add_examples,
                   .operands = Operands::Name,
                   .options = k.add_options,
                   .run = [&k](const Invocation& in) {
                     json args{{"name", in.operands[0]}};
                     k.add_args(in.vm, args);
                     json r = call(in.g, k.kind + "_add", args);
                     print_result(in.g, r, [&] { std::cout << "added " << k.kind << " " << in.operands[0] << "\n"; });
                     return int{kOk};
                   }});
    out.push_back({.name = k.kind + " del",
                   .aliases = {"delete", "remove"},
                   .synopsis = "NAME",
                   .brief = k.del_brief,
                   .examples = k.del_examples,
                   .operands = Operands::Name,
                   .run = [&k](const Invocation& in) {
                     json r = call(in.g, k.kind + "_del", {{"name", in.operands[0]}});
                     print_result(in.g, r, [&] { std::cout << "deleted " << k.kind << " " << in.operands[0] << "\n"; });
                     return int{kOk};
                   }});
    out.push_back({.name = k.kind + " list",
                   .aliases = {"ls", "show"},
                   .brief = k.list_brief,
                   .examples = k.list_examples,
                   .run = [&k](const Invocation& in) {
                     json r = call(in.g, k.kind + "_list");
                     print_result(in.g, r, [&] { k.print_list(r); });
                     return int{kOk};
                   }});
  }
  return out;
}

}  // namespace anychain::cli
