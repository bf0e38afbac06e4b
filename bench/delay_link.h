// An in-process link for the "delay injected into the replication path" benchmarks (issue 14;
// anychain-bench-state --bench delay on a test program, anychain-bench-nf-state --delay on the
// real NFs): two replicators' transports over one queue that holds every datagram for
// `delay_us` (this kernel has no netem). Both ends must be polled from one thread.
#pragma once

#include <pthread.h>
#include <sched.h>

#include <chrono>
#include <deque>
#include <thread>
#include <vector>

#include "state/replicator.h"
#include "state/transport.h"

namespace anychain::bench {

struct DelayNet {
  uint64_t delay_us = 0;
  struct Item {
    std::chrono::steady_clock::time_point due;
    state::Endpoint from, to;
    state::Bytes data;
  };
  std::deque<Item> q;
};

class DelayTransport final : public state::Transport {
 public:
  DelayTransport(DelayNet& n, state::Endpoint me) : n_(n), me_(me) {}
  Result<void> send(const state::Endpoint& to, state::ByteView d) override {
    n_.q.push_back({std::chrono::steady_clock::now() + std::chrono::microseconds(n_.delay_us), me_, to,
                    state::Bytes(d.begin(), d.end())});
    return {};
  }
  size_t receive(const state::RecvFn& fn, size_t max) override {
    size_t got = 0;
    auto now = std::chrono::steady_clock::now();
    for (auto it = n_.q.begin(); it != n_.q.end() && got < max;) {
      if (it->due > now) break;  // one delay for all: the queue is in due order
      if (it->to == me_) {
        DelayNet::Item i = std::move(*it);
        it = n_.q.erase(it);
        fn(i.data, i.from);
        ++got;
      } else {
        ++it;
      }
    }
    return got;
  }
  std::vector<int> fds() const override { return {}; }
  state::TransportStatus status() const override { return {}; }

 private:
  DelayNet& n_;
  state::Endpoint me_;
};

// After the run: poll both ends (every poll scans the stores for changes) until each has had all
// its changes acknowledged by the other, after at least 20 ms of polls (20 scans: the last
// changes have been stamped). Keepalives and acknowledgements may still be on the link (a link
// of 100 ms always holds some); they change no cell. False after `timeout`.
inline bool settle(state::Replicator& a, state::Replicator& b,
                   std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  const auto t0 = std::chrono::steady_clock::now();
  for (auto t = t0; t - t0 < timeout; t = std::chrono::steady_clock::now()) {
    a.poll();
    b.poll();
    if (t - t0 >= std::chrono::milliseconds(20) && a.peers().at(0).acked == a.stats().version &&
        b.peers().at(0).acked == b.stats().version)
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

// The calling thread on one CPU only.
inline void pin_to(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  (void)pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

}  // namespace anychain::bench
