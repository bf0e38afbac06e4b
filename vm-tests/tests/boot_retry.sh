#!/usr/bin/env bash
# VM boot watchdog test: a guest kernel that has not started its init (the initramfs) within
# --boot-timeout is killed and booted once more; a second miss is a VM failure (exit 125).
# No kernel gets there within 1 s of the VM's start under TCG (firmware and early boot alone
# take longer), so --boot-timeout 1 misses twice; the usual path, a boot within the limit, is
# what every other VM test takes. Killing the VM must take all of it: no process of the run
# (qemu; with vng also vng, virtme-run) may be left, and the first boot's console log is kept.
# Usage: boot_retry.sh [BACKEND] (auto, vng or qemu; default: the runner's).
# shellcheck source=vm-tests/tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BACKEND=${1:-${ANYCHAIN_VM_BACKEND:-auto}}
WANT=$(expected_backend "$BACKEND")
vm_run --backend "$BACKEND" --keep --timeout 120 --boot-timeout 1 -- true
RUNDIR=$(sed -n 's/^vm-tests\/run: per-run directory kept: //p' "$OUT/err")
[[ -n $RUNDIR && -d $RUNDIR ]] || fail "no per-run directory reported (--keep)"
trap 'rm -rf "$OUT" "$RUNDIR"' EXIT
expect_err "^vm-tests/run: backend $WANT "
expect_rc 125
expect_err "did not start its init \\(the initramfs\\) within 1s \\(kernel .*, $WANT backend, a boot hang\\); booting it again"
expect_err "did not start its init \\(the initramfs\\) within 1s, twice"
((SECS < 60)) || fail "took ${SECS}s for two 1 s boot deadlines"
[[ -e $RUNDIR/console-boot1.log ]] || fail "the first boot's console log was not kept"
# Every process of the run has the per-run directory on its command line (qemu's chardev and
# fsdev paths, vng's --qemu-opts).
left=$(pgrep -a -f -- "$RUNDIR/" || true)
[[ -z $left ]] || fail "processes of the killed VM are still running: $left"
pass "$WANT backend: a boot that misses its deadline is retried once, then reported; nothing left running"
