#!/usr/bin/env bash
# On the GPU machine: issue 7's GPU measurements with a bundle's binaries, in one command of a
# few minutes (a lent device gives 10 minutes per command):
#   1. exports ResNet152 with BatchNorm kept (scripts/torch_train.py --export-onnx) at --batch
#      (default 64) and imports it for training (psimport --mode training); reused when present;
#   2. the 20-step trajectory: psbench train in strict fp32 writes its batches and losses, and
#      torch_train.py trains PyTorch on the same batches and compares (exit 3 above 1e-3),
#      with a float64 twin as the control (--fp64-control: ok_vs_fp64, docs/training.md);
#   3. speed: psbench train in TF32 against torch_train.py --time (fp32 and tf32), ms per step;
#   4. preemption: scripts/bench_preempt.py (needs the inference package too: it imports
#      resnet152 at batch 8 from an export_models.py export) unless --no-preempt.
# Everything is logged under WORK/train-logs and, with $OUT set, packed into
# $OUT/train-logs.tar.gz. Each step says how long it took.
# Usage: scripts/gpu-train-check.sh BUNDLE_DIR WORK_DIR [--batch 64] [--steps 20] [--no-preempt]
#        [--only trajectory|speed|preempt]
set -uo pipefail
usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; }
[[ "${1:-}" == -h || "${1:-}" == --help ]] && { usage; exit 0; }
BUNDLE="$(cd "${1:?usage: gpu-train-check.sh BUNDLE_DIR WORK_DIR [options]}" && pwd)"
WORK="${2:?usage: gpu-train-check.sh BUNDLE_DIR WORK_DIR [options]}"
shift 2
BATCH=64
STEPS=20
PREEMPT=1
ONLY=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --batch) BATCH="$2"; shift 2 ;;
    --steps) STEPS="$2"; shift 2 ;;
    --no-preempt) PREEMPT=0; shift ;;
    --only) ONLY="$2"; shift 2 ;;
    *) echo "gpu-train-check: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/gpu-env.sh"
gpu_env "$BUNDLE"
PY=python3
BIN="$BUNDLE/bin"
LOGS="$WORK/train-logs"
mkdir -p "$WORK/models" "$LOGS"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
rc=0
step() {  # step NAME COMMAND...: runs it with its output in LOGS/NAME.log, says how long
  local name="$1"; shift
  local t0=$SECONDS
  echo "== $name: $*"
  "$@" > "$LOGS/$name.log" 2>&1
  local code=$?
  tail -n 15 "$LOGS/$name.log"
  echo "== $name: exit $code after $((SECONDS - t0)) s"
  [[ $code -ne 0 ]] && rc=1
  return $code
}
want() { [[ -z "$ONLY" || "$ONLY" == "$1" ]]; }

TRAIN_ONNX="$WORK/resnet152_train$BATCH.onnx"
TRAIN_PSM="$WORK/models/resnet152_train.psm"
if [[ ! -f "$TRAIN_PSM" ]]; then
  [[ -f "$TRAIN_ONNX" ]] ||
    step export "$PY" "$HERE/torch_train.py" --model resnet152 --batch "$BATCH" --export-onnx "$TRAIN_ONNX"
  step import "$BIN/psimport" "$TRAIN_ONNX" -o "$TRAIN_PSM" --batch "$BATCH" --mode training
fi

if want trajectory; then
  # --json writes one JSON object on stdout (kept apart from the log on stderr).
  step psbench-fp32 bash -c '"$0" train "$1" --precision fp32 --steps "$2" --runs 0 --lr 0.01 \
      --write-batches "$3" --json > "$4"; code=$?; cat "$4"; exit $code' \
    "$BIN/psbench" "$TRAIN_PSM" "$STEPS" "$WORK/r152.batches" "$WORK/r152_psbench.json"
  step torch-compare "$PY" "$HERE/torch_train.py" --model resnet152 --batch "$BATCH" --lr 0.01 \
    --batches "$WORK/r152.batches" --compare "$WORK/r152_psbench.json" --fp64-control
fi
if want speed; then
  step psbench-tf32 "$BIN/psbench" train "$TRAIN_PSM" --precision tf32 --steps 3 --runs 20 --profile-top 20
  step torch-time "$PY" "$HERE/torch_train.py" --model resnet152 --batch "$BATCH" --time
fi
if ((PREEMPT)) && want preempt; then
  if [[ ! -f "$WORK/models/resnet152.psm" ]]; then
    step export-inference "$PY" "$HERE/export_models.py" --out "$WORK" --models resnet152 \
      --opsets 17 --batch 8 --no-reference
    step import-inference "$BIN/psimport" "$WORK/resnet152_op17.onnx" -o "$WORK/models/resnet152.psm" \
      --batch 8
  fi
  step preempt "$PY" "$HERE/bench_preempt.py" --bin "$BIN" --out "$WORK/preempt" \
    --models-dir "$WORK/models" --model resnet152 --train-model resnet152_train \
    --train-batch "$BATCH" --requests 100
fi
if [[ -n "${OUT:-}" ]]; then
  cp -f "$WORK"/preempt/preempt.json "$LOGS/" 2>/dev/null
  tar -C "$WORK" -czf "$OUT/train-logs.tar.gz" train-logs && echo "gpu-train-check: logs in \$OUT/train-logs.tar.gz"
fi
exit $rc
