// Interop with implementations no one here wrote:
//  1. frames the fast path EMITS (classifier NSH MD1/MD2 over Ethernet, VXLAN-GPE encap of NSH
//     from a VNF; IPv4 and IPv6 inner) are written to a pcap and decoded by tshark and by scapy;
//     every decoded field must equal what the fixture's configuration says it should be.
//  2. frames SCAPY BUILDS (NSH MD1/MD2 over Ethernet, VXLAN-GPE/NSH to our endpoint) are read
//     from its pcap and run through the fast path: verdict, counter and output bytes checked.
// Runs in the fast-path fixture's sandbox (private netns + bpffs); needs tshark and
// /usr/bin/python3 with python3-scapy (scripts/install-deps.sh).
#include <linux/if_ether.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <tuple>

#include <fmt/format.h>

#include "bpf/fastpath_fixture.h"
#include "common/pcap.h"

#ifndef ANYCHAIN_SOURCE_DIR
#error "ANYCHAIN_SOURCE_DIR must point at the source tree (tests/interop scripts)"
#endif
#ifndef ANYCHAIN_PYTHON
#define ANYCHAIN_PYTHON "/usr/bin/python3"
#endif

namespace anychain::test {
namespace {

namespace fs = std::filesystem;
using Fields = std::map<std::string, std::string>;  // canonical key -> decimal number or text

const std::string kScripts = ANYCHAIN_SOURCE_DIR "/tests/interop";

int prog() { return FastPathEnv::dataplane().prog_fd(); }

// ---------- running the other implementations ----------

struct CmdResult {
  int rc = -1;
  std::string out;  // stdout; stderr goes to the test log
};

CmdResult run(const std::string& cmd) {
  CmdResult r;
  FILE* f = popen(cmd.c_str(), "r");
  if (!f) return r;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), f)) > 0) r.out.append(buf.data(), n);
  int st = pclose(f);
  r.rc = st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return r;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> v;
  std::string cur;
  std::istringstream is(s);
  while (std::getline(is, cur, sep)) v.push_back(cur);
  if (!s.empty() && s.back() == sep) v.emplace_back();
  return v;
}

// "0x003f" or "63" -> "63"; anything else is returned unchanged so a comparison shows it.
std::string num(const std::string& s) {
  if (s.empty()) return s;
  char* end = nullptr;
  unsigned long long v = std::strtoull(s.c_str(), &end, 0);
  if (*end != '\0') return s;
  return std::to_string(v);
}

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/anychain-interop-XXXXXX";
    if (!mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    if (!getenv("ANYCHAIN_INTEROP_KEEP")) fs::remove_all(path_);
    else std::fprintf(stderr, "interop files kept in %s\n", path_.c_str());
  }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

const char* const kTsharkFields[] = {
    "eth.type",          "nsh.version",      "nsh.Obit",          "nsh.CBit",         "nsh.ttl",
    "nsh.length",        "nsh.mdtype",       "nsh.nextproto",     "nsh.spi",          "nsh.si",
    "nsh.contextheader", "nsh.metadataclass", "nsh.metadatatype", "nsh.metadataunassignedbit",
    "nsh.metadatalen",   "nsh.metadata",     "vxlan.flags",       "vxlan.ver",        "vxlan.next_proto",
    "vxlan.vni",         "vxlan.reserved_16", "vxlan.reserved8",  "udp.srcport",      "udp.dstport",
    "ip.src",            "ip.dst",           "ipv6.src",          "ipv6.dst",         "ip.checksum.status",
    "_ws.malformed",     "_ws.expert.message"};

// tshark's view of every frame of a pcap, mapped to the canonical keys of scapy_decode.py.
std::vector<Fields> tshark_decode(const std::string& pcap) {
  // UDP 4790 is vxlan_gpe by default in Wireshark 4.0; pinned so a changed default cannot hide it
  std::string cmd = "tshark -n -d udp.port==4790,vxlan_gpe -o ip.check_checksum:TRUE -r '" + pcap +
                    "' -T fields -E separator=/t -E occurrence=a -E aggregator=,";
  for (const char* f : kTsharkFields) cmd += std::string(" -e ") + f;
  cmd += " 2>/dev/null";  // tshark warns about running as root
  CmdResult r = run(cmd);
  if (r.rc != 0)
    throw std::runtime_error(fmt::format("tshark exited {} on {}{}", r.rc, pcap,
                                    r.rc == 127 ? " (not installed? see scripts/install-deps.sh)" : ""));
  std::vector<Fields> frames;
  for (const std::string& line : split(r.out, '\n')) {
    if (line.empty()) continue;
    std::vector<std::string> col = split(line, '\t');
    if (col.size() != std::size(kTsharkFields))
      throw std::runtime_error(fmt::format("tshark printed {} columns, want {}", col.size(), std::size(kTsharkFields)));
    std::map<std::string, std::vector<std::string>> v;
    for (size_t i = 0; i < col.size(); ++i) v[kTsharkFields[i]] = col[i].empty() ? std::vector<std::string>{} : split(col[i], ',');
    auto first = [&](const char* k, size_t i = 0) { return v[k].size() > i ? v[k][i] : std::string(); };
    Fields d;
    d["eth.type"] = num(first("eth.type"));
    if (!v["nsh.version"].empty()) {
      d["nsh.ver"] = num(first("nsh.version"));
      d["nsh.oam"] = num(first("nsh.Obit"));
      d["nsh.u"] = num(first("nsh.CBit"));  // the unassigned bit after O (Wireshark's old name)
      d["nsh.ttl"] = num(first("nsh.ttl"));
      d["nsh.len"] = num(first("nsh.length"));
      d["nsh.md"] = num(first("nsh.mdtype"));  // Wireshark shows the whole byte
      d["nsh.np"] = num(first("nsh.nextproto"));
      d["nsh.spi"] = num(first("nsh.spi"));
      d["nsh.si"] = num(first("nsh.si"));
      if (!v["nsh.contextheader"].empty()) {
        std::string ctx;
        for (const auto& w : v["nsh.contextheader"]) ctx += (ctx.empty() ? "" : ",") + w;
        d["nsh.ctx"] = ctx;
      }
      if (!v["nsh.metadataclass"].empty()) {
        std::string tlvs;
        for (size_t i = 0; i < v["nsh.metadataclass"].size(); ++i)
          tlvs += fmt::format("{}{}:{}:{}:{}:{}", tlvs.empty() ? "" : ",", num(first("nsh.metadataclass", i)),
                         num(first("nsh.metadatatype", i)), num(first("nsh.metadataunassignedbit", i)) == "0" ? 0 : 1,
                         num(first("nsh.metadatalen", i)), first("nsh.metadata", i));
        d["nsh.tlvs"] = tlvs;
      }
    }
    size_t inner_ip = 0;
    if (!v["vxlan.flags"].empty()) {
      d["gpe.flags"] = num(first("vxlan.flags"));
      d["gpe.ver"] = num(first("vxlan.ver"));
      d["gpe.np"] = num(first("vxlan.next_proto"));
      d["gpe.vni"] = num(first("vxlan.vni"));
      d["gpe.reserved"] = num(first("vxlan.reserved_16")) + ":" + num(first("vxlan.reserved8"));
      d["udp.sport"] = first("udp.srcport");
      d["udp.dport"] = first("udp.dstport");
      d["outer.src"] = first("ip.src");
      d["outer.dst"] = first("ip.dst");
      std::string st = first("ip.checksum.status");
      d["outer.csum"] = st == "1" ? "good" : st == "0" ? "bad" : "status " + st;
      inner_ip = 1;
    }
    if (v["ip.src"].size() > inner_ip) {
      d["inner.src"] = first("ip.src", inner_ip);
      d["inner.dst"] = first("ip.dst", inner_ip);
    } else if (!v["ipv6.src"].empty()) {
      d["inner.src"] = first("ipv6.src");
      d["inner.dst"] = first("ipv6.dst");
    }
    if (!v["_ws.malformed"].empty()) d["tshark.malformed"] = col[col.size() - 2];
    if (!v["_ws.expert.message"].empty()) d["tshark.expert"] = col[col.size() - 1];
    frames.push_back(std::move(d));
  }
  return frames;
}

// scapy's view (tests/interop/scapy_decode.py prints "key=value ..." per frame).
std::vector<Fields> scapy_decode(const std::string& pcap) {
  CmdResult r = run(std::string(ANYCHAIN_PYTHON) + " -B '" + kScripts + "/scapy_decode.py' '" + pcap + "'");
  if (r.rc != 0) throw std::runtime_error(fmt::format("scapy_decode.py exited {}: {}", r.rc, r.out));
  std::vector<Fields> frames;
  for (const std::string& line : split(r.out, '\n')) {
    if (line.empty()) continue;
    Fields d;
    for (const std::string& kv : split(line, ' ')) {
      auto eq = kv.find('=');
      if (eq == std::string::npos) throw std::runtime_error("scapy_decode.py printed " + line);
      d[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    frames.push_back(std::move(d));
  }
  return frames;
}

// Keys whose values differ, or that only one side has, each with both values.
std::vector<std::string> mismatches(const Fields& want, const Fields& got) {
  std::vector<std::string> out;
  for (const auto& [k, w] : want) {
    auto it = got.find(k);
    if (it == got.end()) out.push_back(fmt::format("{}: want {}, missing", k, w));
    else if (it->second != w) out.push_back(fmt::format("{}: want {}, got {}", k, w, it->second));
  }
  for (const auto& [k, g] : got)
    if (!want.count(k)) out.push_back(fmt::format("{}: not expected, got {}", k, g));
  return out;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += "\n    " + x;
  return s;
}

// ---------- what the fast path emits ----------

struct Flow {
  std::string src, dst;
  L4 l4;
  bool v6() const { return src.find(':') != std::string::npos; }
  Bytes ip(uint8_t ttl = 64) const { return v6() ? ipv6(src, dst, l4, ttl) : ipv4(src, dst, l4, ttl); }
  uint8_t np() const { return v6() ? AC_NSH_NP_IPV6 : AC_NSH_NP_IPV4; }
  uint16_t ethertype() const { return v6() ? ETH_P_IPV6 : ETH_P_IP; }
  uint32_t hash() const { return flow_hash(src, dst, l4); }
};

std::string hex8(uint32_t v) {
  char b[9];
  std::snprintf(b, sizeof b, "%08x", v);
  return b;
}

struct Emitted {
  std::string name;
  std::string ifname;
  Bytes in;
  Fields want;  // built from the fixture's configuration, never from the emitted bytes
};

Fields want_nsh(const Flow& f, uint8_t si, uint8_t ttl, bool md2, uint32_t hash) {
  Fields d{{"nsh.ver", "0"}, {"nsh.oam", "0"}, {"nsh.u", "0"}, {"nsh.ttl", std::to_string(ttl)},
           {"nsh.md", md2 ? "2" : "1"}, {"nsh.np", std::to_string(f.np())}, {"nsh.spi", "100"},
           {"nsh.si", std::to_string(si)}, {"inner.src", f.src}, {"inner.dst", f.dst}};
  if (md2) {
    d["nsh.len"] = "4";  // base 2 words + TLV header 1 + 4-byte hash 1
    d["nsh.tlvs"] = fmt::format("{}:{}:0:4:{}", AC_MD_CLASS, AC_TLV_FLOW_HASH, hex8(hash));
  } else {
    d["nsh.len"] = "6";
    d["nsh.ctx"] = hex8(hash) + ",00000000,00000000,00000000";
  }
  return d;
}

std::vector<Emitted> emitted_cases() {
  std::vector<Emitted> v;
  const Flow v4{"192.168.1.10", "203.0.113.10", {}}, v6{"2001:db8:5::10", "2001:db8:99::10", {}};
  const Flow v4md2{"192.168.1.10", "198.51.100.5", {}}, v6md2{"2001:db8:5::10", "2001:db8:98::5", {}};
  // classifier (src0) -> SI 255 -> local NSH-aware VNF, NSH over Ethernet
  using Case = std::tuple<const char*, Flow, bool>;  // name, flow, MD type 2
  for (const auto& [name, f, md2] : std::vector<Case>{{"classify_md1_v4", v4, false}, {"classify_md1_v6", v6, false},
                                                      {"classify_md2_v4", v4md2, true}, {"classify_md2_v6", v6md2, true}}) {
    Bytes in = eth(kSrc0, kSrcHost, f.ethertype());
    append(in, f.ip());
    // the classifying node's SFF decrements the initial TTL before its lookup (RFC 8300 sec. 2.2)
    Fields w = want_nsh(f, 255, AC_NSH_DEFAULT_TTL - 1, md2, f.hash());
    w["eth.type"] = std::to_string(AC_ETH_P_NSH);
    v.push_back({name, "src0", in, w});
  }
  // NSH from the VNF (SI 254, TTL 62) -> remote instance over VXLAN-GPE (VNI 7), TTL 61
  for (const auto& [name, f, md2] : std::vector<Case>{{"gpe_md1_v4", v4, false}, {"gpe_md1_v6", v6, false},
                                                      {"gpe_md2_v4", v4, true}, {"gpe_md2_v6", v6, true}}) {
    Nsh n;
    n.spi = 100;
    n.si = 254;
    n.ttl = 62;
    n.next_proto = f.np();
    if (md2) {
      n.md_type = AC_NSH_MD_TYPE2;
      n.tlvs = flow_hash_tlv(f.hash());
    } else {
      n.ctx[0] = f.hash();
    }
    Bytes in = eth(kVnf0Host, kVnf0Peer, AC_ETH_P_NSH);
    append(in, nsh(n));
    append(in, f.ip());
    Fields w = want_nsh(f, 254, 61, md2, f.hash());
    w["eth.type"] = std::to_string(ETH_P_IP);
    w["gpe.flags"] = std::to_string(AC_GPE_FLAG_I | AC_GPE_FLAG_P);
    w["gpe.ver"] = "0";
    w["gpe.np"] = std::to_string(AC_GPE_NP_NSH);
    w["gpe.vni"] = "7";
    w["gpe.reserved"] = "0:0";
    w["udp.dport"] = std::to_string(AC_VXLAN_GPE_PORT);
    w["udp.sport"] = std::to_string(0xc000 | (f.hash() & 0x3fff));
    w["outer.src"] = kLocalEndpoint;
    w["outer.dst"] = kRemoteEndpoint;
    w["outer.csum"] = "good";
    v.push_back({name, "vnf0", in, w});
  }
  return v;
}

// Run every emitted case through the program; all must be redirected.
std::vector<Bytes> emit(const std::vector<Emitted>& cases) {
  std::vector<Bytes> out;
  for (const auto& c : cases) {
    RunResult r = run_prog(prog(), c.ifname, c.in);
    if (r.verdict != XDP_REDIRECT) throw std::runtime_error(fmt::format("{}: verdict {}, want redirect", c.name, r.verdict));
    out.push_back(r.out);
  }
  return out;
}

using Decoder = std::vector<Fields> (*)(const std::string&);
struct NamedDecoder {
  const char* name;
  Decoder decode;
  friend void PrintTo(const NamedDecoder& d, std::ostream* os) { *os << d.name; }
};
const NamedDecoder kDecoders[] = {{"tshark", tshark_decode}, {"scapy", scapy_decode}};

class EmittedDecode : public ::testing::TestWithParam<NamedDecoder> {};

TEST_P(EmittedDecode, EveryFieldAsConfigured) {
  const auto cases = emitted_cases();
  const auto frames = emit(cases);
  TempDir dir;
  const std::string pcap = dir.file("emitted.pcap");
  write_pcap(pcap, frames);
  const auto decoded = GetParam().decode(pcap);
  ASSERT_EQ(decoded.size(), cases.size()) << GetParam().name << " decoded a different number of frames";
  for (size_t i = 0; i < cases.size(); ++i) {
    auto bad = mismatches(cases[i].want, decoded[i]);
    EXPECT_TRUE(bad.empty()) << GetParam().name << " disagrees on " << cases[i].name << ":" << join(bad)
                             << "\nframe:\n" << hex(frames[i]);
  }
}

// The comparison above can fail: corrupt bytes of our output (SPI of one frame, VNI and MD1
// context word 0 of another) and each decoder must report exactly the fields they belong to.
TEST_P(EmittedDecode, CorruptedByteIsCaught) {
  auto cases = emitted_cases();
  auto frames = emit(cases);
  ASSERT_EQ(cases[0].name, "classify_md1_v4");
  ASSERT_EQ(cases[4].name, "gpe_md1_v4");
  frames[0][14 + 6] ^= 0x01;                // SPI low byte: 100 -> 101
  frames[4][14 + 20 + 8 + 6] ^= 0x02;       // VNI low byte: 7 -> 5
  frames[4][14 + 28 + 8 + 8 + 3] ^= 0x01;   // MD1 context word 0, last byte
  TempDir dir;
  const std::string pcap = dir.file("corrupt.pcap");
  write_pcap(pcap, frames);
  const auto decoded = GetParam().decode(pcap);
  ASSERT_EQ(decoded.size(), cases.size());
  auto keys = [](const std::vector<std::string>& bad) {
    std::vector<std::string> k;
    for (const auto& b : bad) k.push_back(b.substr(0, b.find(':')));
    return k;
  };
  EXPECT_EQ(keys(mismatches(cases[0].want, decoded[0])), std::vector<std::string>{"nsh.spi"});
  EXPECT_EQ(keys(mismatches(cases[4].want, decoded[4])), (std::vector<std::string>{"gpe.vni", "nsh.ctx"}));
  for (size_t i : {1u, 2u, 3u, 5u, 6u, 7u}) EXPECT_TRUE(mismatches(cases[i].want, decoded[i]).empty()) << cases[i].name;
}

INSTANTIATE_TEST_SUITE_P(Decoder, EmittedDecode, ::testing::ValuesIn(kDecoders),
                         [](const auto& i) { return std::string(i.param.name); });

// ---------- what scapy builds ----------
// Constants mirrored from tests/interop/scapy_build.py.
constexpr uint32_t kScapyHashV4 = 0x1234abcd, kScapyHashV6 = 0x0badf00d, kScapyHashMd2 = 0xfeedface;

enum class Outcome { Remote, LastHop, LocalVnf, DropGpeNextProto };

struct ScapyCase {
  bool v6;
  bool md2;
  bool gpe_in;      // arrives as VXLAN-GPE on core0, else NSH over Ethernet from vnf0
  uint8_t si, ttl;  // as scapy built them
  Outcome outcome;
  uint8_t gpe_np = AC_GPE_NP_NSH;
  bool type_0x81 = false;  // MD2 with only a TLV of our class and type 0x81 (not our hash TLV)
};

const std::map<std::string, ScapyCase> kScapyCases = {
    {"nsh_md1_v4_from_vnf", {false, false, false, 254, 62, Outcome::Remote}},
    {"nsh_md1_v6_from_vnf", {true, false, false, 254, 62, Outcome::Remote}},
    {"nsh_md2_v4_from_vnf", {false, true, false, 254, 62, Outcome::Remote}},
    {"nsh_md2_v6_from_vnf", {true, true, false, 254, 62, Outcome::Remote}},
    {"gpe_md1_v4_last_hop", {false, false, true, 253, 60, Outcome::LastHop}},
    {"gpe_md1_v6_last_hop", {true, false, true, 253, 60, Outcome::LastHop}},
    {"gpe_md2_v4_to_vnf", {false, true, true, 255, 50, Outcome::LocalVnf}},
    {"gpe_md2_v6_to_vnf", {true, true, true, 255, 50, Outcome::LocalVnf}},
    {"nsh_md2_v4_type_0x81_from_vnf", {false, true, false, 254, 62, Outcome::Remote, AC_GPE_NP_NSH, true}},
    {"gpe_scapy_default_next_proto", {false, false, true, 255, 50, Outcome::DropGpeNextProto, 0}},
};

// Our encoding of the NSH scapy was asked to build.
Nsh our_nsh(const ScapyCase& c) {
  Nsh n;
  n.spi = 100;
  n.si = c.si;
  n.ttl = c.ttl;
  n.next_proto = c.v6 ? AC_NSH_NP_IPV6 : AC_NSH_NP_IPV4;
  if (c.type_0x81) {
    n.md_type = AC_NSH_MD_TYPE2;
    n.tlvs = tlv(AC_MD_CLASS, 0x80 | AC_TLV_FLOW_HASH, Bytes{0xfe, 0xed, 0xfa, 0xce});
  } else if (c.md2) {
    n.md_type = AC_NSH_MD_TYPE2;
    n.tlvs = tlv(0x0123, 0x45, Bytes{1, 2, 3, 4, 5, 6});
    append(n.tlvs, flow_hash_tlv(kScapyHashMd2));
  } else {
    n.ctx[0] = c.v6 ? kScapyHashV6 : kScapyHashV4;
  }
  return n;
}

Bytes dec_ttl(Bytes ip) {
  if ((ip.at(0) >> 4) == 6) {
    ip.at(7)--;
    return ip;
  }
  ip.at(8)--;
  ip.at(10) = ip.at(11) = 0;
  uint16_t c = inet_csum(ip.data(), (ip[0] & 0xf) * 4u);
  ip[10] = c >> 8;
  ip[11] = c & 0xff;
  return ip;
}

TEST(ScapyBuilt, FastPathAcceptsAndForwards) {
  TempDir dir;
  const std::string pcap = dir.file("scapy.pcap");
  CmdResult r = run(std::string(ANYCHAIN_PYTHON) + " -B '" + kScripts + "/scapy_build.py' '" + pcap + "'");
  ASSERT_EQ(r.rc, 0) << "scapy_build.py failed: " << r.out;
  std::vector<std::string> names;
  for (const auto& n : split(r.out, '\n'))
    if (!n.empty()) names.push_back(n);
  const auto frames = read_pcap(pcap);
  ASSERT_EQ(frames.size(), names.size());
  std::set<std::string> seen;
  for (size_t i = 0; i < frames.size(); ++i) {
    SCOPED_TRACE(names[i]);
    auto it = kScapyCases.find(names[i]);
    ASSERT_NE(it, kScapyCases.end()) << "scapy built a case this test does not know";
    seen.insert(names[i]);
    const ScapyCase& c = it->second;
    const Bytes& in = frames[i];

    // scapy's bytes are our encoding: VXLAN-GPE header and the whole NSH header
    size_t off = 14;
    if (c.gpe_in) {
      ASSERT_GE(in.size(), 14u + 36);
      EXPECT_EQ(get16(in, 12), ETH_P_IP);
      EXPECT_EQ(get16(in, 14 + 22), AC_VXLAN_GPE_PORT);
      Bytes gpe = {AC_GPE_FLAG_I | AC_GPE_FLAG_P, 0, 0, c.gpe_np, 0, 0, 7, 0};
      EXPECT_EQ(hex(Bytes(in.begin() + 14 + 28, in.begin() + 14 + 36)), hex(gpe));
      off = 14 + 36;
    } else {
      EXPECT_EQ(get16(in, 12), AC_ETH_P_NSH);
    }
    const Nsh n = our_nsh(c);
    const Bytes want_nsh = nsh(n);
    ASSERT_GE(in.size(), off + want_nsh.size());
    EXPECT_EQ(hex(Bytes(in.begin() + static_cast<long>(off), in.begin() + static_cast<long>(off + want_nsh.size()))),
              hex(want_nsh))
        << "scapy's NSH differs from ours";
    const Bytes inner(in.begin() + static_cast<long>(off + want_nsh.size()), in.end());

    Counters cnt;
    RunResult res = run_prog(prog(), c.gpe_in ? "core0" : "vnf0", in);
    Nsh fwd = n;
    fwd.ttl = static_cast<uint8_t>(c.ttl - 1);  // each forwarder decrements the NSH TTL, SI unchanged
    Bytes want;
    switch (c.outcome) {
      case Outcome::Remote: {
        EXPECT_EQ(res.verdict, XDP_REDIRECT);
        EXPECT_EQ(cnt.delta(AC_FWD_REMOTE), 1u);
        // no hash TLV of ours (type_0x81): this node hashes the inner 5-tuple scapy built
        uint32_t h = c.type_0x81 ? flow_hash("192.168.1.10", "203.0.113.10", L4{})
                     : c.md2     ? kScapyHashMd2
                     : c.v6      ? kScapyHashV6
                                 : kScapyHashV4;
        Bytes body = nsh(fwd);
        append(body, inner);
        want = eth(kCore0Peer, kCore0, ETH_P_IP);
        append(want, gpe_outer(kLocalEndpoint, kRemoteEndpoint, 0xc000 | (h & 0x3fff), body.size(), AC_GPE_NP_NSH,
                               AC_GPE_FLAG_I | AC_GPE_FLAG_P, 7));
        append(want, body);
        break;
      }
      case Outcome::LastHop:
        EXPECT_EQ(res.verdict, XDP_REDIRECT);
        EXPECT_EQ(cnt.delta(AC_NOTE_GPE_DECAP), 1u);
        EXPECT_EQ(cnt.delta(AC_FWD_LAST_HOP), 1u);
        want = eth(kCore0Peer, kCore0, c.v6 ? ETH_P_IPV6 : ETH_P_IP);
        append(want, dec_ttl(inner));
        break;
      case Outcome::LocalVnf:
        EXPECT_EQ(res.verdict, XDP_REDIRECT);
        EXPECT_EQ(cnt.delta(AC_NOTE_GPE_DECAP), 1u);
        EXPECT_EQ(cnt.delta(AC_FWD_LOCAL_NSH), 1u);
        want = eth(kVnf0Peer, kVnf0Host, AC_ETH_P_NSH);
        append(want, nsh(fwd));
        append(want, inner);
        break;
      case Outcome::DropGpeNextProto:
        EXPECT_EQ(res.verdict, XDP_DROP);
        EXPECT_EQ(cnt.delta(AC_DROP_GPE_NEXT_PROTO), 1u);
        continue;
    }
    EXPECT_EQ(hex(res.out), hex(want));
  }
  EXPECT_EQ(seen.size(), kScapyCases.size()) << "scapy_build.py did not build every case";
}

}  // namespace
}  // namespace anychain::test

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new anychain::test::FastPathEnv);
  return RUN_ALL_TESTS();
}
