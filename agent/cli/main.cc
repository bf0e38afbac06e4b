// anychain: the command line tool (docs/cli.md).
//
//   anychain [GLOBAL OPTIONS] COMMAND [ARGS] [OPTIONS]
//
// The commands are the rows of the groups' tables (cli.h); this file finds the row a command
// line names, parses its options (Boost.Program_options, global options before or after the
// command) and prints every help text from the rows.
// Exit codes: 0 ok, 1 runtime error, 2 usage error, 3 daemon not running.
#include <bpf/libbpf.h>
#include <xdp/libxdp.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <iomanip>
#include <iostream>

#include <fmt/format.h>

#include "cli/cli.h"

namespace anychain::cli {
namespace {

const std::vector<Command>& commands() {
  static const std::vector<Command> all = [] {
    std::vector<Command> out;
    for (auto group : {daemon_commands, attach_commands, config_commands, observe_commands, nf_commands})
      for (auto& c : group()) out.push_back(std::move(c));
    return out;
  }();
  return all;
}

po::options_description global_options() {
  po::options_description g("Global options");
  g.add_options()("json,j", "print JSON (one document; one line per sample with --watch)")(
      "socket,s", po::value<std::string>()->value_name("PATH"),
      "anychaind's control socket (default /run/anychain/anychaind.sock)")(
      "pin-root", po::value<std::string>()->value_name("DIR"), "bpffs directory of the pinned maps (default /sys/fs/bpf/anychain)")(
      "timeout", po::value<int>()->value_name("SECONDS"), "how long to wait for anychaind (default 10)")(
      "verbose,v", "show libbpf/libxdp warnings")(
      "help,h", "show help");
  return g;
}

po::options_description options_of(const Command& c) {
  po::options_description o("Options of '" + c.name + "'");
  if (c.options) c.options(o);
  return o;
}

void print_main_help(std::ostream& os) {
  os << "Usage: anychain [GLOBAL OPTIONS] COMMAND [ARGS] [OPTIONS]\n\n"
        "Service function chaining (NSH) on an XDP fast path; talks to anychaind.\n\nCommands:\n";
  for (const auto& c : commands()) os << "  " << std::left << std::setw(16) << c.name << c.brief << "\n";
  os << "\n" << global_options() << "\n"
     << "Exit status: 0 ok, 1 error, 2 usage error, 3 anychaind is not running.\n"
        "Run 'anychain COMMAND --help' for a command's options and examples.\n";
}

// The help of one command, or of every command of a group ("service").
void print_command_help(std::ostream& os, const std::string& name) {
  for (const auto& c : commands()) {
    if (c.name != name && !c.name.starts_with(name + " ")) continue;
    os << "Usage: anychain " << c.name << (c.synopsis.empty() ? "" : " " + c.synopsis) << "\n\n" << c.brief
       << (c.details.empty() ? "" : "\n" + c.details) << "\n\nExamples:\n" << c.examples << "\n";
    if (c.options) os << options_of(c) << "\n";
  }
  os << global_options();
}

// The group a word names ("service"), as its commands' last words: "add, del or list".
std::vector<const Command*> group_of(const std::string& word) {
  std::vector<const Command*> out;
  for (const auto& c : commands())
    if (c.name.starts_with(word + " ")) out.push_back(&c);
  return out;
}

std::string actions_text(const std::vector<const Command*>& group) {
  std::string out;
  for (size_t i = 0; i < group.size(); ++i) {
    out += group[i]->name.substr(group[i]->name.find(' ') + 1);
    if (i + 2 < group.size()) out += ", ";
    else if (i + 2 == group.size()) out += " or ";
  }
  return out;
}

// The command a line names: args[i] (and args[i + 1] for a group); i moves past them. Null for
// a group named without its action (only its help can be shown).
const Command* find_command(const std::vector<std::string>& args, size_t& i, std::string& name) {
  name = args[i++];
  auto group = group_of(name);
  if (group.empty()) {
    for (const auto& c : commands())
      if (c.name == name) return &c;
    throw UsageError(fmt::format("unknown command '{}'", name));
  }
  if (i == args.size() || args[i].starts_with("-")) return nullptr;
  const std::string action = args[i++];
  for (const Command* c : group) {
    const std::string last = c->name.substr(c->name.find(' ') + 1);
    if (action == last || std::find(c->aliases.begin(), c->aliases.end(), action) != c->aliases.end()) {
      name = c->name;
      return c;
    }
  }
  throw UsageError(fmt::format("unknown action '{} {}' ({})", name, action, actions_text(group)));
}

void check_operands(const Command& c, const std::vector<std::string>& p) {
  switch (c.operands) {
    case Operands::None:
      if (!p.empty()) throw UsageError(fmt::format("'{}' takes no arguments (got '{}')", c.name, p[0]));
      break;
    case Operands::Interface:
      if (p.size() != 1) throw UsageError(fmt::format("'{}' needs exactly one interface name", c.name));
      break;
    case Operands::Name:
      if (p.size() != 1) throw UsageError(fmt::format("'{}' takes exactly one NAME", c.name));
      break;
  }
}

// libbpf and libxdp print to stderr by default; the CLI reports their failures in its own
// words, so their chatter is shown only with --verbose.
int quiet_libbpf(enum libbpf_print_level, const char*, va_list) { return 0; }
int verbose_libbpf(enum libbpf_print_level l, const char* f, va_list a) {
  return l == LIBBPF_DEBUG ? 0 : std::vfprintf(stderr, f, a);
}
int quiet_libxdp(enum libxdp_print_level, const char*, va_list) { return 0; }
int verbose_libxdp(enum libxdp_print_level l, const char* f, va_list a) {
  return l == LIBXDP_DEBUG ? 0 : std::vfprintf(stderr, f, a);
}

int run(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  const po::options_description globals = global_options();
  // global options before the command (with their values)
  size_t i = 0;
  std::vector<std::string> leading;
  for (; i < args.size() && args[i].starts_with("-"); ++i) {
    const std::string& a = args[i];
    leading.push_back(a);
    // "--socket PATH" or "-s PATH" take the next word; "--socket=PATH" and "-sPATH" do not
    const bool is_long = a.starts_with("--");
    if (is_long ? a.find('=') != std::string::npos : a.size() > 2) continue;
    const po::option_description* d = globals.find_nothrow(is_long ? a.substr(2) : a, false);
    if (d && d->semantic()->max_tokens() > 0 && i + 1 < args.size()) leading.push_back(args[++i]);
  }
  auto has = [&](const char* a, const char* b = "") {
    return std::any_of(leading.begin(), leading.end(), [&](const std::string& x) { return x == a || x == b; });
  };
  if (i == args.size()) {
    if (has("-h", "--help")) {
      print_main_help(std::cout);
      return kOk;
    }
    if (has("--version")) {
      std::cout << "anychain 0.1.0\n";
      return kOk;
    }
    print_main_help(std::cerr);
    return kUsage;
  }
  if (args[i] == "help") {
    if (++i == args.size()) {
      print_main_help(std::cout);
      return kOk;
    }
    args.push_back("--help");
  }
  std::string name;
  const Command* cmd = find_command(args, i, name);

  po::options_description all;
  all.add(globals);
  if (cmd) all.add(options_of(*cmd));
  all.add_options()("args", po::value<std::vector<std::string>>(), "");
  po::positional_options_description pos;
  pos.add("args", -1);
  std::vector<std::string> rest(leading);
  rest.insert(rest.end(), args.begin() + static_cast<long>(i), args.end());
  po::variables_map vm;
  po::store(po::command_line_parser(rest).options(all).positional(pos).run(), vm);
  po::notify(vm);
  if (vm.count("help")) {
    print_command_help(std::cout, name);
    return kOk;
  }
  if (!cmd) throw UsageError(fmt::format("'{}' needs an action: {}", name, actions_text(group_of(name))));

  Global g;
  g.json = vm.count("json") > 0;
  if (vm.count("verbose")) {
    libbpf_set_print(verbose_libbpf);
    libxdp_set_print(verbose_libxdp);
  } else {
    libbpf_set_print(quiet_libbpf);
    libxdp_set_print(quiet_libxdp);
  }
  if (vm.count("socket")) g.socket = vm["socket"].as<std::string>();
  if (vm.count("pin-root")) g.pin_root = vm["pin-root"].as<std::string>();
  if (vm.count("timeout")) {
    g.timeout_s = vm["timeout"].as<int>();
    if (g.timeout_s <= 0) throw UsageError("--timeout must be positive");
  }
  std::vector<std::string> operands =
      vm.count("args") ? vm["args"].as<std::vector<std::string>>() : std::vector<std::string>{};
  check_operands(*cmd, operands);
  return cmd->run(Invocation{*cmd, g, vm, operands});
}

}  // namespace
}  // namespace anychain::cli

int main(int argc, char** argv) {
  using namespace anychain::cli;
  try {
    return run(argc, argv);
  } catch (const UsageError& e) {
    std::cerr << "anychain: " << e.what() << "\nTry 'anychain --help' or 'anychain COMMAND --help'.\n";
    return kUsage;
  } catch (const po::error& e) {
    std::cerr << "anychain: " << e.what() << "\nTry 'anychain --help' or 'anychain COMMAND --help'.\n";
    return kUsage;
  } catch (const ExitError& e) {
    return e.code;
  } catch (const std::exception& e) {
    std::cerr << "anychain: " << e.what() << "\n";
    return kRuntime;
  }
}
