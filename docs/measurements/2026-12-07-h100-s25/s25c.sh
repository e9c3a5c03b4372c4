#!/usr/bin/env bash
# Session 25, third lease: gpu-check --gpu-only on test_gpu_executor (bert_tiny imported with
# fuse_attention_softmax), test_e2e, test_gpu_plan_layout and test_gpu_runtime (device time was
# short), then Nsight Compute on one FusedAttention launch of BERT-base where the machine allows.
set -u
mkdir -p /tmp/b /tmp/w && { [[ -d /tmp/b/bin ]] || tar -C /tmp/b -xJf .gpu-pack/b.tar.xz; }
R=$OUT; export OUT=/tmp/gc; mkdir -p $OUT
save() { tar -C $OUT -czf /tmp/all.tgz . && cp /tmp/all.tgz $R/all.tgz; }
timeout 300 bash scripts/gpu-check.sh /tmp/b --gpu-only --no-bench > $OUT/gpu-check.txt 2>&1; echo "gpu-check: exit $?"
tail -25 $OUT/gpu-check.txt
save
. scripts/gpu-env.sh; gpu_env /tmp/b; B=/tmp/b/bin
timeout 150 python3 scripts/export_models.py --out /tmp/w --models bert_base --opsets 17 --raw > $OUT/export.log 2>&1
$B/psimport /tmp/w/bert_base_op17.onnx -o /tmp/w/iwith.psm > $OUT/import.log 2>&1
NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null); echo "ncu: ${NCU:-none}"
[[ -n "$NCU" ]] && timeout 120 $NCU --kernel-name regex:ps_fused_attention --launch-skip 12 --launch-count 1 \
  --section SpeedOfLight --section WarpStateStats --section MemoryWorkloadAnalysis --section Occupancy --section LaunchStats \
  $B/psbench infer /tmp/w/iwith.psm --precision tf32 --runs 2 --warmup 1 > $OUT/ncu.txt 2>&1
grep -E "Duration|Throughput|Stall|Warp Cycles|Achieved|Issued|ERR|L2 Hit|Registers" $OUT/ncu.txt | head -40
save
