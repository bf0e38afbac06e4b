#include "nf/resync.h"

#include <bpf/bpf.h>
#include <fmt/format.h>
#include <linux/if_ether.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "anychain/maps.h"

namespace anychain::nf {

namespace {

constexpr uint8_t kMagic[4] = {'A', 'C', 'R', 'S'};

void put32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}
uint32_t get32(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3];
}

Result<sockaddr_un> unix_addr(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof a.sun_path)
    return fail(fmt::format("re-request socket path '{}': empty or longer than {} bytes", path, sizeof a.sun_path - 1),
                ENAMETOOLONG);
  std::memcpy(a.sun_path, path.data(), path.size());
  return a;
}

}  // namespace

std::array<uint8_t, kResyncAskSize> encode_resync_ask(const ResyncAsk& a) {
  std::array<uint8_t, kResyncAskSize> b{};
  std::memcpy(b.data(), kMagic, 4);
  b[4] = kResyncAskVersion;
  b[5] = 0;
  b[6] = static_cast<uint8_t>(a.from >> 8);
  b[7] = static_cast<uint8_t>(a.from);
  put32(&b[8], a.spi);
  put32(&b[12], a.hash);
  put32(&b[16], a.mbox);
  put32(&b[20], a.have);
  return b;
}

Result<ResyncAsk> decode_resync_ask(std::span<const uint8_t> b) {
  if (b.size() != kResyncAskSize)
    return fail(fmt::format("re-request of {} bytes (a request is {})", b.size(), kResyncAskSize), EBADMSG);
  if (std::memcmp(b.data(), kMagic, 4) != 0) return fail("re-request without its magic 'ACRS'", EBADMSG);
  if (b[4] != kResyncAskVersion) return fail(fmt::format("re-request of version {} (known: 1)", b[4]), EBADMSG);
  if (b[5] != 0) return fail("re-request with a non-zero reserved byte", EBADMSG);
  ResyncAsk a;
  a.from = static_cast<uint16_t>(b[6] << 8 | b[7]);
  a.spi = get32(&b[8]);
  a.hash = get32(&b[12]);
  a.mbox = get32(&b[16]);
  a.have = get32(&b[20]);
  const uint32_t id = AC_FTC_MBOX_ID(a.mbox);
  if (a.from == 0 || a.from >= AC_MAX_INSTANCES || id == 0 || id >= AC_MAX_INSTANCES || id == a.from)
    return fail(fmt::format("re-request by instance {} for middlebox {}: ids must be 1..{} and differ", a.from, id,
                            AC_MAX_INSTANCES - 1),
                EBADMSG);
  if (a.spi > 0xffffff) return fail(fmt::format("re-request for SPI {} (24 bits)", a.spi), EBADMSG);
  return a;
}

std::string resync_socket_path(const std::string& run_dir) { return run_dir + "/ftc/resync.sock"; }

std::optional<Gap> first_gap(int replica_fd, uint32_t own_id, std::span<const uint8_t> frame) {
  if (frame.size() < ETH_HLEN + AC_NSH_BASE_LEN) return std::nullopt;
  const size_t nsh = (frame[ETH_HLEN + 1] & 0x3f) * 4u;
  if (nsh < AC_NSH_BASE_LEN || ETH_HLEN + nsh > frame.size()) return std::nullopt;
  uint8_t win[AC_FTC_WIN] = {};
  ac_ftc_view v{};
  std::memcpy(win, frame.data() + ETH_HLEN, nsh);
  if (ac_ftc_walk(win, static_cast<uint32_t>(nsh), &v) != AC_FTC_OK || !v.has_hash) return std::nullopt;
  const uint32_t spi_si = ac_ftc_rd32(win, 4);
  for (uint32_t k = 0; k < v.nlogs && k < AC_FTC_MAX_LOGS; ++k) {
    const uint32_t off = v.log[k];
    const uint32_t mbox = ac_ftc_rd32(win, AC_FTC_LOG_MBOX_AT(off)), seq = ac_ftc_rd32(win, AC_FTC_LOG_SEQ_AT(off));
    const uint32_t flags = win[AC_FTC_LOG_FLAGS_AT(off)], count = win[AC_FTC_LOG_COUNT_AT(off)];
    if (AC_FTC_MBOX_ID(mbox) == own_id) return std::nullopt;  // dropped on the re-run, counted there
    Gap g;
    g.key = ac_st_rkey{AC_FTC_MBOX_ID(mbox), (spi_si & 0xffffff00u) | AC_FTC_MBOX_SI(mbox), v.hash};
    g.mbox = mbox;
    ac_st_rec rec{};
    int have = 0;
    if (bpf_map_lookup_elem_flags(replica_fd, &g.key, &rec, BPF_F_LOCK) == 0) have = rec.flags & AC_ST_REC_VALID;
    if (ac_ftc_order(have, rec.inc, rec.seq, AC_FTC_MBOX_INC(mbox), seq, count, flags & AC_FTC_LOG_STUB) == AC_FTC_GAP) {
      g.have = have ? rec.seq : 0;
      return g;
    }
  }
  return std::nullopt;
}

ResyncAsker::ResyncAsker(Options o) : opt_(std::move(o)) {
  tokens_ = std::max(8.0, opt_.per_second / 10.0);
}

ResyncAsker::Outcome ResyncAsker::ask(const ResyncAsk& a, Clock::time_point now) {
  const auto key = std::make_tuple(AC_FTC_MBOX_ID(a.mbox), (a.spi << 8) | AC_FTC_MBOX_SI(a.mbox), a.hash);
  if (auto it = asked_.find(key); it != asked_.end() && now - it->second < opt_.retry) return Outcome::Waiting;
  const double burst = std::max(8.0, opt_.per_second / 10.0);
  if (refilled_ != Clock::time_point{})
    tokens_ = std::min(burst, tokens_ + std::chrono::duration<double>(now - refilled_).count() * opt_.per_second);
  refilled_ = now;
  if (tokens_ < 1) return Outcome::Limited;
  tokens_ -= 1;
  if (asked_.size() >= 4096) std::erase_if(asked_, [&](const auto& kv) { return now - kv.second >= opt_.retry; });
  asked_[key] = now;
  if (!fd_) {
    fd_.reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd_) {
      last_error_ = fmt::format("socket: {}", std::strerror(errno));
      return Outcome::Unsent;
    }
  }
  auto addr = unix_addr(opt_.path);
  if (!addr) {
    last_error_ = addr.error().str();
    return Outcome::Unsent;
  }
  const auto b = encode_resync_ask(a);
  if (::sendto(fd_.get(), b.data(), b.size(), 0, reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) !=
      static_cast<ssize_t>(b.size())) {
    last_error_ = fmt::format("{}: {}", opt_.path, std::strerror(errno));  // no agent (yet), or its queue is full
    return Outcome::Unsent;
  }
  return Outcome::Asked;
}

Result<std::unique_ptr<ResyncListener>> ResyncListener::open(const std::string& path) {
  auto addr = unix_addr(path);
  if (!addr) return unexpected(addr.error());
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  std::unique_ptr<ResyncListener> l(new ResyncListener);
  l->fd_.reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!l->fd_) return fail_errno("re-request socket");
  struct stat sb{};
  if (::lstat(path.c_str(), &sb) == 0) {  // a previous agent's: replaced (never anything else)
    if (!S_ISSOCK(sb.st_mode)) return fail(fmt::format("{} exists and is not a socket", path), EEXIST);
    ::unlink(path.c_str());
  }
  if (::bind(l->fd_.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) != 0)
    return fail_errno(fmt::format("bind {}", path));
  ::chmod(path.c_str(), 0600);  // the NFs run as root, like the agent
  int big = 1 << 20;
  (void)::setsockopt(l->fd_.get(), SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  l->path_ = path;
  return l;
}

ResyncListener::~ResyncListener() {
  if (!path_.empty()) ::unlink(path_.c_str());
}

void ResyncListener::receive(const std::function<void(const ResyncAsk&)>& fn) {
  for (int i = 0; i < 1024; ++i) {
    uint8_t b[64];
    const ssize_t n = ::recv(fd_.get(), b, sizeof b, MSG_TRUNC);
    if (n < 0) return;  // EAGAIN: nothing more
    ++received;
    auto a = decode_resync_ask(std::span<const uint8_t>(b, std::min<size_t>(static_cast<size_t>(n), sizeof b)));
    if (!a) {
      ++malformed;
      last_error = a.error().str();
      continue;
    }
    fn(*a);
  }
}

}  // namespace anychain::nf
