#!/usr/bin/env bash
# VM smoke test: the guest runs uname -r and exits 3; vm-tests/run must return 3, show the
# guest's stdout and stderr, and run it in the host's working directory on the chosen kernel.
# shellcheck source=vm-tests/tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

K=$(default_kernel)
[[ -n $K ]] || fail "no non-cloud /boot/vmlinuz-*-amd64 installed (linux-image-amd64)"
KVER=${K#/boot/vmlinuz-}
vm_run --kernel "$K" --timeout 120 -- vm-tests/guest/smoke.sh 3
expect_rc 3
expect_out "^uname -r: ${KVER//./\\.}\$"
expect_out "^cwd: $ROOT\$"
expect_out "environment OK; exiting with 3"
grep -q "to stderr" "$OUT/out" "$OUT/err" || fail "the guest's stderr was not shown"
pass "kernel $KVER, exit status 3 returned"
