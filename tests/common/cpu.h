// Running the calling thread on one CPU: the fast path's per-CPU maps (flow cache, next-hop
// cache) are per CPU, and XDP on a veth runs on the CPU of the process that sends into it.
#pragma once

#include <sched.h>

#include <stdexcept>

namespace anychain::test {

// Runs the calling thread on one CPU for the scope (placement tests move between CPUs on purpose).
class OnCpu {
 public:
  explicit OnCpu(int cpu) {
    sched_getaffinity(0, sizeof old_, &old_);
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    if (sched_setaffinity(0, sizeof one, &one) != 0) throw std::runtime_error("sched_setaffinity");
  }
  OnCpu(const OnCpu&) = delete;
  OnCpu& operator=(const OnCpu&) = delete;
  ~OnCpu() { sched_setaffinity(0, sizeof old_, &old_); }

 private:
  cpu_set_t old_;
};

}  // namespace anychain::test
