#!/usr/bin/env bash
# Session 26, second call (same lease; s26a.sh unpacked /tmp/b and exported /tmp/w): the PyTorch
# peers in the same lease (torch_bench.py ready BERT-base, TF32 and fp32; sdpa_peer.py for one
# attention launch), the SASS of the attention kernels (v1 embedded in the binaries, v0 from
# v0.fatbin) where cuobjdump exists, then Nsight Compute on one FusedAttention launch of each.
set -u
mkdir -p /tmp/b /tmp/w && { [[ -d /tmp/b/bin ]] || tar -C /tmp/b -xJf .gpu-pack/b.tar.xz; }
R=$OUT; L=/tmp/logs2; mkdir -p $L
save() { tar -C $L -czf /tmp/all2.tgz . && cp /tmp/all2.tgz $R/all.tgz; }
. scripts/gpu-env.sh; gpu_env /tmp/b; B=/tmp/b/bin
[[ -f /tmp/w/bert_base_op17.onnx ]] || timeout 150 python3 scripts/export_models.py --out /tmp/w --models bert_base --opsets 17 --raw > $L/export.log 2>&1
[[ -f /tmp/w/iwith.psm ]] || $B/psimport /tmp/w/bert_base_op17.onnx -o /tmp/w/iwith.psm > $L/import.log 2>&1
timeout 150 python3 scripts/torch_bench.py --models bert_base --precisions tf32,fp32 --runs 50 --warmup 10 > $L/torch.jsonl 2> $L/torch.log
echo "torch: exit $?"; tail -4 $L/torch.log
timeout 90 python3 docs/measurements/2026-12-08-h100-s26/sdpa_peer.py > $L/sdpa.txt 2>&1; cat $L/sdpa.txt
save
CUOBJ=$(command -v cuobjdump || ls /usr/local/cuda/bin/cuobjdump 2>/dev/null)
if [[ -n "$CUOBJ" ]]; then
  $CUOBJ -sass -fun ps_fused_attention_d64_tf32 .gpu-pack/v0.fatbin > $L/v0-d64-tf32.sass 2>&1
  $CUOBJ -lelf $B/psbench > /dev/null 2>&1
  for f in ps_fused_attention_d64_tf32 ps_fused_attention_d64_f32; do
    $CUOBJ -sass -fun $f $B/psbench > $L/v1-${f#ps_fused_attention_}.sass 2>&1; done
  wc -l $L/*.sass
else echo "no cuobjdump"; fi
save
NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null); echo "ncu: ${NCU:-none}"
for v in v1 v0; do
  f=""; [[ $v == v0 ]] && f=.gpu-pack/v0.fatbin
  [[ -n "$NCU" ]] && PS_KERNELS_FATBIN=$f timeout 120 $NCU --kernel-name regex:ps_fused_attention --launch-skip 12 --launch-count 1 \
    --section SpeedOfLight --section WarpStateStats --section MemoryWorkloadAnalysis --section MemoryWorkloadAnalysis_Tables \
    --section Occupancy --section LaunchStats --section ComputeWorkloadAnalysis --section SchedulerStats --section InstructionStats \
    $B/psbench infer /tmp/w/iwith.psm --precision tf32 --runs 2 --warmup 1 > $L/ncu-$v.txt 2>&1
  grep -E "Duration|Throughput|Stall|Warp Cycles|Achieved|Issued|ERR|Hit Rate|Registers|Bank|Eligible|Executed Ipc" $L/ncu-$v.txt | head -40
  save
done
