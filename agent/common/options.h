// Command-line parsing shared by anychaind and the lab tools (Boost.Program_options).
#pragma once

#include <boost/program_options.hpp>
#include <iostream>
#include <optional>
#include <string_view>

namespace anychain {

// Parse argv with desc into vm. Returns the exit code to leave with (0 after --help, 2 on a
// usage error, with the message and the usage on stderr), or nothing to go on.
inline std::optional<int> parse_command_line(int argc, char** argv,
                                             const boost::program_options::options_description& desc,
                                             boost::program_options::variables_map& vm, std::string_view tool) {
  namespace po = boost::program_options;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    if (vm.count("help")) {
      std::cout << desc << "\n";
      return 0;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << tool << ": " << e.what() << "\n" << desc << "\n";
    return 2;
  }
  return std::nullopt;
}

}  // namespace anychain
