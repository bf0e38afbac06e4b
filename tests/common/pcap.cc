#include "pcap.h"

#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>

namespace anychain::test {

namespace {

constexpr uint32_t kMagicUsec = 0xa1b2c3d4;
constexpr uint32_t kMagicNsec = 0xa1b23c4d;
constexpr uint32_t kSnapLen = 262144;

struct FileCloser {
  void operator()(FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<FILE, FileCloser>;

void put_le32(Bytes& b, uint32_t v) {
  for (int i = 0; i < 4; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
void put_le16(Bytes& b, uint16_t v) {
  b.push_back(static_cast<uint8_t>(v));
  b.push_back(static_cast<uint8_t>(v >> 8));
}

uint32_t load32(const uint8_t* p, bool swap) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return swap ? __builtin_bswap32(v) : v;
}

}  // namespace

void write_pcap(const std::string& path, const std::vector<Bytes>& frames) {
  Bytes out;
  put_le32(out, kMagicUsec);
  put_le16(out, 2);  // version 2.4
  put_le16(out, 4);
  put_le32(out, 0);  // thiszone
  put_le32(out, 0);  // sigfigs
  put_le32(out, kSnapLen);
  put_le32(out, kLinkTypeEthernet);
  uint32_t sec = 1700000000;
  for (const Bytes& f : frames) {
    put_le32(out, sec++);
    put_le32(out, 0);
    put_le32(out, static_cast<uint32_t>(f.size()));
    put_le32(out, static_cast<uint32_t>(f.size()));
    append(out, f);
  }
  File fp(std::fopen(path.c_str(), "wb"));
  if (!fp) throw std::runtime_error("pcap: cannot create " + path);
  if (std::fwrite(out.data(), 1, out.size(), fp.get()) != out.size() || std::fflush(fp.get()) != 0)
    throw std::runtime_error("pcap: write error on " + path);
}

std::vector<Bytes> read_pcap(const std::string& path) {
  File fp(std::fopen(path.c_str(), "rb"));
  if (!fp) throw std::runtime_error("pcap: cannot open " + path);
  Bytes in;
  uint8_t buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, fp.get())) > 0) in.insert(in.end(), buf, buf + n);
  if (in.size() < 24) throw std::runtime_error("pcap: " + path + " is shorter than a pcap header");
  uint32_t magic = load32(in.data(), false);
  bool swap;
  if (magic == kMagicUsec || magic == kMagicNsec) swap = false;
  else if (magic == __builtin_bswap32(kMagicUsec) || magic == __builtin_bswap32(kMagicNsec)) swap = true;
  else throw std::runtime_error("pcap: " + path + " has no pcap magic");
  uint32_t linktype = load32(in.data() + 20, swap);
  if (linktype != kLinkTypeEthernet)
    throw std::runtime_error("pcap: " + path + " has link type " + std::to_string(linktype) + ", not Ethernet");
  std::vector<Bytes> frames;
  size_t off = 24;
  while (off < in.size()) {
    if (in.size() - off < 16) throw std::runtime_error("pcap: truncated record header in " + path);
    uint32_t incl = load32(in.data() + off + 8, swap);
    uint32_t orig = load32(in.data() + off + 12, swap);
    off += 16;
    if (incl > in.size() - off) throw std::runtime_error("pcap: truncated record in " + path);
    if (incl != orig) throw std::runtime_error("pcap: record cut by the snap length in " + path);
    frames.emplace_back(in.begin() + static_cast<long>(off), in.begin() + static_cast<long>(off + incl));
    off += incl;
  }
  return frames;
}

}  // namespace anychain::test
