#!/usr/bin/env bash
# Guest script: native XDP_REDIRECT from one virtio-net NIC to another, the data path of the
# anychain fast path, with xdp-tools' own redirect program (xdp-bench), so that a failure here
# is the VM/driver, not anychain's code.
# Run: vm-tests/run --nics 4 -- vm-tests/guest/xdp-redirect.sh
#
#   netns a: NIC0 10.98.0.1 ==wire== NIC1 --XDP_REDIRECT--> NIC2 ==wire== NIC3 10.98.0.2 :netns b
#
# NIC1 and NIC2 have no addresses and IP forwarding is off, so a UDP datagram from a can only
# reach b through the redirect. 20 datagrams are sent; tcpdump on NIC3 must see all 20.
# xdp-bench's redirect program swaps the MAC addresses, and virtio-net (qemu's rx filter)
# drops unicast frames for other MACs, so NIC1 and NIC3 are promiscuous.
# shellcheck source=vm-tests/guest/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -eq 0 ]] || vm_fail "usage: $0   (no arguments; needs vm-tests/run --nics 4)"
vm_require_cmd ip jq xdp-bench tcpdump timeout
A=$(vm_nic 0) IN=$(vm_nic 1) OUT=$(vm_nic 2) B=$(vm_nic 3)
N=20
LOG=/tmp/xdp-redirect
mkdir -p $LOG

sysctl -qw net.ipv4.ip_forward=0
ip netns add a
ip netns add b
ip link set "$A" netns a
ip link set "$B" netns b
ip -n a addr add 10.98.0.1/24 dev "$A"
ip -n a link set "$A" up
ip -n b addr add 10.98.0.2/24 dev "$B"
ip -n b link set "$B" promisc on up
ip link set "$IN" promisc on up
ip link set "$OUT" up
# The path is one-way (no ARP replies come back through the redirect): static neighbour.
mac_b=$(ip -n b -j link show dev "$B" | jq -r '.[0].address')
ip -n a neigh replace 10.98.0.2 lladdr "$mac_b" dev "$A" nud permanent

xdp-bench redirect -m native -i 1 "$IN" "$OUT" >$LOG/bench.out 2>&1 &
bench=$!
for ((i = 0; i < 60; i++)); do
	[[ $(vm_xdp_mode "$IN") == drv ]] && break
	kill -0 $bench 2>/dev/null || { cat $LOG/bench.out; vm_fail "xdp-bench redirect -m native $IN $OUT exited"; }
	sleep 0.5
done
[[ $(vm_xdp_mode "$IN") == drv ]] || vm_fail "XDP on $IN is '$(vm_xdp_mode "$IN")', expected drv"
vm_log "xdp-bench redirects $IN -> $OUT in driver mode"

timeout 60 ip netns exec b tcpdump -p -n -l -i "$B" -c $N 'udp and dst port 9999' \
	>$LOG/tcpdump.out 2>$LOG/tcpdump.err &
dump=$!
for ((i = 0; i < 60; i++)); do
	grep -q "listening on" $LOG/tcpdump.err && break
	sleep 0.5
done
grep -q "listening on" $LOG/tcpdump.err || { cat $LOG/tcpdump.err; vm_fail "tcpdump did not start"; }

for ((i = 1; i <= N; i++)); do
	ip netns exec a bash -c "echo anychain-$i >/dev/udp/10.98.0.2/9999"
	sleep 0.05
done
rc=0
wait $dump || rc=$?
kill -INT $bench 2>/dev/null || true
wait $bench 2>/dev/null || true
cat $LOG/tcpdump.out
tail -n 6 $LOG/bench.out
got=$(grep -c 'UDP' $LOG/tcpdump.out || true)
((rc == 0 && got == N)) ||
	vm_fail "$got of $N datagrams arrived on $B through the redirect (tcpdump status $rc)"
vm_log "PASS: $N of $N datagrams redirected $IN -> $OUT"
