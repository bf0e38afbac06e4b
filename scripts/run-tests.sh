#!/usr/bin/env bash
# The README's test command: configure, build (warnings are errors) and run every test
# (unit, BPF fixtures, interop, netns integration with real FRR and XDP, VM tests) with ctest.
# Needs root (BPF, XDP, network namespaces). Usage: scripts/run-tests.sh [ctest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $(id -u) -ne 0 ]]; then
  echo "run-tests.sh: the BPF, XDP and netns tests need root; run it with sudo" >&2
  exit 1
fi
BUILD=${BUILD_DIR:-build}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
cd "$BUILD"
exec ctest --output-on-failure --timeout 900 "$@"
