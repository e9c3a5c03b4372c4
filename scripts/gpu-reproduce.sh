#!/usr/bin/env bash
# On the GPU machine: the paper's evaluation (scripts/reproduce.sh) with a bundle's binaries.
#   1. sets the library path (the bundle's lib/, cuDNN from PyTorch's wheel, the toolkit's) and
#      PyTorch's venv (export, peers, matplotlib);
#   2. runs scripts/reproduce.sh --bin BUNDLE/bin --work WORK_DIR [options]: it exports the three
#      models from PyTorch and imports them into WORK_DIR (reused by later runs), then measures;
#   3. with $OUT set (a lent device machine), packs WORK_DIR/logs into $OUT/repro-logs.tar.gz.
# Usage: scripts/gpu-reproduce.sh BUNDLE_DIR WORK_DIR [reproduce.sh options: --quick, --out DIR,
#        --figures 5,9, --append, --prepare-only, ...]
# The bundle needs only bin/ (pipeswitchd, psnc, psimport) and lib/ (scripts/bundle.sh).
# docs/reproduce.md has the device commands and the time budget.
set -uo pipefail
BUNDLE="$(cd "${1:?usage: gpu-reproduce.sh BUNDLE_DIR WORK_DIR [options]}" && pwd)"
WORK="${2:?usage: gpu-reproduce.sh BUNDLE_DIR WORK_DIR [options]}"
shift 2
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/gpu-env.sh"
gpu_env "$BUNDLE"
mkdir -p "$WORK"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
"$HERE/reproduce.sh" --bin "$BUNDLE/bin" --work "$WORK" "$@"
rc=$?
if [[ -n "${OUT:-}" && -d "$WORK/logs" ]]; then
  tar -C "$WORK" -czf "$OUT/repro-logs.tar.gz" logs && echo "gpu-reproduce: logs in \$OUT/repro-logs.tar.gz"
fi
exit $rc
