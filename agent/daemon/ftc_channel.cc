#include "daemon/ftc_channel.h"

#include <arpa/inet.h>

#include <fstream>
#include <sstream>

#include "common/log.h"

namespace anychain::daemon {

bool FtcChannelSpec::operator==(const FtcChannelSpec& o) const {
  auto same_keys = [](const std::vector<state::KeySpec>& a, const std::vector<state::KeySpec>& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
      if (a[i].id != b[i].id || a[i].secret != b[i].secret) return false;
    return true;
  };
  return self == o.self && port == o.port && interval == o.interval && misses == o.misses && key_file == o.key_file &&
         same_keys(keys, o.keys) && send_key == o.send_key;
}

Result<std::pair<std::vector<state::KeySpec>, uint8_t>> load_ftc_keys(const std::string& path) {
  std::ifstream in(path);
  if (!in) return fail(fmt::format("ftc: key_file {}", path), errno);
  std::vector<state::KeySpec> keys;
  std::string line;
  for (int no = 1; std::getline(in, line); ++no) {
    if (auto h = line.find('#'); h != std::string::npos) line.erase(h);
    std::istringstream ls(line);
    std::vector<std::string> words;
    for (std::string w; ls >> w;) words.push_back(w);
    if (words.empty()) continue;
    if (words.size() > 2) return fail(fmt::format("{}:{}: expected 'ID HEX' or 'HEX'", path, no));
    unsigned id = 1;
    if (words.size() == 2) {
      char* end = nullptr;
      unsigned long v = std::strtoul(words[0].c_str(), &end, 10);
      if (*end || v < 1 || v > 255) return fail(fmt::format("{}:{}: key id '{}' is not 1..255", path, no, words[0]));
      id = static_cast<unsigned>(v);
    }
    auto secret = state::parse_hex_key(words.back());
    if (!secret) return fail(fmt::format("{}:{}: {}", path, no, secret.error().str()));
    keys.push_back({static_cast<uint8_t>(id), std::move(*secret)});
  }
  if (keys.empty()) return fail(fmt::format("{}: no key", path));
  uint8_t send = keys.front().id;
  return std::pair{std::move(keys), send};
}

Result<std::shared_ptr<const state::Keyring>> FtcChannel::keyring(const FtcChannelSpec& spec) {
  if (!spec.key_file.empty()) {
    auto k = load_ftc_keys(spec.key_file);
    if (!k) return unexpected(k.error());
    auto r = state::Keyring::make(k->first, k->second);
    if (!r) return fail(fmt::format("ftc: key_file {}: {}", spec.key_file, r.error().str()));
    return *r;
  }
  if (spec.keys.empty())
    return fail("ftc: no key for the FTC channel: set ftc.key_file or state.keys (the channel is never unauthenticated)");
  auto r = state::Keyring::make(spec.keys, spec.send_key);
  if (!r) return fail(fmt::format("ftc: the state keys: {}", r.error().str()));
  return *r;
}

Result<void> FtcChannel::open_channel() {
  detected_.clear();  // a new channel knows nothing of the old one's verdicts
  auto keys = keyring(spec_);
  if (!keys) return unexpected(keys.error());
  ftc::ChannelOptions o;
  o.self = spec_.self;
  o.port = spec_.port;
  o.interval = spec_.interval;
  o.misses = spec_.misses;
  auto ch = ftc::Channel::open(o, *keys);
  if (!ch) return unexpected(ch.error());
  ch_ = std::move(*ch);
  for (size_t t = 0; t < handlers_.size(); ++t)
    if (handlers_[t]) ch_->on(static_cast<ftc::chan::Type>(t), handlers_[t]);
  detector_seen_ = 0;
  ch_->on_peer = [this](uint32_t node, bool up) {
    log::info("ftc channel: peer {} {}", ftc::node_str(node), up ? "up" : "down");
    bool changed = false;
    if (up) {
      changed = detected_.erase(node) > 0;
    } else if (ch_ && ch_->stats().detector_down != detector_seen_) {  // the detector closed it
      detector_seen_ = ch_->stats().detector_down;
      changed = detected_.insert(node).second;
      log::warn("ftc channel: peer {} failed: no heartbeat for {} intervals of {} ms", ftc::node_str(node), spec_.misses,
                spec_.interval.count());
    }
    if (changed && on_detected) on_detected();
    if (on_peer) on_peer(node, up);
  };
  log::info("ftc channel: listening on {}:{} (heartbeat {} ms, down after {} missed)", ftc::node_str(spec_.self), ch_->local_port(),
            spec_.interval.count(), spec_.misses);
  return {};
}

Result<std::unique_ptr<FtcChannel>> FtcChannel::open(const FtcChannelSpec& spec) {
  std::unique_ptr<FtcChannel> c(new FtcChannel());
  c->spec_ = spec;
  if (auto r = c->open_channel(); !r) return unexpected(r.error());
  return c;
}

Result<void> FtcChannel::reconfigure(const FtcChannelSpec& spec) {
  if (spec == spec_) return {};
  bool reopen = spec.self != spec_.self || spec.port != spec_.port || spec.interval != spec_.interval ||
                spec.misses != spec_.misses;
  if (!reopen) {
    auto keys = keyring(spec);
    if (!keys) return unexpected(keys.error());
    ch_->set_keys(*keys);
    spec_ = spec;
    log::info("ftc channel: new keys");
    return {};
  }
  FtcChannelSpec old = spec_;
  auto prev = std::move(ch_);
  prev.reset();  // frees the port before binding it again
  spec_ = spec;
  if (auto r = open_channel(); !r) {
    spec_ = old;
    if (auto back = open_channel(); !back) log::error("ftc channel: cannot reopen: {}", back.error().str());
    return unexpected(r.error());
  }
  return {};
}

void FtcChannel::on(ftc::chan::Type t, ftc::Channel::Handler h) {
  auto i = static_cast<size_t>(t);
  if (i >= handlers_.size()) return;
  handlers_[i] = h;
  ch_->on(t, std::move(h));
}

Result<void> FtcChannel::send(uint32_t node, const ftc::chan::Body& msg) {
  if (node == spec_.self) {
    ++local_;
    if (auto& h = handlers_[static_cast<size_t>(ftc::chan::type_of(msg))]) h(node, msg);
    return {};
  }
  auto r = ch_->send(node, msg);
  if (!r) {
    ++send_failed_;
    last_send_error_ = r.error().str();
  }
  return r;
}

nlohmann::json FtcChannel::status() const {
  const auto& s = ch_->stats();
  nlohmann::json sent = nlohmann::json::object(), received = nlohmann::json::object(),
                 rejected = nlohmann::json::object();
  for (size_t t = 1; t < ftc::chan::kTypeSlots; ++t) {
    const char* name = ftc::chan::to_string(static_cast<ftc::chan::Type>(t));
    sent[name] = s.sent[t];
    received[name] = s.received[t];
  }
  for (size_t r = 0; r < static_cast<size_t>(ftc::chan::Reject::Count); ++r)
    rejected[ftc::chan::to_string(static_cast<ftc::chan::Reject>(r))] = s.rejected[r];
  nlohmann::json peers = nlohmann::json::array();
  for (const auto& p : ch_->peers()) {
    nlohmann::json j = {{"node", ftc::node_str(p.node)}, {"up", p.up},           {"wanted", p.wanted},
                        {"connections", p.connections}, {"queued", p.queued}, {"sent", p.sent},
                        {"received", p.received}, {"downs", p.downs}};
    if (p.last_heard) j["last_heard_ms"] = p.last_heard->count();
    if (!p.last_error.empty()) j["last_error"] = p.last_error;
    peers.push_back(std::move(j));
  }
  return {{"node", ftc::node_str(spec_.self)},
          {"port", ch_->local_port()},
          {"detect", {{"interval_ms", spec_.interval.count()}, {"misses", spec_.misses}, {"failed", [&] {
             nlohmann::json f = nlohmann::json::array();
             for (auto n : detected_) f.push_back(ftc::node_str(n));
             return f;
           }()}}},
          {"keys", spec_.key_file.empty() ? "state.keys" : spec_.key_file},
          {"peers", peers},
          {"sent", sent},
          {"received", received},
          {"rejected", rejected},
          {"connections",
           {{"accepted", s.accepted}, {"opened", s.connects}, {"connect_failed", s.connect_failed},
            {"closed", s.closed}, {"detector_down", s.detector_down}}},
          {"drops", {{"queue_full", s.queue_full}, {"output_full", s.out_full}, {"encode_failed", s.encode_failed}}},
          {"local", local_},
          {"send_failed", send_failed_}};
}

}  // namespace anychain::daemon
