#!/usr/bin/env bash
# VM timeout test: a guest that hangs (sleep 1000) is killed after --timeout 20 and reported
# as a failure (exit 124) with its console log; nothing of it is left running.
# shellcheck source=vm-tests/tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

vm_run --keep --timeout 20 -- sleep 1000
RUNDIR=$(sed -n 's/^vm-tests\/run: per-run directory kept: //p' "$OUT/err")
[[ -n $RUNDIR && -d $RUNDIR ]] || fail "no per-run directory reported (--keep)"
trap 'rm -rf "$OUT" "$RUNDIR"' EXIT
expect_rc 124
# Killing the guest takes all of it (qemu; with vng also vng and virtme-run): every process of
# the run has the per-run directory on its command line.
left=$(pgrep -a -f -- "$RUNDIR/" || true)
[[ -z $left ]] || fail "processes of the killed VM are still running: $left"
((SECS >= 20 && SECS < 60)) || fail "took ${SECS}s for a 20 s timeout"
expect_err "guest timed out after 20s and was killed"
expect_err "^----- guest console log"
expect_err "Linux version [0-9]" # the kernel's own first line
# (Not required: under heavy host load the guest may still be booting after 20 s.)
grep -q "guest-init: running in .*sleep 1000" "$OUT/err" ||
	echo "[$T] note: the guest had not reached the command yet"
pass "hung guest killed after ${SECS}s, console log shown"
