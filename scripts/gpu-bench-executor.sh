#!/usr/bin/env bash
# On the GPU machine: the executor's benchmark beside PyTorch eager (issue 4).
#  1. exports resnet152, inception_v3 and bert_base from PyTorch (scripts/export_models.py,
#     opset 17, batch 8, BERT seq 251) with raw reference inputs/outputs (--raw);
#  2. imports each with psimport;
#  3. runs `psbench infer` for fp32 and tf32, without and with --graph, comparing the output
#     with PyTorch's reference, and a per-layer profile (tf32) of every model;
#  4. runs scripts/torch_bench.py (PyTorch eager, same models, inputs and precisions);
#  5. prints one table: our median GPU time, PyTorch's, and the ratio (ours / PyTorch: the
#     target is <= 1.0, the goal 0.7), with the reference errors.
# Usage: scripts/gpu-bench-executor.sh BUNDLE_DIR WORK_DIR   (BUNDLE_DIR has bin/ and lib/)
# Logs: WORK_DIR/logs/*.log; results: WORK_DIR/results/*.json(l). Exit status 1 if any step
# failed (the table still prints what was measured).
set -euo pipefail
BUNDLE="$(cd "${1:?usage: gpu-bench-executor.sh BUNDLE_DIR WORK_DIR}" && pwd)"
WORK="${2:?usage: gpu-bench-executor.sh BUNDLE_DIR WORK_DIR}"
HERE="$(cd "$(dirname "$0")" && pwd)"
MODELS="${MODELS:-resnet152 inception_v3 bert_base}"
RUNS="${RUNS:-100}"
WARMUP="${WARMUP:-20}"
OPSET="${OPSET:-17}"
export LD_LIBRARY_PATH="$BUNDLE/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PATH=/opt/torch/.venv/bin:$PATH PYTHONUNBUFFERED=1
mkdir -p "$WORK/logs" "$WORK/results"
WORK="$(cd "$WORK" && pwd)"
LOGS="$WORK/logs"; RESULTS="$WORK/results"
PSBENCH="$BUNDLE/bin/psbench"; PSIMPORT="$BUNDLE/bin/psimport"
for tool in "$PSBENCH" "$PSIMPORT"; do
  [[ -x "$tool" ]] || { echo "gpu-bench-executor: $tool is missing or not executable" >&2; exit 1; }
done
command -v python3 >/dev/null || { echo "gpu-bench-executor: python3 not found" >&2; exit 1; }
failed=0
step() { echo "== $*"; }
fail() { echo "FAILED: $* (see the log named above)" >&2; failed=1; }

rm -f "$RESULTS"/psbench.jsonl "$RESULTS"/torch.jsonl
csv_models="$(echo $MODELS | tr ' ' ',')"

step "export $csv_models (opset $OPSET) with raw references -> $WORK (log: $LOGS/export.log)"
if ! python3 "$HERE/export_models.py" --out "$WORK" --models "$csv_models" --opsets "$OPSET" \
    --batch 8 --seq 251 --raw >"$LOGS/export.log" 2>&1; then
  fail "export"; tail -20 "$LOGS/export.log" >&2; exit 1
fi

for m in $MODELS; do
  onnx="$WORK/${m}_op${OPSET}.onnx"; psm="$WORK/$m.psm"
  step "psimport $m (log: $LOGS/import_$m.log)"
  if ! "$PSIMPORT" "$onnx" -o "$psm" --batch 8 --seq 251 >"$LOGS/import_$m.log" 2>&1; then
    fail "psimport $m"; tail -20 "$LOGS/import_$m.log" >&2; continue
  fi
  # The raw files, in the model's input/output order (export_models.py --raw).
  io=()
  for f in "$WORK/$m".input_*.bin; do io+=(--input "$f"); done
  for f in "$WORK/$m".output_*.bin; do io+=(--reference "$f"); done
  for p in fp32 tf32; do
    for g in "" "--graph"; do
      tag="${m}_${p}${g:+_graph}"
      step "psbench infer $m $p ${g:-(enqueue)} (log: $LOGS/infer_$tag.log)"
      rc=0
      "$PSBENCH" infer "$psm" --label "$m" --precision "$p" $g --runs "$RUNS" --warmup "$WARMUP" \
        "${io[@]}" --json >"$RESULTS/infer_$tag.json" 2>"$LOGS/infer_$tag.log" || rc=$?
      if [[ $rc -eq 0 || $rc -eq 3 ]]; then
        cat "$RESULTS/infer_$tag.json" >>"$RESULTS/psbench.jsonl"
        if [[ $rc -eq 3 ]]; then fail "$m $p: output above the reference tolerance"; fi
      else
        fail "psbench infer $m $p $g (exit $rc)"; cat "$LOGS/infer_$tag.log" >&2
      fi
    done
  done
  step "psbench infer $m tf32 --profile (log: $LOGS/profile_$m.log)"
  "$PSBENCH" infer "$psm" --label "$m" --precision tf32 --runs 20 --warmup 5 --profile \
    --profile-top 25 >"$LOGS/profile_$m.log" 2>&1 || fail "profile $m"
done

step "PyTorch eager: scripts/torch_bench.py (log: $LOGS/torch.log)"
if ! python3 "$HERE/torch_bench.py" --models "$csv_models" --precisions fp32,tf32 \
    --runs "$RUNS" --warmup "$WARMUP" --out "$RESULTS/torch.jsonl" >"$LOGS/torch.log" 2>&1; then
  fail "torch_bench"; tail -20 "$LOGS/torch.log" >&2
fi

step "results (GPU time per batch-8 request, median of $RUNS runs, ms; ratio = ours / PyTorch eager)"
python3 - "$RESULTS/psbench.jsonl" "$RESULTS/torch.jsonl" <<'EOF'
import json, os, sys
def load(path):
    rows = []
    if os.path.exists(path):
        for line in open(path):
            line = line.strip()
            if line.startswith("{"):
                rows.append(json.loads(line))
    return rows
ours, torch = load(sys.argv[1]), load(sys.argv[2])
ref = {(r["model"], r["precision"]): r for r in torch}
print(f"{'model':13} {'prec':5} {'mode':8} {'ours':>9} {'p10':>8} {'p90':>8} {'wall':>8} "
      f"{'torch':>9} {'ratio':>6}  max rel error vs PyTorch")
for r in ours:
    t = ref.get((r["model"], r["precision"]))
    tm = t["gpu_ms"]["median"] if t else float("nan")
    g = r["gpu_ms"]
    errs = ", ".join(f"{k} {v:.2e}" for k, v in r.get("max_rel_error", {}).items())
    ok = "" if r.get("within_tolerance", True) else "  ABOVE TOLERANCE"
    print(f"{r['model']:13} {r['precision']:5} {'graph' if r['graph'] else 'enqueue':8} "
          f"{g['median']:9.3f} {g['p10']:8.3f} {g['p90']:8.3f} {r['wall_ms']['median']:8.3f} "
          f"{tm:9.3f} {g['median'] / tm if t else float('nan'):6.2f}  {errs}{ok}")
for t in torch:
    print(f"torch eager {t['model']} {t['precision']}: gpu median {t['gpu_ms']['median']:.3f} ms, "
          f"wall median {t['wall_ms']['median']:.3f} ms ({t.get('torch')}, {t.get('device')})")
EOF
echo "per-layer profiles (tf32): $LOGS/profile_*.log"
for m in $MODELS; do
  if [[ -f "$LOGS/profile_$m.log" ]]; then echo; echo "--- $m"; sed -n '1,45p' "$LOGS/profile_$m.log"; fi
done
exit $failed
