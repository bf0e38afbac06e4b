# shellcheck shell=bash
# Helpers for guest scripts run by vm-tests/run (see docs/vm-tests.md). Source it first:
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# It sets 'set -euo pipefail', refuses to run outside the VM, and gives:
#   vm_log MSG...                 progress line on stdout
#   vm_fail MSG...                print FAIL on stderr and exit 1
#   vm_require_cmd CMD...         fail unless every CMD is installed
#   vm_nic I                      name of NIC I (vm-tests/run --nics; MAC 52:54:00:a7:00:0I)
#   vm_xdp_mode DEV [NETNS]       drv, skb, hw, multi or none: how XDP is attached to DEV
#   vm_xdp_prog_id DEV [NETNS]    id of the XDP program on DEV
#   vm_bpf_run_cnt ID             how often program ID ran (bpf stats are switched on here)
set -euo pipefail

VM_SCRIPT=$(basename "${BASH_SOURCE[1]:-$0}")
vm_log() { echo "[$VM_SCRIPT] $*"; }
vm_fail() {
	echo "[$VM_SCRIPT] FAIL: $*" >&2
	exit 1
}

if [[ ${ANYCHAIN_VM:-} != 1 ]]; then
	vm_fail "this is a guest script; run it in the VM: vm-tests/run [--nics N] -- $0 ..."
fi

vm_require_cmd() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null || vm_fail "'$c' is not installed (scripts/install-deps.sh)"
	done
}

vm_nic() { # index
	local mac dev
	mac=$(printf '52:54:00:a7:00:%02x' "$1")
	for dev in /sys/class/net/*; do
		if [[ $(<"$dev/address") == "$mac" ]]; then
			basename "$dev"
			return 0
		fi
	done
	vm_fail "no NIC $1 (MAC $mac): did you pass --nics $(($1 + 1 + ($1 + 1) % 2)) to vm-tests/run?"
}

_vm_link_json() { # dev [netns]
	if [[ -n ${2:-} ]]; then ip -n "$2" -j -d link show dev "$1"; else ip -j -d link show dev "$1"; fi
}

vm_xdp_mode() { # dev [netns]
	local mode
	mode=$(_vm_link_json "$@" | jq -r '.[0].xdp.mode // 0')
	# enum XDP_ATTACHED_* from linux/if_link.h
	case $mode in
	0) echo none ;; 1) echo drv ;; 2) echo skb ;; 3) echo hw ;; 4) echo multi ;;
	*) echo "unknown($mode)" ;;
	esac
}

vm_xdp_prog_id() { # dev [netns]
	_vm_link_json "$@" | jq -er '.[0].xdp.prog.id // .[0].xdp.attached[0].prog.id'
}

vm_bpf_run_cnt() { # prog id
	sysctl -qw kernel.bpf_stats_enabled=1
	bpftool -j prog show id "$1" | jq -r '.run_cnt // 0'
}
