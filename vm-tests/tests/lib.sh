# shellcheck shell=bash
# Helpers for the host-side VM tests in vm-tests/tests/ (registered with ctest, label vm).
# Each test runs vm-tests/run from the repository root and checks its exit status and output.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
RUN=$ROOT/vm-tests/run
T=$(basename "${BASH_SOURCE[1]:-$0}" .sh)
OUT=$(mktemp -d "${TMPDIR:-/tmp}/vm-test-$T.XXXXXX")
trap 'rm -rf "$OUT"' EXIT

fail() {
	echo "[$T] FAIL: $*" >&2
	exit 1
}
pass() { echo "[$T] PASS${1:+: $1}"; }

# vm_run ARGS...: run vm-tests/run, keep stdout/stderr in $OUT/out and $OUT/err (shown
# afterwards), its exit status in $RC and its wall time in $SECS.
vm_run() {
	local start=$SECONDS
	RC=0
	"$RUN" "$@" >"$OUT/out" 2>"$OUT/err" || RC=$?
	cat "$OUT/out"
	cat "$OUT/err" >&2
	SECS=$((SECONDS - start))
	echo "[$T] vm-tests/run $* -> exit $RC after ${SECS}s"
}

expect_rc() { [[ $RC -eq $1 ]] || fail "vm-tests/run exited $RC, expected $1"; }
expect_out() { grep -Eq -- "$1" "$OUT/out" || fail "stdout lacks /$1/"; }
expect_err() { grep -Eq -- "$1" "$OUT/err" || fail "stderr lacks /$1/"; }

# The kernel vm-tests/run picks by default (newest non-cloud /boot/vmlinuz-*-amd64).
default_kernel() {
	local k
	for k in /boot/vmlinuz-*-amd64; do
		[[ -e $k && $k != *-cloud-* ]] && echo "$k"
	done | sort -V | tail -n1
}

# expected_backend auto|vng|qemu: the backend vm-tests/run must pick: auto is vng when virtme-ng
# >= 1.35 is installed (scripts/install-deps.sh), else qemu.
expected_backend() {
	local v
	case $1 in
	vng | qemu) echo "$1" ;;
	auto)
		v=$(vng --version 2>/dev/null | sed -n 's/^virtme-ng \([0-9][0-9.]*\).*/\1/p')
		if [[ -n $v && $(printf '%s\n' 1.35 "$v" | sort -V | head -n1) == 1.35 ]]; then echo vng; else echo qemu; fi
		;;
	*) fail "unknown backend '$1'" ;;
	esac
}
