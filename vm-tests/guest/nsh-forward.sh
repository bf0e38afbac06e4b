#!/usr/bin/env bash
# Guest script: anychain's fast path in native XDP mode on virtio-net, forwarding NSH between
# NICs, and sharing a NIC with another XDP program through libxdp's dispatcher. Runs
# tests/vm/nsh_forward_vm_test (GoogleTest, the dataplane library) on NICs 0-3:
#
#   netns prev: NIC1 ==wire== NIC0 [anychain] --FIB--> NIC2 [anychain] ==wire== NIC3 :netns next
#
# Run: vm-tests/run --nics 4 --nic-backend tap -- vm-tests/guest/nsh-forward.sh build/tests/vm/nsh_forward_vm_test
# With the tap backend (enough queue pairs) XDP_REDIRECT must also have its per-CPU XDP TX
# queues: the kernel must not log virtio-net's "locked tx mode" fallback.
# shellcheck source=vm-tests/guest/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -eq 1 ]] || vm_fail "usage: $0 NSH_FORWARD_VM_TEST   (build/tests/vm/nsh_forward_vm_test; needs --nics 4)"
BIN=$1
[[ -x $BIN ]] || vm_fail "'$BIN' is not an executable (build first: cmake --build build)"
vm_require_cmd ip jq ethtool xdp-loader dmesg
IN=$(vm_nic 0) PREV=$(vm_nic 1) OUT=$(vm_nic 2) NEXT=$(vm_nic 3)
# queue pairs the device offers (virtio-net enables min(that, CPUs) for the stack, the rest are
# for XDP TX)
pairs=$(ip -j -d link show dev "$IN" | jq -r '.[0].num_rx_queues')
vm_log "kernel $(uname -r); IN=$IN PREV=$PREV OUT=$OUT NEXT=$NEXT; $(nproc) CPUs, $pairs queue pairs per NIC"

rc=0
ANYCHAIN_VM_NICS="$IN $PREV $OUT $NEXT" "$BIN" --gtest_color=no || rc=$?
((rc == 0)) || vm_fail "$(basename "$BIN") failed (exit status $rc)"

# The test removed what it attached: no XDP program left on the node's NICs.
for dev in "$IN" "$OUT"; do
	[[ $(vm_xdp_mode "$dev") == none ]] || vm_fail "XDP still attached to $dev after the test: $(ip -d link show dev "$dev")"
done
if dmesg | grep -q 'locked tx mode'; then
	if ((pairs >= 2 * $(nproc))); then
		dmesg | grep 'locked tx mode'
		vm_fail "virtio-net fell back to locked XDP TX although it has 2 x CPUs queue pairs"
	fi
	vm_log "note: virtio-net used its locked XDP TX mode (too few queue pairs: use --nic-backend tap)"
fi
vm_log "PASS"
