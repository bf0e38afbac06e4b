#!/usr/bin/env bash
# VM boot watchdog test: a guest kernel that has not reached the initramfs within --boot-timeout
# is killed and booted once more; a second miss is a VM failure (exit 125).
# No kernel reaches the initramfs within 1 s under TCG (firmware and early boot alone take
# longer), so --boot-timeout 1 misses twice; the usual path, a boot within the limit, is what
# every other VM test takes.
# shellcheck source=vm-tests/tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

vm_run --timeout 120 --boot-timeout 1 -- true
expect_rc 125
expect_err "did not reach the initramfs within 1s \\(kernel .*\\); booting it again"
expect_err "did not reach the initramfs within 1s, twice"
((SECS < 60)) || fail "took ${SECS}s for two 1 s boot deadlines"
pass "a boot that misses its deadline is retried once, then reported"
