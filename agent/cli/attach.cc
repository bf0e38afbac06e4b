// attach, detach, flush: through anychaind when it runs (it records the interface and attaches
// it again at restart), else straight to the dataplane library.
#include <fmt/format.h>
#include <net/if.h>

#include <chrono>
#include <iostream>

#include "cli/cli.h"
#include "control/client.h"
#include "dataplane/dataplane.h"
#include "dataplane/pinned.h"

namespace anychain::cli {
namespace {

namespace dp = anychain::dataplane;

// No daemon: load the fast path under --pin-root and attach with the daemon's own function.
Result<dp::Attachment> attach_directly(const Global& g, const std::string& ifname, XdpMode mode, bool classify) {
  if (auto r = dp::require_root(); !r) return fail(r.error().message);
  if (ifname.size() >= IF_NAMESIZE || if_nametoindex(ifname.c_str()) == 0)
    return fail(fmt::format("interface '{}' does not exist", ifname));
  // never a second, empty set of maps beside the live ones
  if (auto foreign = foreign_fast_path(g)) return fail(*foreign);
  dp::Options opts;
  opts.pin_root = g.pin_root;
  // a program instance must match the maps already pinned (their sizes must agree)
  if (auto pinned = dp::PinnedMaps::open(g.pin_root)) {
    opts.flow_cache_entries = pinned->flow_cache_entries();
    opts.proxy_entries = pinned->proxy_entries();
    opts.affinity_entries = pinned->affinity_entries();
  }
  auto d = dp::Dataplane::open(opts);
  if (!d) return std::unexpected(d.error());
  return dp::attach_interface(*d, ifname, mode, classify);
}

// Through anychaind when it answers (it records the change), else direct() in this process.
// The result says which way it went ("via"); failures leave with exit 1.
json via_daemon_or_directly(const Global& g, const std::string& cmd, const json& args,
                            const std::function<Result<json>()>& direct) {
  auto c = control::Client::connect(g.socket, std::chrono::seconds(g.timeout_s));
  json result;
  if (c) {
    auto r = c->call(cmd, args);
    if (!r) throw ExitError{runtime_error(r.error().message)};
    result = std::move(*r);
    result["via"] = "anychaind";
  } else if (control::daemon_absent(c.error())) {
    auto r = direct();
    if (!r) throw ExitError{runtime_error(r.error().str())};
    result = std::move(*r);
    result["via"] = "dataplane";
  } else {
    throw ExitError{runtime_error(c.error().str())};
  }
  return result;
}

int attach(const Invocation& in) {
  const Global& g = in.g;
  const std::string& ifname = in.operands[0];
  const std::string mode_text = in.vm["mode"].as<std::string>();
  const bool classify = in.vm["classify"].as<bool>();
  auto mode = parse_xdp_mode(mode_text);
  if (!mode) throw UsageError(fmt::format("unsupported mode '{}' (native, generic or auto)", mode_text));
  json args = {{"ifname", ifname}, {"mode", std::string(to_string(*mode))}};
  if (classify) args["classify"] = true;
  json result = via_daemon_or_directly(g, "attach", args, [&]() -> Result<json> {
    auto a = attach_directly(g, ifname, *mode, classify);
    if (!a) return std::unexpected(a.error());
    return json{{"ifname", a->ifname}, {"ifindex", a->ifindex}, {"mode", to_string(a->mode)},
                {"prog_id", a->prog_id}, {"dispatcher", a->dispatcher}};
  });
  print_result(g, result, [&] {
    const bool direct = result["via"] == "dataplane";
    std::cout << "attached to " << field(result, "ifname") << " in " << field(result, "mode") << " mode";
    if (result.contains("prog_id")) std::cout << " (program id " << field(result, "prog_id") << ")";
    std::cout << (direct ? "; anychaind is not running: attached directly, it will not re-attach at restart\n" : "\n");
    if (result.contains("dispatcher") && !result["dispatcher"].get<bool>())
      std::cout << "note: libxdp's dispatcher is not available on this kernel (no freplace programs): anychain is "
                   "attached alone and cannot share " << field(result, "ifname") << " with other XDP programs\n";
  });
  return kOk;
}

int detach(const Invocation& in) {
  const std::string& ifname = in.operands[0];
  json result = via_daemon_or_directly(in.g, "detach", {{"ifname", ifname}}, [&]() -> Result<json> {
    if (auto r = dp::require_root(); !r) return fail(r.error().message);
    if (auto r = dp::Dataplane::detach(ifname); !r) return std::unexpected(r.error());
    return json{{"ifname", ifname}};
  });
  print_result(in.g, result, [&] { std::cout << "detached from " << ifname << "\n"; });
  return kOk;
}

int flush(const Invocation& in) {
  const Global& g = in.g;
  if (auto c = control::Client::connect(g.socket, std::chrono::seconds(g.timeout_s)); c)
    return runtime_error(fmt::format("anychaind is running ({}); stop it first (it keeps the maps in use)", g.socket));
  if (auto r = dp::require_root(); !r) return runtime_error(r.error().message);
  std::vector<std::string> names;
  if (struct if_nameindex* all = if_nameindex()) {
    for (struct if_nameindex* i = all; i->if_index; ++i) names.emplace_back(i->if_name);
    if_freenameindex(all);
  }
  auto at = dp::Dataplane::attached(names);
  if (at && !at->empty()) {
    std::string list;
    bool slow = false;
    for (const auto& a : *at) {
      list += (list.empty() ? "" : ", ") + a.ifname;
      slow = slow || a.ifname == "ac-slow";  // slowpath::kFastIf (a module the CLI does not use)
    }
    return runtime_error(fmt::format("still attached to {}; detach first{}", list,
                                     slow ? " (ac-slow is anychaind's slow path, kept for its next start: "
                                            "'anychain detach ac-slow'; 'ip link del ac-slow' removes the pair)"
                                          : ""));
  }
  if (auto r = dp::Dataplane::unpin_all(g.pin_root); !r) return runtime_error(r.error().str());
  print_result(g, {{"flushed", g.pin_root}}, [&] { std::cout << "removed the pinned maps under " << g.pin_root << "\n"; });
  return kOk;
}

}  // namespace

std::vector<Command> attach_commands() {
  return {
      {.name = "attach",
       .synopsis = "IFACE [--mode native|generic|auto] [--classify]",
       .brief = "Attach the XDP fast path to an interface (via anychaind when it runs, else directly).",
       .details = "Through anychaind the interface is recorded and re-attached at restart; without it the\n"
                  "fast path is loaded under --pin-root (maps already pinned there are reused).",
       .examples = "  anychain attach eth0\n  anychain attach eth1 --mode generic --classify\n",
       .operands = Operands::Interface,
       .options =
           [](po::options_description& o) {
             o.add_options()("mode,m", po::value<std::string>()->value_name("MODE")->default_value("auto"),
                             "native, generic or auto")(
                 "classify", po::bool_switch(), "plain IP arriving here is classified into chains");
           },
       .run = attach},
      {.name = "detach",
       .synopsis = "IFACE",
       .brief = "Detach the XDP fast path from an interface.",
       .examples = "  anychain detach eth1\n",
       .operands = Operands::Interface,
       .run = detach},
      {.name = "flush",
       .brief = "Remove the fast path's pinned maps (--pin-root).",
       .details = "Refused while anychaind runs or while anychain is still attached to an interface of this\n"
                  "network namespace.",
       .examples = "  anychain detach eth0 && anychain flush\n",
       .run = flush},
  };
}

}  // namespace anychain::cli
