#!/usr/bin/env bash
# vm-tests/run's own error handling (no VM is booted): bad options and missing or unusable
# kernels are refused with a message naming the bad input, --help teaches.
# shellcheck source=vm-tests/tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

check() { # expected-rc expected-stderr-regex args...
	local rc=$1 re=$2
	shift 2
	vm_run "$@"
	expect_rc "$rc"
	expect_err "$re"
}

vm_run --help
expect_rc 0
expect_out "^Usage: vm-tests/run \[OPTIONS\] -- COMMAND"
expect_out "--nics N"

check 2 "no command given after '--'" --cpus 1 --
check 2 "expected '--' before the command \('uname'\)" uname
check 2 "unknown option '--bogus'" --bogus -- true
check 2 "--cpus 'two' is not a positive integer" --cpus two -- true
check 2 "--memory '1T' is not a size" --memory 1T -- true
check 2 "--timeout '1.5' is not a number of seconds \\(0: no limit\\)" --timeout 1.5 -- true
check 2 "--tap 'tap0,queues=2': the only option is mac=MAC" --tap tap0,queues=2 -- true
check 2 "--tap 'tap0,mac=01:00:00:00:00:01': 01:00:00:00:00:01 is a multicast MAC" --tap tap0,mac=01:00:00:00:00:01 -- true
check 2 "--tap 'tap0,mac=xx': 'xx' is not a MAC address" --tap tap0,mac=xx -- true
check 2 "--tcg-tb-size '0' is not a positive number of MiB" --tcg-tb-size 0 -- true
check 125 "--tap no-such-tap0: no such interface in this network namespace" --tap no-such-tap0 -- true
check 125 "--tap lo: not a tap device" --tap lo -- true
mkdir -p "$OUT/rundir" && : >"$OUT/rundir/x"
check 125 "--rundir '$OUT/rundir' is not empty" --rundir "$OUT/rundir" -- true
check 2 "--nics 3: NICs are wired in pairs" --nics 3 -- true
check 2 "--backend 'kvm': use auto, qemu or vng" --backend kvm -- true
check 2 "--accel 'hvf': use auto, tcg or kvm" --accel hvf -- true
check 2 "--env 'X' is not NAME=VALUE" --env X -- true
check 2 "--rwdir '/nonexistent/dir' is not a directory" --rwdir /nonexistent/dir -- true
check 2 "option --kernel needs an argument" --kernel
check 125 "--kernel '/nonexistent/vmlinuz': no such file" --kernel /nonexistent/vmlinuz -- true

cd /run
check 125 "the working directory /run is not visible in the guest" -- true
cd "$ROOT"

# Missing or unsuitable tools.
ANYCHAIN_VM_QEMU=/nonexistent/qemu check 125 "/nonexistent/qemu not found: install qemu-system-x86" --backend qemu -- true
ANYCHAIN_VM_BUSYBOX=/nonexistent/busybox check 125 "busybox not found at /nonexistent/busybox: install busybox-static" --backend qemu -- true
ANYCHAIN_VM_BUSYBOX=/bin/bash check 125 "/bin/bash is dynamically linked; the initramfs needs busybox-static" --backend qemu -- true
ANYCHAIN_VM_VNG=/nonexistent/vng check 125 "--backend vng: virtme-ng \(/nonexistent/vng\) is not installed; scripts/install-deps.sh installs it" --backend vng -- true
# A virtme-ng older than the runner supports: refused when asked for, skipped by auto.
printf '#!/bin/sh\necho "virtme-ng 1.20"\n' >"$OUT/old-vng"
chmod +x "$OUT/old-vng"
ANYCHAIN_VM_VNG=$OUT/old-vng check 125 "--backend vng: virtme-ng 1.20 is older than 1.35" --backend vng -- true

boot=$OUT/boot
mkdir -p "$boot"
ANYCHAIN_VM_BOOT_DIR=$boot check 125 "no kernel found \($boot/vmlinuz-\*-amd64\)" -- true
check 125 "--kernel '0.0.0-none': no such file, nor /boot/vmlinuz-0.0.0-none" --kernel 0.0.0-none -- true
: >"$boot/vmlinuz-6.1.0-99-cloud-amd64"
ANYCHAIN_VM_BOOT_DIR=$boot check 125 "only cloud kernels are installed .*vmlinuz-6.1.0-99-cloud-amd64.*no 9p" -- true
# A kernel whose version has no /lib/modules directory.
printf 'not a kernel' >"$boot/vmlinuz-0.0.0-none-amd64"
check 125 "no modules for kernel 0.0.0-none-amd64 in /lib/modules/0.0.0-none-amd64" \
	--backend qemu --kernel "$boot/vmlinuz-0.0.0-none-amd64" -- true
pass "bad input refused with messages naming it"
