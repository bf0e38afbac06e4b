// status, topology, reload: anychaind's answers, printed as they come.
#include <fmt/format.h>

#include <iostream>

#include "cli/cli.h"

namespace anychain::cli {
namespace {

// Ask anychaind; print the answer as indented key: value lines (or JSON).
int show(const Invocation& in) {
  json r = call(in.g, in.command.name);
  print_result(in.g, r, [&] { print_tree(r); });
  return kOk;
}

// The service plane as this node sees it: routers by SPF cost, then per service where it is
// chosen and its candidates with what their weight is made of. Weights of a service this node
// never chooses are not shown: they are computed, but only the nodes that choose use theirs.
void print_topology(const json& t) {
  if (t.contains("computed_ms_ago"))
    std::cout << "computed " << t["computed_ms_ago"].dump() << " ms ago"
              << (t.value("recompute_pending", false) ? " (the LSDB changed since: recomputing)" : "") << "\n";
  else
    std::cout << "not computed yet\n";
  Table r({"ROUTER", "COST"});
  for (const auto& x : t["routers"])
    r.add({field(x, "router_id") + (x.value("self", false) ? " (self)" : ""),
           x.contains("cost") ? x["cost"].dump() : "unreachable"});
  r.print();
  for (const auto& s : t["services"]) {
    bool here = s.value("chosen_here", false);
    std::cout << "\nservice " << field(s, "name") << " (id " << s["id"].dump() << "): "
              << (here ? "chosen here" : "not chosen on this node") << "\n";
    for (const auto& sel : s["selection"])
      std::cout << "  SPI " << sel["spi"].dump() << " SI " << sel["si"].dump() << ": "
                << (sel["chosen_here"].get<bool>() ? "chosen here: " : "") << field(sel, "why") << "\n";
    if (s["instances"].empty()) {
      std::cout << "  no instance\n";
      continue;
    }
    std::vector<std::string> head{"ID", "ROUTER", "NET", "BOTTLENECK", "VNF", "PATH"};
    if (here) head.insert(head.end(), {"WEIGHT", "SHARE"});
    head.push_back("");
    Table it(head);
    for (const auto& i : s["instances"]) {
      std::vector<std::string> row{i["id"].dump(), field(i, "router"), i["network_cost"].dump(),
                                   i["bottleneck"].is_null() ? "-" : i["bottleneck"].dump(), i["vnf_cost"].dump(),
                                   i["path_cost"].dump()};
      if (here) {
        row.push_back(i["weight"].dump() + (i.contains("limited_by") ? " (" + field(i, "limited_by") + ")" : ""));
        row.push_back(fmt::format("{:.1f}%", 100.0 * i["share"].get<double>()));
      }
      std::string flags;
      for (auto [key, word] : {std::pair{"local", "local"}, std::pair{"held", "held"}})
        if (i.value(key, false)) flags += (flags.empty() ? "" : ",") + std::string(word);
      if (!i.value("nsh_aware", true)) flags += (flags.empty() ? "" : ",") + std::string("proxied");
      row.push_back(flags);
      it.add(row);
    }
    it.print();
    if (here)
      std::cout << "  weight = " << field(t, "weight_rule") << "; (vnf) or (link): which one bounds it\n";
    else
      std::cout << "  (no weights shown: this node computes them but never uses them for " << field(s, "name") << ")\n";
  }
  if (t.contains("superseded") && !t["superseded"].empty()) {
    std::cout << "\nnot candidates (another router's announcement of the same instance id is kept):\n";
    for (const auto& x : t["superseded"])
      std::cout << "  instance " << x["id"].dump() << " on " << field(x, "router") << " (incarnation "
                << x["incarnation"].dump() << (x.value("held", false) ? ", held" : "")
                << (x.value("recovering", false) ? ", frozen" : "") << "): kept on " << field(x, "kept_on") << "\n";
  }
}

int topology(const Invocation& in) {
  json r = call(in.g, "topology");
  print_result(in.g, r, [&] { print_topology(r); });
  return kOk;
}

}  // namespace

std::vector<Command> daemon_commands() {
  return {
      {.name = "status",
       .brief = "Show the daemon's state (node, interfaces, OSPF, counts).",
       .examples = "  anychain status\n  anychain status --json\n",
       .run = show},
      {.name = "topology",
       .brief = "Show the service plane: routers, VNF instances, costs and WCMP weights.",
       .details = "Per service: where it is chosen (the first service of a chain by the node that classifies,\n"
                  "each later one by the node of the previous service's instance, with its own weights) and\n"
                  "its candidates: NET (SPF cost to the instance's router), BOTTLENECK (narrowest link on that\n"
                  "path), VNF (announced cost), PATH (NET + VNF), and, where this node chooses, WEIGHT and SHARE.",
       .examples = "  anychain topology\n  anychain topology --json\n",
       .run = topology},
      {.name = "reload",
       .brief = "Make anychaind re-read its config file (like systemctl reload anychaind).",
       .examples = "  anychain reload\n",
       .run = show},
  };
}

}  // namespace anychain::cli
