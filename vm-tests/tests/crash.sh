#!/usr/bin/env bash
# VM crash test: a guest whose kernel panics (sysrq 'c') ends without an exit status;
# vm-tests/run must report that as a VM failure (exit 125) with the console log (the panic).
# shellcheck source=vm-tests/tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

vm_run --timeout 120 -- bash -c 'echo c >/proc/sysrq-trigger; sleep 100; exit 0'
expect_rc 125
expect_err "guest ended after [0-9]+s without reporting an exit status"
expect_err "^----- guest console log"
expect_err "Kernel panic"
pass "kernel panic reported as VM failure with console log"
