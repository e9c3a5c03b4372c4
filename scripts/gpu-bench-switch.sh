#!/usr/bin/env bash
# On the GPU machine: the switching benchmark (issue 6), client-measured over loopback TCP.
#  1. exports resnet152, inception_v3 and bert_base from PyTorch (opset 17, batch 8, BERT seq
#     251) into WORK unless WORK already holds them (gpu-bench-executor.sh writes the same files);
#  2. imports each with psimport (per-layer groups, the units the optimal grouping merges) into
#     WORK/models/MODEL.psm;
#  3. runs scripts/bench_switch.py: pipeswitchd under every policy and grouping, psnc requests,
#     the table with the target check.
# Usage: scripts/gpu-bench-switch.sh BUNDLE_DIR WORK_DIR [bench_switch.py options...]
# Logs and results: WORK_DIR/switch/ (WORK_DIR/$OUT_NAME/ with OUT_NAME set). Exit status 1 if
# a step failed or a target was missed.
set -euo pipefail
BUNDLE="$(cd "${1:?usage: gpu-bench-switch.sh BUNDLE_DIR WORK_DIR [options]}" && pwd)"
WORK="${2:?usage: gpu-bench-switch.sh BUNDLE_DIR WORK_DIR [options]}"
shift 2
HERE="$(cd "$(dirname "$0")" && pwd)"
MODELS="${MODELS:-resnet152 inception_v3 bert_base}"
OPSET="${OPSET:-17}"
. "$HERE/gpu-env.sh"
gpu_env "$BUNDLE"
OUT_NAME="${OUT_NAME:-switch}"
mkdir -p "$WORK/models" "$WORK/$OUT_NAME"
WORK="$(cd "$WORK" && pwd)"
RES="$WORK/$OUT_NAME"
csv_models="$(echo $MODELS | tr ' ' ',')"

missing=0
for m in $MODELS; do [[ -f "$WORK/${m}_op${OPSET}.onnx" ]] || missing=1; done
if ((missing)); then
  echo "== export $csv_models (opset $OPSET) -> $WORK"
  python3 "$HERE/export_models.py" --out "$WORK" --models "$csv_models" --opsets "$OPSET" \
    --batch 8 --seq 251 --no-reference >"$RES/export.log" 2>&1 ||
    { tail -20 "$RES/export.log" >&2; exit 1; }
fi
for m in $MODELS; do
  [[ -f "$WORK/models/$m.psm" ]] && continue
  echo "== psimport $m (per-layer groups)"
  "$BUNDLE/bin/psimport" "$WORK/${m}_op${OPSET}.onnx" -o "$WORK/models/$m.psm" --batch 8 --seq 251 \
    -q >"$RES/import_$m.log" 2>&1 || { cat "$RES/import_$m.log" >&2; exit 1; }
done
echo "== bench_switch.py (logs: $RES/server_*.log)"
python3 "$HERE/bench_switch.py" --bin "$BUNDLE/bin" --models-dir "$WORK/models" \
  --out "$RES" --models "$csv_models" "$@"
