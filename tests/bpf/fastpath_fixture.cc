#include "fastpath_fixture.h"

#include <cstdlib>

namespace anychain::test {

std::vector<dp::PolicyRule> fixture_rules() {
  std::vector<dp::PolicyRule> rules(6);
  rules[0].dst = *dp::parse_prefix("203.0.113.128/25");  // TCP/80 there -> chain 200 (proxy)
  rules[0].proto = IPPROTO_TCP;
  rules[0].dport_lo = rules[0].dport_hi = 80;
  rules[0].spi = 200;
  rules[1].dst = *dp::parse_prefix("203.0.113.0/24");
  rules[1].spi = 100;
  rules[2].dst = *dp::parse_prefix("2001:db8:99::/64");
  rules[2].src = *dp::parse_prefix("any6");
  rules[2].spi = 100;
  rules[3].dst = *dp::parse_prefix("198.51.100.0/24");  // MD type 2
  rules[3].spi = 100;
  rules[3].md2 = true;
  rules[4].dst = *dp::parse_prefix("198.18.0.0/24");    // unresolved next hop, symmetric hash
  rules[4].spi = 300;
  rules[4].symmetric = true;
  rules[5].dst = *dp::parse_prefix("2001:db8:98::/64");  // MD type 2, IPv6
  rules[5].src = *dp::parse_prefix("any6");
  rules[5].spi = 100;
  rules[5].md2 = true;
  return rules;
}

void FastPathEnv::SetUp() {
  if (auto err = enter_sandbox(); !err.empty()) throw std::runtime_error("sandbox: " + err);
  build_fixture_node();
  auto d = dp::Dataplane::open();
  if (!d) throw std::runtime_error("open dataplane: " + d.error().str());
  dp_ = std::make_unique<dp::Dataplane>(std::move(*d));
  program_fixture_node(*dp_);
  if (auto r = dp_->set_policies(fixture_rules()); !r) throw std::runtime_error("policies: " + r.error().str());
}

void FastPathEnv::TearDown() { dp_.reset(); }

RunResult run_prog(int prog_fd, const std::string& ifname, const Bytes& frame) {
  RunResult r;
  r.out.resize(frame.size() + 512);
  xdp_md ctx{};
  ctx.ingress_ifindex = static_cast<uint32_t>(FastPathEnv::ifindex(ifname));
  ctx.data_end = static_cast<uint32_t>(frame.size());
  LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame.data(), .data_out = r.out.data(),
              .data_size_in = static_cast<uint32_t>(frame.size()),
              .data_size_out = static_cast<uint32_t>(r.out.size()), .ctx_in = &ctx, .ctx_size_in = sizeof(ctx),
              .repeat = 1);
  int err = bpf_prog_test_run_opts(prog_fd, &o);
  if (err) throw std::runtime_error("bpf_prog_test_run_opts failed: " + std::to_string(err));
  r.verdict = static_cast<int>(o.retval);
  r.out.resize(o.data_size_out);
  return r;
}

Counters::Counters() {
  auto s = FastPathEnv::dataplane().stats();
  if (!s) throw std::runtime_error(s.error().str());
  before_ = *s;
}

uint64_t Counters::delta(uint32_t reason) const {
  auto s = FastPathEnv::dataplane().stats();
  if (!s) throw std::runtime_error(s.error().str());
  return (*s)[reason].packets - before_[reason].packets;
}

uint64_t Counters::bytes(uint32_t reason) const {
  auto s = FastPathEnv::dataplane().stats();
  if (!s) throw std::runtime_error(s.error().str());
  return (*s)[reason].bytes - before_[reason].bytes;
}

}  // namespace anychain::test
