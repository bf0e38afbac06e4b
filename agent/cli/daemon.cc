// status, topology, reload: anychaind's answers, printed as they come.
#include "cli/cli.h"

namespace anychain::cli {
namespace {

// Ask anychaind; print the answer as indented key: value lines (or JSON).
int show(const Invocation& in) {
  json r = call(in.g, in.command.name);
  print_result(in.g, r, [&] { print_tree(r); });
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
       .examples = "  anychain topology --json\n",
       .run = show},
      {.name = "reload",
       .brief = "Make anychaind re-read its config file (like systemctl reload anychaind).",
       .examples = "  anychain reload\n",
       .run = show},
  };
}

}  // namespace anychain::cli
