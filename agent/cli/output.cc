// What the commands share: output as tables, trees or JSON, and calls to anychaind.
#include <algorithm>
#include <chrono>
#include <iostream>

#include "cli/cli.h"
#include "control/client.h"

namespace anychain::cli {

void print_json(const json& j) { std::cout << j.dump(2) << std::endl; }

void print_result(const Global& g, const json& r, const std::function<void()>& text) {
  if (g.json)
    print_json(r);
  else
    text();
}

void print_tree(const json& j, int indent) {
  std::string pad(static_cast<size_t>(indent), ' ');
  auto scalar = [](const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); };
  if (j.is_object()) {
    for (const auto& [k, v] : j.items()) {
      if (v.is_structured() && !v.empty() &&
          !(v.is_array() && std::all_of(v.begin(), v.end(), [](const json& e) { return e.is_primitive(); }))) {
        std::cout << pad << k << ":\n";
        print_tree(v, indent + 2);
      } else if (v.is_array()) {
        std::string s;
        for (const auto& e : v) s += (s.empty() ? "" : ", ") + scalar(e);
        std::cout << pad << k << ": " << s << "\n";
      } else {
        std::cout << pad << k << ": " << (v.is_structured() ? v.dump() : scalar(v)) << "\n";
      }
    }
  } else if (j.is_array()) {
    for (const auto& e : j) {
      if (e.is_object()) {
        bool first = true;
        for (const auto& [k, v] : e.items()) {
          std::cout << pad << (first ? "- " : "  ") << k << ": " << scalar(v) << "\n";
          first = false;
        }
      } else {
        std::cout << pad << "- " << scalar(e) << "\n";
      }
    }
  } else {
    std::cout << pad << scalar(j) << "\n";
  }
}

std::string field(const json& j, const char* key, const std::string& dflt) {
  if (!j.contains(key)) return dflt;
  const json& v = j[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "yes" : "no";
  return v.dump();
}

void Table::print() const {
  std::vector<size_t> w;
  for (const auto& r : rows_)
    for (size_t i = 0; i < r.size(); ++i) {
      if (w.size() <= i) w.push_back(0);
      w[i] = std::max(w[i], r[i].size());
    }
  for (const auto& r : rows_) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) line += i + 1 < r.size() ? r[i] + std::string(w[i] - r[i].size() + 2, ' ') : r[i];
    std::cout << line << "\n";
  }
}

int runtime_error(const std::string& msg) {
  std::cerr << "anychain: " << msg << "\n";
  return kRuntime;
}

json call(const Global& g, const std::string& cmd, const json& args) {
  auto c = control::Client::connect(g.socket, std::chrono::seconds(g.timeout_s));
  if (!c) {
    if (control::daemon_absent(c.error())) {
      std::cerr << "anychain: anychaind is not running (nothing listens on " << g.socket
                << "); start it with 'systemctl start anychaind'\n";
      throw ExitError{kNoDaemon};
    }
    throw ExitError{runtime_error(c.error().str())};
  }
  auto r = c->call(cmd, args);
  if (!r) throw ExitError{runtime_error(r.error().message)};
  return *r;
}

}  // namespace anychain::cli
