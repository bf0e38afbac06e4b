// Test sandbox: run the process in fresh network + mount namespaces with a private bpffs,
// so fixtures can create interfaces, routes and pins without touching the host.
#pragma once

#include <string>

namespace anychain::test {

// Unshare net+mount namespaces, make mounts private, mount bpffs on /sys/fs/bpf and bring lo up.
// Returns an empty string on success, else what failed.
std::string enter_sandbox();

// Run a shell command; returns its exit status (-1 if it could not run).
int sh(const std::string& cmd);
// Run a shell command and return its stdout (stderr passes through).
std::string sh_out(const std::string& cmd);

}  // namespace anychain::test
