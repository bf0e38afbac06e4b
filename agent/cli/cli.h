// The anychain CLI's command table and what its commands share (docs/cli.md).
//
// Every command is one Command row: its name, options, help and handler together. main.cc
// parses the command line and generates every help text from the rows; each command group
// (daemon.cc, attach.cc, config_lists.cc, observe.cc, state.cc) returns its rows.
#pragma once

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "anychain/maps.h"
#include "control/protocol.h"

namespace anychain::cli {

namespace po = boost::program_options;
using json = nlohmann::json;

enum Exit { kOk = 0, kRuntime = 1, kUsage = 2, kNoDaemon = 3 };

struct Global {
  bool json = false;
  std::string socket = control::kDefaultSocket;
  std::string pin_root = AC_PIN_ROOT;
  int timeout_s = 10;
};

// Exit 2 with "anychain: <what>" and a pointer to --help.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// Leave with this exit code; the message has been printed already.
struct ExitError {
  int code;
};

// Positional arguments a command takes (main.cc checks the count, with one message per kind).
enum class Operands { None, Interface, Name };

struct Command;
struct Invocation {
  const Command& command;
  const Global& g;
  const po::variables_map& vm;
  const std::vector<std::string>& operands;
};

struct Command {
  std::string name{};                 // "status", "service add"
  std::vector<std::string> aliases{}; // other words for its last word ("delete" for "del")
  std::string synopsis{};             // after "anychain NAME" in its usage line
  std::string brief{};                // one line: the command list of 'anychain --help'
  std::string details{};              // further lines of 'anychain NAME --help' (optional)
  std::string examples{};             // "  anychain ...\n" lines
  Operands operands = Operands::None;
  std::function<void(po::options_description&)> options{};  // its own options (optional)
  std::function<int(const Invocation&)> run{};
};

// The command groups, in the order 'anychain --help' lists them.
std::vector<Command> daemon_commands();   // status, topology, reload
std::vector<Command> attach_commands();   // attach, detach, flush
std::vector<Command> config_commands();   // service, chain, policy, instance: add, del, list
std::vector<Command> observe_commands();  // flows, stats
std::vector<Command> nf_commands();       // state

// ---- output (output.cc) ----
void print_json(const json& j);
// r as JSON with --json, else as text().
void print_result(const Global& g, const json& r, const std::function<void()>& text);
// Free-form objects (status, topology): indented "key: value" lines.
void print_tree(const json& j, int indent = 0);
// A field as table text: strings as is, booleans yes/no, dflt when absent.
std::string field(const json& j, const char* key, const std::string& dflt = "-");

// Aligned columns, two spaces apart.
class Table {
 public:
  explicit Table(std::vector<std::string> head) { rows_.push_back(std::move(head)); }
  void add(std::vector<std::string> r) { rows_.push_back(std::move(r)); }
  void print() const;

 private:
  std::vector<std::vector<std::string>> rows_;
};

// Print "anychain: msg" to stderr and return kRuntime.
int runtime_error(const std::string& msg);

// ---- where the fast path is (where.cc) ----
// Why the fast path of this network namespace cannot be read or loaded under --pin-root here
// (its maps are pinned in another mount namespace, e.g. by an agent under 'ip netns exec', or
// the maps there are not the ones its programs use), or nothing when that is not the case.
std::optional<std::string> foreign_fast_path(const Global& g);

// ---- anychaind (output.cc) ----
// Call a control command; a daemon that is not running is exit 3, a refusal exit 1.
json call(const Global& g, const std::string& cmd, const json& args = json::object());

}  // namespace anychain::cli
