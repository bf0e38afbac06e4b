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
  libssl-dev  # libcrypto: HMAC-SHA256 of state replication messages (agent/state)
  # tests
  libgtest-dev libgmock-dev googletest libclang-rt-14-dev
  python3-pytest tshark tcpdump python3-scapy iproute2 iputils-ping ethtool procps psmisc
  # routing (frr-pythontools ships ospfclient.py, the independent OSPF API client of the lab tests)
  frr frr-pythontools
  # lab output
  gnuplot-nox
  # VM tests
  qemu-system-x86 busybox-static linux-image-amd64 cpio kmod jq
  # VM lab (scripts/lab up --vm): the SSH server in the guests (binaries only, no service on
  # the host) and the client on the host
  dropbear-bin openssh-client
)

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
export DEBIAN_FRONTEND=noninteractive

missing=()
for p in "${PKGS[@]}"; do
  installed "$p" || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  echo "install-deps.sh: all ${#PKGS[@]} packages already installed"
else
  echo "install-deps.sh: installing ${missing[*]}"
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# ---------------------------------------------------------------- virtme-ng (VM tests)
# vm-tests/run boots its VMs with virtme-ng (vng) when it is installed. virtme-ng is not in
# Debian 12, but Debian 13's package is "Architecture: all" and its dependencies are all met
# by Debian 12. So exactly this one .deb, at a pinned version whose SHA-256 is recorded here,
# is fetched with `apt-get download` from a Debian 13 (trixie) index that lives in a private
# directory (its own source list, lists and cache: the machine's apt sources, lists and
# pinning stay as they are, and nothing else comes from Debian 13), checked, and installed with
# dpkg after its Debian 12 dependencies. The mirror is the one the machine's own apt sources use
# for Debian (env ANYCHAIN_DEBIAN13_MIRROR overrides it). If Debian 13's index cannot be
# reached, this says so and goes on: the VM tests then use vm-tests/run's own qemu runner.
VNG_VERSION=1.35-1
VNG_SHA256=e7b9d2f28e34766446db5c40b7fdd9a09ed561af21e4aa580a660ff9a0a86f5a
VNG_DEPS=(python3 python3-requests python3-argcomplete python3-pkg-resources file kmod)

vng_note() { echo "install-deps.sh: virtme-ng: $*"; }

# The URI through which this machine's apt reaches Debian's main archive (the source of the
# release "bookworm" etc., not -updates/-security), e.g. http://deb.debian.org/debian/.
debian_mirror() {
  local codename uri
  # shellcheck source=/dev/null
  codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
  # shellcheck disable=SC2016 # $(...) are apt's format fields
  uri=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(COMPONENT)' 'Identifier: Packages' 2>/dev/null |
    awk -v c="$codename" '$3 == "main" && ($2 == c || (c == "" && $2 !~ /-/)) { print $1; exit }')
  echo "${uri:-http://deb.debian.org/debian/}"
}

install_virtme_ng() {
  local have
  have=$(dpkg-query -W -f='${Version} ${Status}' virtme-ng 2>/dev/null || true)
  if [[ $have == "$VNG_VERSION install ok installed" ]]; then
    vng_note "$VNG_VERSION already installed"
    return 0
  fi
  if [[ $have == *" install ok installed" ]]; then
    vng_note "version ${have%% *} is installed (not the pinned $VNG_VERSION); left as it is"
    return 0
  fi

  local deps=() d
  for d in "${VNG_DEPS[@]}"; do installed "$d" || deps+=("$d"); done
  if ((${#deps[@]} > 0)); then
    vng_note "installing its Debian 12 dependencies ${deps[*]}"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${deps[@]}"
  fi

  local mirror=${ANYCHAIN_DEBIAN13_MIRROR:-$(debian_mirror)}
  local work
  work=$(mktemp -d "${TMPDIR:-/tmp}/anychain-debian13.XXXXXX")
  VNG_WORK=$work # removed on exit
  chmod 0755 "$work"
  mkdir -p "$work/parts" "$work/prefs" "$work/lists/partial" "$work/cache/archives/partial" "$work/deb"
  # apt downloads as _apt where that user exists (it warns, and then runs as root, otherwise)
  if id _apt >/dev/null 2>&1; then chown _apt "$work/lists/partial" "$work/cache/archives/partial" "$work/deb"; fi
  cat >"$work/debian13.sources" <<EOF
Types: deb
URIs: $mirror
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  local apt_opts=(
    -o "Dir::Etc::sourcelist=$work/debian13.sources" -o "Dir::Etc::sourceparts=$work/parts"
    -o "Dir::Etc::preferences=$work/prefs/none" -o "Dir::Etc::preferencesparts=$work/prefs"
    -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache"
    -o APT::Update::Error-Mode=any -o Acquire::Retries=1 -o Acquire::http::Timeout=30
  )
  vng_note "reading Debian 13's package index from $mirror (trixie main, in $work)"
  if ! apt-get -qq "${apt_opts[@]}" update >"$work/update.log" 2>&1; then
    sed 's/^/  /' "$work/update.log"
    vng_note "NOT installed: Debian 13's index at $mirror could not be read (above)."
    vng_note "Everything else is installed; the VM tests will use vm-tests/run's own qemu runner"
    vng_note "(they say so: 'backend qemu'). Run this script again when the mirror is reachable."
    return 0
  fi

  # The pinned version must be the one Debian 13's (signed) index lists, with the recorded hash.
  local listed indexed
  listed=$(apt-cache "${apt_opts[@]}" show virtme-ng 2>/dev/null | sed -n 's/^Version: //p' | paste -sd' ')
  indexed=$(apt-cache "${apt_opts[@]}" show "virtme-ng=$VNG_VERSION" 2>/dev/null | sed -n 's/^SHA256: //p' | head -n1)
  if [[ -z $indexed ]]; then
    vng_note "NOT installed: Debian 13's index lists virtme-ng ${listed:-(none)}, not the pinned $VNG_VERSION."
    vng_note "Update VNG_VERSION and VNG_SHA256 in scripts/install-deps.sh after checking the new"
    vng_note "version with the VM tests; until then they use vm-tests/run's own qemu runner."
    return 0
  fi
  if [[ $indexed != "$VNG_SHA256" ]]; then
    echo "install-deps.sh: virtme-ng: Debian 13's index gives $VNG_VERSION the SHA-256 $indexed," >&2
    echo "install-deps.sh: virtme-ng: but scripts/install-deps.sh records $VNG_SHA256; not installing it" >&2
    return 1
  fi

  (cd "$work/deb" && apt-get -qq "${apt_opts[@]}" download "virtme-ng=$VNG_VERSION") ||
    { echo "install-deps.sh: virtme-ng: apt-get download virtme-ng=$VNG_VERSION from $mirror failed" >&2; return 1; }
  local deb=$work/deb/virtme-ng_${VNG_VERSION}_all.deb got
  [[ -f $deb ]] || { echo "install-deps.sh: virtme-ng: apt-get download left no $deb" >&2; return 1; }
  got=$(sha256sum "$deb" | cut -d' ' -f1)
  if [[ $got != "$VNG_SHA256" ]]; then
    echo "install-deps.sh: virtme-ng: $deb has SHA-256 $got, expected $VNG_SHA256; not installing it" >&2
    return 1
  fi
  local pkg ver
  pkg=$(dpkg-deb -f "$deb" Package) ver=$(dpkg-deb -f "$deb" Version)
  [[ $pkg == virtme-ng && $ver == "$VNG_VERSION" ]] ||
    { echo "install-deps.sh: virtme-ng: $deb is $pkg $ver, expected virtme-ng $VNG_VERSION" >&2; return 1; }
  dpkg -i "$deb" >"$work/dpkg.log" 2>&1 ||
    { cat "$work/dpkg.log" >&2; echo "install-deps.sh: virtme-ng: dpkg -i $deb failed (above)" >&2; return 1; }
  vng_note "installed $VNG_VERSION from Debian 13 (SHA-256 checked): $(vng --version 2>&1 | head -n1)"
}
VNG_WORK=
trap 'if [[ -n $VNG_WORK ]]; then rm -rf "$VNG_WORK"; fi' EXIT
install_virtme_ng
echo "install-deps.sh: done"
