#include "daemon/ftc_forwarder.h"

#include <bpf/bpf.h>
#include <linux/if_ether.h>
#include <linux/bpf.h>
#include <net/if.h>

#include <chrono>

#include "common/log.h"
#include "daemon/ftc_egress.h"
#include "ftc/egress_port.h"
#include "ftc/wire.h"

namespace anychain::daemon {

namespace {
Result<std::vector<uint8_t>> encode_logs(const std::vector<ftc::Log>& logs) {
  std::vector<uint8_t> out;
  for (const auto& l : logs) {
    auto t = ftc::encode_log_tlv(l);
    if (!t) return unexpected(t.error());
    out.insert(out.end(), t->begin(), t->end());
  }
  return out;
}
}  // namespace

Result<std::vector<uint8_t>> propagating_frame(const ftc::Flow& flow, uint8_t f, uint32_t ingress,
                                               const std::vector<ftc::Log>& logs, const Mac& mac) {
  ftc::Nsh n;
  n.spi = flow.spi;
  n.si = 255;
  n.other.push_back(ftc::flow_hash_tlv(flow.hash));
  n.ctrl = ftc::Ctrl{AC_FTC_CTRL_PROPAGATING, f, ingress};
  n.logs = logs;
  auto nsh = ftc::encode_nsh(n);
  if (!nsh) return unexpected(nsh.error());
  std::vector<uint8_t> frame(sizeof(ethhdr));
  auto* eth = reinterpret_cast<ethhdr*>(frame.data());
  std::copy(mac.begin(), mac.end(), eth->h_dest);
  std::copy(mac.begin(), mac.end(), eth->h_source);
  eth->h_proto = htons(AC_ETH_P_NSH);
  frame.insert(frame.end(), nsh->begin(), nsh->end());
  return frame;
}

void FtcForwarder::attach(FtcChannel& ch) {
  ch.on(ftc::chan::Type::Feedback,
        [this](uint32_t, const ftc::chan::Body& m) { feedback(std::get<ftc::Feedback>(m)); });
  ch.on(ftc::chan::Type::Released, [this](uint32_t, const ftc::chan::Body& m) {
    const auto& r = std::get<ftc::chan::Released>(m);
    released(r.flow, r.cv);
  });
}

void FtcForwarder::write(const ftc::Flow& flow) {
  auto tlvs = encode_logs(fw_.piggyback(flow));
  Result<void> r = tlvs ? dp_.set_ftc_pending(flow.spi, flow.hash, *tlvs) : unexpected(tlvs.error());
  if (r) {
    ++st_.pending_writes;
    return;
  }
  ++st_.pending_write_failed;
  if (last_error_ != r.error().str()) log::warn("ftc forwarder: {}", r.error().str());
  last_error_ = r.error().str();
}

void FtcForwarder::feedback(const ftc::Feedback& fb) {
  ++st_.feedback;
  // the control TLV names the classifier's node: feedback for another ingress is not ours
  if (fb.ingress != self_) {
    ++st_.foreign_ingress;
    return;
  }
  fw_.feedback(fb, ftc_now_ns());
  write(fb.flow);
}

void FtcForwarder::released(const ftc::Flow& flow, const ftc::CommitVector& cv) {
  ++st_.released;
  fw_.released(flow, cv);
  write(flow);
}

void FtcForwarder::on_timer(const std::string& ifname) {
  auto due = fw_.due(ftc_now_ns());
  if (due.empty()) return;
  unsigned ifindex = ifname.empty() ? 0 : if_nametoindex(ifname.c_str());
  auto mac = ifindex ? dataplane::interface_mac(ifname) : Result<Mac>(fail("no interface"));
  for (const auto& p : due) {
    write(p.flow);  // what the next data packet carries (the pending logs may have changed)
    for (const auto& logs : p.packets) {
      if (!mac) {
        ++st_.propagate_failed;
        last_error_ = "propagating packet: no interface of the fast path to inject it on";
        continue;
      }
      auto frame = propagating_frame(p.flow, p.f, self_, logs, *mac);
      if (!frame) {
        ++st_.propagate_failed;
        last_error_ = frame.error().str();
        continue;
      }
      if (auto r = ftc::run_live_frame(dp_.prog_fd(), ifindex, *frame); !r) {
        ++st_.propagate_failed;
        last_error_ = "propagating packet: " + r.error().str();
        continue;
      }
      ++st_.propagating;
    }
  }
}

nlohmann::json FtcForwarder::status() const {
  nlohmann::json j = {{"partitions", fw_.flows()},         {"coalesced", fw_.coalesced()},
                      {"feedback", st_.feedback},          {"released", st_.released},
                      {"foreign_ingress", st_.foreign_ingress}, {"pending_writes", st_.pending_writes},
                      {"pending_write_failed", st_.pending_write_failed}, {"propagating", st_.propagating},
                      {"propagate_failed", st_.propagate_failed}};
  if (!last_error_.empty()) j["last_error"] = last_error_;
  return j;
}

}  // namespace anychain::daemon
