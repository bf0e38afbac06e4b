#include "e2e_live.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_ether.h>
#include <netinet/in.h>

#include <cstring>
#include <fstream>
#include <stdexcept>

#include "common/netns.h"
#include "e2e.skel.h"
#include "e2e_maps.h"

namespace anychain::bench {

LiveFrames::LiveFrames(const Topo& t, int cpu, size_t frame_bytes, uint32_t flows, uint16_t base_port, uint32_t pps)
    : gen_(t.gen_if().ns, false) {
  if (frame_bytes < 64 || frame_bytes > 1514) throw std::runtime_error("live frames: 64..1514 bytes");
  if (flows < 1 || base_port + flows - 1 > 65535)
    throw std::runtime_error("live frames: 1 flow or more, source ports up to 65535");
  test::L4 l4{IPPROTO_UDP, base_port, 9, test::Bytes(frame_bytes - E2E_HDR_LEN, 0)};
  frame_ = test::eth(t.router_in().mac, t.gen_if().mac, ETH_P_IP, {test::ipv4("198.18.0.2", "198.19.0.2", l4)});
  frame_[40] = frame_[41] = 0;  // no UDP checksum: the generator writes the source port
  e2e_gen_cfg c{};
  std::memcpy(c.hdr, frame_.data(), E2E_HDR_LEN);
  c.base_port = base_port;
  c.flows = flows;
  c.ifindex = static_cast<uint32_t>(t.gen_if().ifindex);
  c.ns_per_pkt = pps ? 1'000'000'000ULL / pps : 0;
  const uint32_t zero = 0;
  if (bpf_map_update_elem(bpf_map__fd(gen_.skel()->maps.e2e_gen_cfg), &zero, &c, BPF_ANY))
    throw std::runtime_error("write the generator's configuration");
  // a call's set-up and tear-down take milliseconds: paced, most frames are dropped at once and
  // a call of 2^22 of them lasts about 0.1 s
  const int repeat = pps ? 1 << 22 : 1 << 16;
  thread_ = std::thread([this, cpu, repeat, ns = t.gen_if().ns] {
    try {
      pin_thread(0, cpu);
      test::InNetns in(ns);
      LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame_.data(),
                  .data_size_in = static_cast<uint32_t>(frame_.size()), .repeat = repeat,
                  .flags = BPF_F_TEST_XDP_LIVE_FRAMES, .batch_size = 64);
      const int fd = bpf_program__fd(gen_.skel()->progs.e2e_gen);
      while (!stop_)
        if (int err = bpf_prog_test_run_opts(fd, &o)) throw std::runtime_error(std::strerror(-err));
    } catch (const std::exception& e) {
      err_ = std::string("generator: ") + e.what();
    }
  });
}

LiveFrames::~LiveFrames() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void LiveFrames::stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  if (!err_.empty()) throw std::runtime_error(err_);
}

uint64_t cpu_ns(const std::vector<int>& tids) {
  uint64_t sum = 0;
  for (int tid : tids) {
    if (tid <= 0) continue;
    std::ifstream f("/proc/" + std::to_string(tid) + "/schedstat");
    uint64_t ns = 0;
    if (!(f >> ns)) throw std::runtime_error("read /proc/" + std::to_string(tid) + "/schedstat");
    sum += ns;
  }
  return sum;
}

}  // namespace anychain::bench
