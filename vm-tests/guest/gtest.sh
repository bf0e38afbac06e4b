#!/usr/bin/env bash
# Guest script: run GoogleTest binaries on the VM's kernel (by default Debian 12's 6.1, the
# oldest supported one). Each binary must exit 0, run at least one test, and skip none: a
# fixture that skips on an old kernel would hide exactly what this is for.
# Run: vm-tests/run -- vm-tests/guest/gtest.sh build/tests/bpf/fastpath_test build/tests/bpf/btf_layout_test
# shellcheck source=vm-tests/guest/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -ge 1 ]] || vm_fail "usage: $0 GTEST_BINARY...   (e.g. build/tests/bpf/fastpath_test)"
vm_require_cmd jq
OUT=/tmp/gtest-results
mkdir -p $OUT
vm_log "kernel $(uname -r)"
for bin in "$@"; do
	[[ -x $bin ]] || vm_fail "'$bin' is not an executable (build first: cmake --build build)"
	name=$(basename "$bin")
	json=$OUT/$name.json
	start=$SECONDS
	rc=0
	"$bin" --gtest_brief=1 --gtest_output="json:$json" || rc=$?
	((rc == 0)) || vm_fail "$name failed on kernel $(uname -r) (exit status $rc; output above)"
	[[ -s $json ]] || vm_fail "$name wrote no result file $json"
	read -r tests failures disabled skipped < <(jq -r \
		'[.tests, .failures, .disabled, ([.testsuites[].testsuite[] | select(.result == "SKIPPED")] | length)] | @tsv' \
		"$json")
	((tests > 0)) || vm_fail "$name ran no tests"
	((failures == 0)) || vm_fail "$name: $failures failures"
	((disabled == 0 && skipped == 0)) ||
		vm_fail "$name: $skipped skipped and $disabled disabled tests on kernel $(uname -r); all must run here"
	vm_log "$name: $tests tests passed in $((SECONDS - start)) s"
done
vm_log "PASS: $# test binaries on kernel $(uname -r)"
