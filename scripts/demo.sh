#!/usr/bin/env bash
# The demo of what is built so far (make demo runs it after the build):
#   1. writes the built-in model zoo as ONNX files (psimport --zoo),
#   2. imports each into a model package (.psm) and prints the importer's summary,
#   3. checks and describes one package (psimport --info),
#   4. on a machine with an NVIDIA GPU, measures the host<->GPU copy bandwidth (psbench copy),
#      the floor under every model switch.
#   5. starts pipeswitchd on the packages and sends inference requests with psnc: on a GPU once
#      with --policy ready (every model resident: the lower bound) and once with --policy
#      pipeswitch (each request switches its model in, pipelined), so the table shows what a
#      switch costs; without a GPU once, on the CPU backend.
#   6. trains the first model (imported for training: psimport --mode training) with a job that
#      inference requests preempt, and shows the job's progress and preemptions (JOBS).
# Without a GPU it uses the tiny zoo models and the CPU backend, and says so.
# Usage: scripts/demo.sh [BUILD_DIR]    (default: build; a bundle from scripts/bundle.sh, whose
#        tools are in bin/, works too: that is how it runs on a GPU machine without a build)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD="${1:-build}"
tool() {  # tool NAME: its path in a build directory or in a bundle
  if [[ -x "$BUILD/bin/$1" ]]; then echo "$BUILD/bin/$1"; else echo "$BUILD/tools/$1/$1"; fi
}
PSIMPORT="$(tool psimport)"
PSBENCH="$(tool psbench)"
[[ -x "$PSIMPORT" ]] || { echo "demo: $PSIMPORT is missing: run 'make build' first" >&2; exit 1; }
OUT_DIR="${DEMO_DIR:-out/demo}"
mkdir -p "$OUT_DIR"

if "$PSBENCH" copy --help >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  GPU=1
  MODELS=(resnet152 inception_v3 bert_base)
  echo "demo: GPU found ($(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)); using the full zoo models"
else
  GPU=0
  MODELS=(resnet_tiny inception_tiny bert_tiny)
  echo "demo: no NVIDIA GPU here; using the tiny zoo models (the GPU parts are skipped)"
fi

summary=()
for m in "${MODELS[@]}"; do
  echo
  echo "== $m"
  "$PSIMPORT" --zoo "$m" -o "$OUT_DIR/$m.onnx"
  args=(--batch 8)
  [[ "$m" == bert* ]] && args+=(--seq "$([[ $m == bert_tiny ]] && echo 16 || echo 251)")
  start=$(date +%s%N)
  "$PSIMPORT" "$OUT_DIR/$m.onnx" -o "$OUT_DIR/$m.psm" "${args[@]}"
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  summary+=("$(printf '%-16s %10s %10s %8d ms' "$m" "$(du -h "$OUT_DIR/$m.onnx" | cut -f1)" \
               "$(du -h "$OUT_DIR/$m.psm" | cut -f1)" "$ms")")
done

TRAIN_MODEL="${MODELS[0]}_train"
echo
echo "== psimport --mode training: $TRAIN_MODEL (BatchNorm kept as a layer) for the training job"
"$PSIMPORT" "$OUT_DIR/${MODELS[0]}.onnx" -o "$OUT_DIR/$TRAIN_MODEL.psm" --batch 8 --mode training |
  tail -3

echo
echo "== psimport --info $OUT_DIR/${MODELS[0]}.psm"
"$PSIMPORT" --info "$OUT_DIR/${MODELS[0]}.psm"

if ((GPU)); then
  echo
  echo "== psbench copy (pinned host memory <-> the GPU's memory pool)"
  "$PSBENCH" copy --max-size 1G
fi

echo
echo "== pipeswitchd: the server on the zoo models, with psnc sending requests"
PSD="$(tool pipeswitchd)"
PSNC="$(tool psnc)"
if [[ -x "$PSD" && -x "$PSNC" ]]; then
  POLICIES=(pipeswitch); ((GPU)) && POLICIES=(ready pipeswitch)
  for policy in "${POLICIES[@]}"; do
    LOG="$OUT_DIR/pipeswitchd_$policy.log"
    DEVICE=cpu; ((GPU)) && DEVICE=auto
    # --reuse-region off: each of a model's 10 requests below switches it in (by default a
    # request for the model the switch region still holds runs without a switch).
    FLAGS=(--device "$DEVICE" --policy "$policy" --models "$OUT_DIR")
    [[ "$policy" == pipeswitch ]] && FLAGS+=(--reuse-region off)
    echo "-- pipeswitchd ${FLAGS[*]}"
    "$PSD" "${FLAGS[@]}" --listen 127.0.0.1:0 >"$LOG" 2>&1 &
    PSD_PID=$!
    for _ in $(seq 900); do
      grep -q "listening on" "$LOG" && break
      kill -0 $PSD_PID 2>/dev/null || break
      sleep 0.2
    done
    cat "$LOG"
    ADDR=$(grep -m1 "listening on" "$LOG" | sed 's/.*listening on //')
    if [[ -n "$ADDR" ]]; then
      # Round-robin, so under pipeswitch every request finds another model on the GPU.
      for m in "${MODELS[@]}" "${MODELS[@]}"; do "$PSNC" --server "$ADDR" infer "$m" >/dev/null; done
      for m in "${MODELS[@]}"; do
        echo "-- [$policy] psnc infer $m --repeat 10"
        "$PSNC" --server "$ADDR" infer "$m" --repeat 10 | tail -1
      done
      if [[ "$policy" == pipeswitch ]]; then
        echo "-- [$policy] psnc train $TRAIN_MODEL lr=0.01; inference requests while it trains; STOP"
        # (Not `tee /dev/stderr`: where stderr is a log file, opening it again truncates it.)
        REPLY_LINE=$("$PSNC" --server "$ADDR" train "$TRAIN_MODEL" lr=0.01)
        echo "$REPLY_LINE"
        JOB=$(sed -n 's/^OK job=\([0-9]*\).*/\1/p' <<< "$REPLY_LINE")
        sleep 2
        "$PSNC" --server "$ADDR" infer "${MODELS[0]}" --repeat 10 | tail -1
        [[ -n "$JOB" ]] && printf 'STOP %s\nQUIT\n' "$JOB" | "$PSNC" "$ADDR"
        sleep 1
        printf 'JOBS\nQUIT\n' | "$PSNC" "$ADDR"
      fi
      printf 'STATS\nQUIT\n' | "$PSNC" "$ADDR"
    fi
    kill -TERM $PSD_PID 2>/dev/null || true
    wait $PSD_PID || true
  done
fi

echo
printf '%-16s %10s %10s %10s\n' model onnx psm import
printf '%s\n' "${summary[@]}"
echo "demo: packages are in $OUT_DIR"
