#include "common/netns_fastpath.h"

#include <stdexcept>

#include "common/netns.h"

namespace anychain::test {

NetnsFastPath::NetnsFastPath(const std::string& ns, const std::string& ifname, uint32_t addr, uint16_t state_port,
                             const std::string& pin_prefix)
    : netns_(ns), ifname_(ifname), pin_root_(pin_prefix + ns) {
  InNetns in(ns);
  auto d = dataplane::Dataplane::open({.pin_root = pin_root_});
  if (!d) throw std::runtime_error("open the fast path: " + d.error().str());
  dp_ = std::make_unique<dataplane::Dataplane>(std::move(*d));
  dataplane::Config c;
  c.local_endpoint.s_addr = addr;
  c.state_port = state_port;
  if (auto r = dp_->set_config(c); !r) throw std::runtime_error("config: " + r.error().str());
  if (auto r = dp_->attach(ifname, XdpMode::Native); !r) throw std::runtime_error("attach to " + ifname + ": " + r.error().str());
}

NetnsFastPath::~NetnsFastPath() {
  InNetns in(netns_);
  (void)dataplane::Dataplane::detach(ifname_);
  dp_.reset();
  (void)dataplane::Dataplane::unpin_all(pin_root_);
}

uint64_t NetnsFastPath::stat(ac_verdict_reason k) const {
  auto st = dp_->stats();
  return st ? (*st)[k].packets : 0;
}

}  // namespace anychain::test
