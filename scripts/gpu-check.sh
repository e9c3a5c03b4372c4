#!/usr/bin/env bash
# Runs every test, [gpu] cases included, and prints a one-screen summary; then the copy
# benchmark. Use it on a GPU machine, either on a build made there or on a bundle made elsewhere
# by scripts/bundle.sh (see README, "Running on a GPU machine").
#
# Usage: scripts/gpu-check.sh [DIR] [--no-bench] [--gpu-only]
#   DIR  a build directory (default: build; built first with `make build` if missing) or a bundle
#        directory (has tests/ and lib/; libraries and test data are taken from it).
#   --gpu-only  only the cases tagged [gpu] (CI runs the rest; this saves device time).
# Each test case runs in its own process; a case that prints "GPU-SKIP:" counts as skipped.
# Exit status: 0 when no case failed (skips are reported, and on a machine with a GPU a skipped
# [gpu] case is itself worth a look).
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
DIR="build"
BENCH=1
FILTER=""
for arg in "$@"; do
  case "$arg" in
    --no-bench) BENCH=0 ;;
    --gpu-only) FILTER="[gpu]" ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) DIR="$arg" ;;
  esac
done

if [[ -d "$DIR/lib" && -d "$DIR/tests" ]]; then   # a bundle
  export LD_LIBRARY_PATH="$(cd "$DIR/lib" && pwd)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  TESTS=$(find "$DIR/tests" -maxdepth 1 -type f -executable -name 'test_*' | sort)
  BIN="$DIR/bin"
  export PS_TOOLS_DIR="$(cd "$BIN" && pwd)"   # the e2e tests start pipeswitchd and psnc from here
  if [[ -f "$DIR/testdata/onnx-node.tar.gz" && -z "${PS_ONNX_TESTDATA:-}" ]]; then
    mkdir -p /tmp/ps-testdata && tar -C /tmp/ps-testdata -xzf "$DIR/testdata/onnx-node.tar.gz"
    export PS_ONNX_TESTDATA=/tmp/ps-testdata/node
  fi
else
  if [[ ! -d "$DIR" ]]; then make -C "$HERE/.." build BUILD_DIR="$DIR" || exit 1; fi
  TESTS=$(find "$DIR/tests" -type f -executable -name 'test_*' | sort)
  BIN="$DIR/tools"
fi
# cuDNN: prefer a 9.19 build if the machine has one beside PyTorch (the toolkit's headers are 9.19).
for d in /opt/torch/.venv/lib/python3.12/site-packages/nvidia/cudnn/lib /usr/local/cuda/lib64; do
  [[ -d "$d" ]] && export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$d"
done

LOG_DIR="${OUT:-/tmp}/gpu-check-logs"
mkdir -p "$LOG_DIR"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

pass=0; fail=0; skip=0
failures=()
printf '%-28s %6s %6s %6s\n' "test executable" pass fail skip
for exe in $TESTS; do
  name=$(basename "$exe")
  p=0; f=0; s=0
  while IFS= read -r tc; do
    [[ -z "$tc" ]] && continue
    log="$LOG_DIR/$name.log"
    spec=$(sed 's/[],[\\*]/\\&/g' <<<"$tc")   # escape Catch test-spec characters
    out=$("$exe" "$spec" 2>&1); rc=$?
    { echo "=== $tc (rc=$rc)"; echo "$out"; } >> "$log"
    if [[ $rc -ne 0 ]]; then f=$((f+1)); failures+=("$name: $tc");
    elif grep -q "GPU-SKIP:" <<<"$out"; then s=$((s+1));
    else p=$((p+1)); fi
  done < <("$exe" $FILTER --list-test-names-only 2>/dev/null | sed 's/[[:space:]]*$//')
  printf '%-28s %6d %6d %6d\n' "$name" $p $f $s
  pass=$((pass+p)); fail=$((fail+f)); skip=$((skip+s))
done
echo
for x in "${failures[@]}"; do echo "FAILED: $x"; done
echo "gpu-check: $pass passed, $fail failed, $skip skipped (logs in $LOG_DIR)"

if ((BENCH)) && [[ -x "$BIN/psbench" || -x "$BIN/psbench/psbench" ]]; then
  b="$BIN/psbench"; [[ -x "$b" ]] || b="$BIN/psbench/psbench"
  echo; "$b" copy || fail=$((fail+1))
fi
[[ $fail -eq 0 ]]
