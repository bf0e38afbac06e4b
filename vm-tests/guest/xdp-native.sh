#!/usr/bin/env bash
# Guest script: native (driver-mode) XDP on virtio-net, and packets across the NIC pair.
# Run: vm-tests/run --nics 2 -- vm-tests/guest/xdp-native.sh build/bpf/xdp_pass.bpf.o
#      vm-tests/run --nics 2 --nic-backend tap -- vm-tests/guest/xdp-native.sh OBJ per-cpu-txq
# NIC 0 stays in the root namespace (10.99.0.1), NIC 1 goes to namespace "peer"
# (10.99.0.2); OBJ's section "xdp" is attached in driver mode to both, the mode is checked
# (driver, not generic), then a ping crosses the wire and both programs must have run.
# With "per-cpu-txq", virtio-net must also have given XDP a TX queue per CPU (enough queue
# pairs, no "locked tx mode"), which needs vm-tests/run --nic-backend tap.
# shellcheck source=vm-tests/guest/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -eq 1 || ($# -eq 2 && $2 == per-cpu-txq) ]] ||
	vm_fail "usage: $0 XDP_OBJECT [per-cpu-txq]   (XDP_OBJECT e.g. build/bpf/xdp_pass.bpf.o)"
OBJ=$1
PER_CPU_TXQ=${2:-}
[[ -r $OBJ ]] || vm_fail "XDP object '$OBJ' not found (build first: cmake --build build)"
vm_require_cmd ip jq bpftool ping ethtool

A=$(vm_nic 0)
B=$(vm_nic 1)
for dev in "$A" "$B"; do
	drv=$(basename "$(readlink "/sys/class/net/$dev/device/driver")")
	[[ $drv == virtio_net ]] || vm_fail "$dev is driven by '$drv', expected virtio_net"
done
vm_log "kernel $(uname -r); NICs $A and $B (virtio_net)"

ip netns add peer
ip link set "$B" netns peer
ip addr add 10.99.0.1/24 dev "$A"
ip link set "$A" up
ip -n peer addr add 10.99.0.2/24 dev "$B"
ip -n peer link set "$B" up
ip -n peer link set lo up

# Driver mode only: 'xdpdrv' fails instead of falling back to generic XDP.
ip link set dev "$A" xdpdrv obj "$OBJ" sec xdp ||
	vm_fail "native XDP attach on $A failed (see the kernel log: offloads? MTU?)"
ip -n peer link set dev "$B" xdpdrv obj "$OBJ" sec xdp ||
	vm_fail "native XDP attach on $B failed"

ip -d link show dev "$A"
ip -n peer -d link show dev "$B"
for spec in "$A:" "$B:peer"; do
	dev=${spec%%:*} ns=${spec#*:}
	mode=$(vm_xdp_mode "$dev" "$ns")
	[[ $mode == drv ]] || vm_fail "XDP on $dev is attached in mode '$mode', expected drv (native)"
	ip ${ns:+-n "$ns"} link show dev "$dev" | grep -Eq ' xdp( |$)' ||
		vm_fail "'ip link show dev $dev' does not say 'xdp' (driver mode)"
done
vm_log "XDP attached in driver mode on $A and $B"

id_a=$(vm_xdp_prog_id "$A")
id_b=$(vm_xdp_prog_id "$B" peer)
before_a=$(vm_bpf_run_cnt "$id_a")
before_b=$(vm_bpf_run_cnt "$id_b")

# ARP and ICMP both ways: every frame $B receives passes its XDP program, and the replies
# pass the one on $A.
ping -c 3 -i 0.2 -W 5 10.99.0.2 || vm_fail "no ping reply from 10.99.0.2 across $A -> $B"
ran_a=$(($(vm_bpf_run_cnt "$id_a") - before_a))
ran_b=$(($(vm_bpf_run_cnt "$id_b") - before_b))
vm_log "XDP program runs during the ping: $A (prog $id_a): $ran_a, $B (prog $id_b): $ran_b"
((ran_b >= 3)) || vm_fail "XDP program on $B ran $ran_b times for 3 echo requests"
((ran_a >= 3)) || vm_fail "XDP program on $A ran $ran_a times for 3 echo replies"

ip -s link show dev "$A"
ip -n peer -s link show dev "$B"
ethtool -l "$A" | sed -n '/Current/,$p'
if dmesg | grep -E 'virtio_net.*XDP request'; then
	locked=1
	vm_log "virtio-net runs XDP_TX/XDP_REDIRECT in locked tx mode (fewer queue pairs than 2 x $(nproc) CPUs)"
else
	locked=0
	vm_log "virtio-net gave XDP a TX queue per CPU"
fi
if [[ $PER_CPU_TXQ == per-cpu-txq ]] && ((locked)); then
	vm_fail "expected per-CPU XDP TX queues (vm-tests/run --nic-backend tap); got locked tx mode"
fi
vm_log "PASS"
