#!/usr/bin/env bash
# The paper's evaluation, figures 5-9, in one command (issue 8): starts pipeswitchd per
# configuration, runs the paper's clients over loopback TCP and the PyTorch peers, writes
# docs/results/ (CSV, PNG, machine.json, run.json) and docs/results.md.
#   scripts/reproduce.sh [--quick] [--cpu] [--out DIR] [--bin DIR] [...]   (--help: every option)
# GPU machine: scripts/gpu-reproduce.sh wraps it for a bundle. docs/reproduce.md explains it.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
PY="${PYTHON:-python3}"
# The PyTorch venv of the GPU machine has matplotlib; prefer it when present.
if [[ -z "${PYTHON:-}" && -x /opt/torch/.venv/bin/python3 ]]; then PY=/opt/torch/.venv/bin/python3; fi
export PYTHONUNBUFFERED=1
exec "$PY" "$HERE/repro/run.py" "$@"
