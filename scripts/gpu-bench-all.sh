#!/usr/bin/env bash
# On the GPU machine: every benchmark in one go, on one set of PyTorch exports.
#   1. scripts/gpu-bench-executor.sh: resident latency of our executor beside PyTorch eager
#      (fp32 and tf32, with and without CUDA graphs), output errors, per-layer profiles;
#   2. scripts/gpu-bench-switch.sh: the switching benchmark, every policy and grouping in tf32,
#      and ready / pipeswitch in strict fp32.
# Usage: scripts/gpu-bench-all.sh BUNDLE_DIR WORK_DIR
# Logs: WORK_DIR/executor.log, WORK_DIR/switch_tf32.log, WORK_DIR/switch_fp32.log; results in
# WORK_DIR/results (executor), WORK_DIR/switch_tf32/ and WORK_DIR/switch_fp32/.
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
BUNDLE="${1:?usage: gpu-bench-all.sh BUNDLE_DIR WORK_DIR}"
WORK="${2:?usage: gpu-bench-all.sh BUNDLE_DIR WORK_DIR}"
mkdir -p "$WORK"
rc=0
bash "$HERE/gpu-bench-executor.sh" "$BUNDLE" "$WORK" >"$WORK/executor.log" 2>&1 || rc=1
OUT_NAME=switch_tf32 bash "$HERE/gpu-bench-switch.sh" "$BUNDLE" "$WORK" --precisions tf32 \
  --configs ready,pipeswitch,blocks,per-layer,stop-and-start,no-pool,pageable,managed,cache,kill-restart \
  >"$WORK/switch_tf32.log" 2>&1 || rc=1
OUT_NAME=switch_fp32 bash "$HERE/gpu-bench-switch.sh" "$BUNDLE" "$WORK" --precisions fp32 \
  --configs ready,pipeswitch >"$WORK/switch_fp32.log" 2>&1 || rc=1
exit $rc
