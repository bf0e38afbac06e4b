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
if touch /usr/.anychain-vm-write-test 2>/dev/null; then
	vm_fail "/usr is writable: the host root must be read-only"
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
