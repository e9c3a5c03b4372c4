#!/usr/bin/env bash
# Builds the libFuzzer targets (clang-14, ASan + UBSan) and runs each for SECONDS.
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
#   SECONDS  per target (default 60)
#   TARGET   text_protocol binary_protocol http_request onnx_import psm_reader (default: all)
# Environment: FUZZ_BUILD (default build-fuzz), FUZZ_WORK (default out/fuzz), FUZZ_JOBS (build
# jobs, default nproc).
# Seeds: tests/fuzz/corpus/<target>/ (checked in) plus, for onnx_import and psm_reader, the tiny
# zoo models written by psimport. The growing corpus is kept in FUZZ_WORK/corpus/<target>.
# A crash stops that target; its input is copied to FUZZ_WORK/crashes/ and the script exits
# non-zero. Add the input to tests/fuzz/corpus/<target>/ once fixed: it is then replayed by
# `make test` (the "fuzz corpus" ctest tests) forever.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER="${1:-60}"; shift || true
TARGETS=("$@")
((${#TARGETS[@]})) || TARGETS=(text_protocol binary_protocol http_request onnx_import psm_reader)
BUILD="${FUZZ_BUILD:-build-fuzz}"
WORK="${FUZZ_WORK:-out/fuzz}"
JOBS="${FUZZ_JOBS:-$(nproc)}"
command -v clang++-14 >/dev/null || { echo "fuzz: clang++-14 is missing (scripts/setup.sh installs it)" >&2; exit 1; }

CC=clang-14 CXX=clang++-14 cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DPS_BUILD_FUZZERS=ON -DPS_BUILD_TESTS=ON >/dev/null
cmake --build "$BUILD" -j "$JOBS" --target $(printf 'fuzz_%s ' "${TARGETS[@]}") psimport

mkdir -p "$WORK/crashes"
# Zoo seeds for the model parsers (generated, not checked in: they are hundreds of KB).
seed_models() {
  local dir="$WORK/seeds"; mkdir -p "$dir"
  for m in resnet_tiny bert_tiny; do
    [[ -f "$dir/$m.psm" ]] && continue
    "$BUILD/tools/psimport/psimport" --zoo "$m" -o "$dir/$m.onnx" >/dev/null
    "$BUILD/tools/psimport/psimport" "$dir/$m.onnx" -o "$dir/$m.psm" --batch 1 --seq 4 >/dev/null 2>&1
  done
}
seed_models

status=0
printf '%-16s %10s %8s %8s %s\n' target execs cov ft result
for t in "${TARGETS[@]}"; do
  corpus="$WORK/corpus/$t"; mkdir -p "$corpus"
  extra=()
  case "$t" in
    onnx_import) extra=("$WORK/seeds/resnet_tiny.onnx" "$WORK/seeds/bert_tiny.onnx") ;;
    psm_reader) extra=("$WORK/seeds/resnet_tiny.psm" "$WORK/seeds/bert_tiny.psm") ;;
  esac
  for f in "${extra[@]}"; do cp -n "$f" "$corpus/" 2>/dev/null || true; done
  log="$WORK/$t.log"
  set +e
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
  "$BUILD/tests/fuzz/fuzz_$t" "$corpus" "tests/fuzz/corpus/$t" \
    -max_total_time="$SECONDS_PER" -rss_limit_mb=2048 -timeout=10 -max_len=1048576 \
    -artifact_prefix="$WORK/crashes/$t-" -print_final_stats=1 >"$log" 2>&1
  rc=$?
  set -e
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  last=$(grep -E '#[0-9]+.*(cov|DONE)' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' <<<"$last" | grep -o '[0-9]*' || echo '?')
  ft=$(grep -o 'ft: [0-9]*' <<<"$last" | grep -o '[0-9]*' || echo '?')
  if [[ $rc -eq 0 ]]; then result=ok; else result="FOUND (rc $rc, see $log)"; status=1; fi
  printf '%-16s %10s %8s %8s %s\n' "$t" "$execs" "$cov" "$ft" "$result"
done
exit $status
