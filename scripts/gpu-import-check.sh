#!/usr/bin/env bash
# On the GPU machine (which has PyTorch): exports the evaluation's models from PyTorch at several
# opsets (scripts/export_models.py) and imports each with psimport, printing every summary.
# Usage: scripts/gpu-import-check.sh BUNDLE_DIR WORK_DIR
set -uo pipefail
BUNDLE="${1:?bundle dir}"; WORK="${2:?work dir}"
export LD_LIBRARY_PATH="$(cd "$BUNDLE/lib" && pwd)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PATH=/opt/torch/.venv/bin:$PATH PYTHONUNBUFFERED=1
HERE="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$WORK"
python3 "$HERE/export_models.py" --out "$WORK" --no-reference --external \
  --opsets resnet152:13,resnet152:18,inception_v3:13,inception_v3:17,bert_base:14,bert_base:17 \
  2>&1 | grep -v -i "warn"
python3 "$HERE/export_models.py" --out "$WORK/dynamic" --no-reference --dynamic \
  --models bert_base,resnet152 --opsets 17 2>&1 | grep -v -i "warn"
fail=0
for f in "$WORK"/*.onnx "$WORK"/dynamic/*.onnx; do
  echo; echo "=== psimport $(basename "$f")"
  "$BUNDLE/bin/psimport" "$f" -o "${f%.onnx}.psm" --batch 8 --seq 251 --grouping blocks 2>/dev/null \
    || { echo "FAILED: $f"; "$BUNDLE/bin/psimport" "$f" -o "${f%.onnx}.psm" --batch 8 --seq 251 -q; fail=1; }
done
echo; echo "=== training-mode import (resnet152 opset 17, dynamic batch -> 64)"
"$BUNDLE/bin/psimport" "$WORK/dynamic/resnet152_op17.onnx" -o "$WORK/r152_train.psm" --batch 64 --mode training -q \
  && "$BUNDLE/bin/psimport" --info "$WORK/r152_train.psm" | grep -E "layers|groups|activations" || fail=1
exit $fail
