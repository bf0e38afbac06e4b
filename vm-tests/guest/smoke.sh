#!/usr/bin/env bash
# Guest script: the VM environment that vm-tests/run promises, then exit with status $1.
# Run: vm-tests/run -- vm-tests/guest/smoke.sh 3   (vm-tests/tests/smoke.sh checks the 3)
# shellcheck source=vm-tests/guest/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -eq 1 && $1 =~ ^[0-9]+$ ]] || vm_fail "usage: $0 EXIT_CODE"
vm_require_cmd findmnt ip
echo "uname -r: $(uname -r)"
echo "cwd: $PWD"
echo "to stderr" >&2

fstype() { findmnt -n -o FSTYPE --mountpoint "$1" || echo "not-a-mountpoint"; }
[[ $(fstype /) == 9p ]] || vm_fail "/ is $(fstype /), expected the host root over 9p"
# Nothing in the guest may write the host's files: / is read-only, and stays so at the export
# even when the guest (root) remounts it read-write. /usr may be a copy-on-write overlay (vng),
# where a write succeeds but stays in the guest; the host test checks that the host has
# neither file ($SMOKE_WRITE_PROBE is a unique name).
if [[ -n ${SMOKE_WRITE_PROBE:-} ]]; then
	if touch "/$SMOKE_WRITE_PROBE" 2>/dev/null; then
		vm_fail "/ is writable in the guest: the host root must be read-only"
	fi
	mount -o remount,rw / || vm_fail "cannot remount / read-write (to check the export)"
	if touch "/$SMOKE_WRITE_PROBE" 2>/dev/null; then
		rm -f "/$SMOKE_WRITE_PROBE"
		mount -o remount,ro /
		vm_fail "/ remounted read-write in the guest wrote to the host root: the 9p export is not read-only"
	fi
	mount -o remount,ro / || vm_fail "cannot remount / read-only again"
	touch "/usr/$SMOKE_WRITE_PROBE" 2>/dev/null || true
fi
[[ $(fstype /proc) == proc ]] || vm_fail "/proc is not procfs"
[[ $(fstype /sys) == sysfs ]] || vm_fail "/sys is not sysfs"
[[ $(fstype /sys/fs/bpf) == bpf ]] || vm_fail "/sys/fs/bpf is $(fstype /sys/fs/bpf), not bpffs"
[[ -c /dev/null && -c /dev/ttyS0 ]] || vm_fail "/dev is not populated"
for d in /tmp /run /var/tmp /root /etc; do
	echo ok >"$d/.anychain-vm-write-test" || vm_fail "$d is not writable"
done
ip link show lo | grep -q 'state UNKNOWN\|LOWER_UP' || vm_fail "lo is not up"
[[ $(hostname) == anychain-vm ]] || vm_fail "hostname is $(hostname)"
# Options of vm-tests/run that the host test passes: --env and --rwdir.
echo "SMOKE_ENV=${SMOKE_ENV:-unset}"
if [[ -n ${SMOKE_RWDIR:-} ]]; then
	uname -r >"$SMOKE_RWDIR/from-guest" || vm_fail "--rwdir $SMOKE_RWDIR is not writable"
fi
vm_log "environment OK; exiting with $1"
exit "$1"
