#!/usr/bin/env bash
# Builds the threaded parts under ThreadSanitizer (build-tsan) and runs their tests: the
# scheduler and in-process server with the CPU backend's worker threads, training jobs and the
# multi-device backend's inbox (test_reactor), the wire protocols (test_net), the host side of
# the CUDA completion bridge fed from plain threads (test_cuda_core), and a real pipeswitchd
# built with TSan serving real psnc clients (test_e2e). [gpu] cases skip as everywhere on CI.
#
# Usage: scripts/tsan.sh [CTEST_REGEX]
#   CTEST_REGEX  which ctest tests to run (default: every case of the four executables)
# Environment: TSAN_BUILD (default build-tsan), TSAN_JOBS (build jobs, default nproc).
# Any report fails the run: halt_on_error stops the process at the first race, lock-order
# inversion or misuse of a mutex, and the e2e tests check pipeswitchd's exit status.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
BUILD="${TSAN_BUILD:-build-tsan}"
JOBS="${TSAN_JOBS:-$(nproc)}"
REGEX="${1:-^(test_reactor|test_e2e|test_net|test_cuda_core):}"

cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DENABLE_TSAN=ON >/dev/null
cmake --build "$BUILD" -j "$JOBS" --target test_reactor test_e2e test_net test_cuda_core

export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:history_size=4:exitcode=66${TSAN_OPTIONS:+:$TSAN_OPTIONS}"
cd "$BUILD"
ctest -j "$JOBS" --output-on-failure --no-tests=error -R "$REGEX"
