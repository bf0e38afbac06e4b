#!/usr/bin/env bash
# VM smoke test: the guest runs uname -r and exits 3; vm-tests/run must return 3, show the
# guest's stdout and stderr, and run it in the host's working directory on the chosen kernel
# (ANYCHAIN_VM_KERNEL, cmake -DANYCHAIN_VM_KERNEL=..., else the runner's default), which must
# be at least the minimum supported 6.1. Also --env and --rwdir, and that no write in the
# guest reaches the host's root.
# Usage: smoke.sh [BACKEND]: auto (default; must pick vng when virtme-ng is installed), vng,
# qemu, or fallback (auto with vng hidden: must fall back to the runner's own qemu set-up and
# say why). The backend that ran must be the one expected.
# shellcheck disable=SC2016 # the literal $c checks that quoting survives
# shellcheck source=vm-tests/tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

K=${ANYCHAIN_VM_KERNEL:-$(default_kernel)}
[[ -n $K ]] || fail "no non-cloud /boot/vmlinuz-*-amd64 installed (linux-image-amd64)"
[[ $K == */* ]] || K=/boot/vmlinuz-$K
BACKEND=${1:-${ANYCHAIN_VM_BACKEND:-auto}}
if [[ $BACKEND == fallback ]]; then
	# auto with virtme-ng "not installed": the runner must fall back to its own qemu set-up
	export ANYCHAIN_VM_VNG=/nonexistent/vng
	BACKEND=auto WANT=qemu
else
	WANT=$(expected_backend "$BACKEND")
fi
PROBE=.anychain-vm-write-test-$$-$RANDOM
mkdir "$OUT/rw"
vm_run --backend "$BACKEND" --kernel "$K" --timeout 180 --rwdir "$OUT/rw" --env SMOKE_RWDIR="$OUT/rw" \
	--env 'SMOKE_ENV=a b$c' --env SMOKE_WRITE_PROBE="$PROBE" -- vm-tests/guest/smoke.sh 3
for f in "/$PROBE" "/usr/$PROBE"; do
	if [[ -e $f ]]; then
		rm -f "$f"
		fail "the guest wrote $f on the host"
	fi
done
expect_err "^vm-tests/run: backend $WANT "
if [[ ${ANYCHAIN_VM_VNG:-} == /nonexistent/vng ]]; then
	expect_err "^vm-tests/run: backend qemu \(fallback: virtme-ng \(vng\) is not installed; scripts/install-deps.sh installs it\)"
fi
expect_rc 3
KVER=$(sed -n 's/^uname -r: //p' "$OUT/out")
[[ -n $KVER ]] || fail "the guest printed no 'uname -r:' line"
if [[ $(basename "$K") == vmlinuz-* && $KVER != "${K##*/vmlinuz-}" ]]; then
	fail "guest runs kernel $KVER, not the requested $K"
fi
# anychain supports Linux 6.1 and newer: a VM test on an older kernel proves nothing.
[[ $(printf '%s\n' 6.1 "$KVER" | sort -V | head -n1) == 6.1 ]] ||
	fail "kernel $KVER is older than the minimum supported 6.1"
expect_out "^cwd: $ROOT\$"
expect_out "environment OK; exiting with 3"
grep -q "to stderr" "$OUT/out" "$OUT/err" || fail "the guest's stderr was not shown"
grep -qxF 'SMOKE_ENV=a b$c' "$OUT/out" || fail "--env did not reach the guest intact"
[[ $(cat "$OUT/rw/from-guest" 2>/dev/null) == "$KVER" ]] || fail "nothing written through --rwdir"
pass "backend $WANT, kernel $KVER, exit status 3 returned"
