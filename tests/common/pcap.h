// Minimal classic pcap (libpcap 2.4) reader and writer for Ethernet frames, so tests can hand
// packets to and take packets from other implementations (tshark, scapy) without libpcap.
#pragma once

#include <string>
#include <vector>

#include "common/packet.h"

namespace anychain::test {

inline constexpr uint32_t kLinkTypeEthernet = 1;

// Write frames as one pcap file (microsecond timestamps 1 s apart, link type Ethernet).
// Throws std::runtime_error on I/O errors.
void write_pcap(const std::string& path, const std::vector<Bytes>& frames);

// Read every frame of a pcap file written in either byte order, with microsecond or
// nanosecond timestamps. Throws std::runtime_error if the file is not a pcap of Ethernet
// frames or a record is truncated or cut (captured length below the original length).
std::vector<Bytes> read_pcap(const std::string& path);

}  // namespace anychain::test
