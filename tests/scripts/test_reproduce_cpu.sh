#!/usr/bin/env bash
# scripts/reproduce.sh --cpu --quick end to end with this build's pipeswitchd and psnc, cut to a
# few points (figures 5, 6 and 9, 3 warm-up + 5 measured rounds, figure 6 at cycles of 0.5 s,
# its kill-restart series in a second, appending run), then check that the page shows the CSVs' numbers. Usage: test_reproduce_cpu.sh BUILD_DIR WORK_DIR
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
BUILD="${1:?build dir}"
WORK="${2:?work dir}"
rm -rf "$WORK"
mkdir -p "$WORK"
"$HERE/../../scripts/reproduce.sh" --cpu --quick --bin "$BUILD" --out "$WORK/docs" \
  --work "$WORK/work" --figures 5,6,9 --warmup 3 --requests 5 --cycles 0.5 --window 1 \
  --train-warm 0.2 --fig6-series ready,pipeswitch
# The full mode on a GPU is split over several commands (--append, docs/reproduce.md): figure 6's
# kill-restart series measured alone must join the earlier run's series, not replace them.
"$HERE/../../scripts/reproduce.sh" --cpu --quick --bin "$BUILD" --out "$WORK/docs" \
  --work "$WORK/work" --figures 6 --warmup 3 --requests 5 --cycles 0.5 --window 1 \
  --train-warm 0.2 --fig6-series kill-restart --append
"${PYTHON:-python3}" "$HERE/check_results_page.py" "$WORK/docs/results" "$WORK/docs/results.md" \
  --figures 5,6,9
# Every point the CPU backend can measure was measured: only the PyTorch peers (GPU only) and,
# without training on this build, the training points may be missing.
"${PYTHON:-python3}" - "$WORK/docs/results" <<'PY'
import csv, os, sys
bad = []
for f in ("fig5.csv", "fig6.csv", "fig9.csv"):
    for r in csv.DictReader(open(os.path.join(sys.argv[1], f))):
        s = r["status"]
        if s == "ok" or s.startswith("not available (the PyTorch peers") or \
                s.startswith("not available (training not implemented"):
            continue
        bad.append("%s %s %s: %s" % (f, r["series"], r.get("model") or r.get("cycle_s"), s))
series = [r["series"] for r in csv.DictReader(open(os.path.join(sys.argv[1], "fig6.csv")))]
if series != ["ready", "pipeswitch", "kill-restart"]:
    bad.append("fig6.csv after --append: series %s, want ready, pipeswitch, kill-restart" % series)
for b in bad:
    print("UNEXPECTED: " + b)
sys.exit(1 if bad else 0)
PY
echo "test_reproduce_cpu: ok"
