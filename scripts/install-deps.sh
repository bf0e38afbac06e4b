#!/usr/bin/env bash
# Install every build, test, lab and VM-test dependency of anychain from Debian 12 packages.
# Idempotent: packages already present are skipped; nothing is downloaded outside apt.
set -euo pipefail

if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps.sh: must run as root (it calls apt-get)" >&2
  exit 1
fi

PKGS=(
  # toolchain and build
  build-essential cmake pkg-config clang llvm lld
  # BPF / XDP
  libbpf-dev bpftool libxdp-dev xdp-tools libelf-dev zlib1g-dev linux-libc-dev
  # agent and CLI
  libnl-3-dev libnl-route-3-dev libboost-program-options-dev libyaml-cpp-dev nlohmann-json3-dev libfmt-dev
  # tests
  libgtest-dev libgmock-dev googletest libclang-rt-14-dev
  python3-pytest tshark tcpdump python3-scapy iproute2 iputils-ping ethtool procps psmisc
  # routing (frr-pythontools ships ospfclient.py, the independent OSPF API client of the lab tests)
  frr frr-pythontools
  # lab output
  gnuplot-nox
  # VM tests
  qemu-system-x86 busybox-static linux-image-amd64 cpio kmod jq
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps.sh: all ${#PKGS[@]} packages already installed"
  exit 0
fi

echo "install-deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-deps.sh: done"
