#!/usr/bin/env bash
# Session 26, second and third leases (`ab.sh v2 v1`, `ab.sh v3 v2 v4`): the FusedAttention
# kernel NEW (embedded in the binaries) against OLD and any further ones (.gpu-pack/NAME.fatbin
# through PS_KERNELS_FATBIN) and without the fusion, BERT-base inference TF32 and fp32, twice;
# the FusedAttention [gpu] case against float64 for each; gpu-check --gpu-only on
# test_gpu_executor, test_cuda_core, test_gpu_grad_ops and test_gpu_kernel_ops (unless
# SKIP_CHECK=1); Nsight Compute on one launch of each. Fourth lease: `ab.sh v3 v5 v6`.
# An OLD or further kernel's fatbin (sm_90 is enough on an H100 or H200), built here from its
# tree after `make build`:
#   nvcc -fatbin -gencode arch=compute_90,code=sm_90 -Xfatbin=-compress-all -std=c++20 -O3 \
#     -I . -o .gpu-pack/NAME.fatbin build/cuda/kernels/all_kernels.cu
set -u
NEW=$1; shift; OTHERS="$*"
mkdir -p /tmp/b /tmp/w && { [[ -d /tmp/b/bin ]] || tar -C /tmp/b -xJf .gpu-pack/b.tar.xz; }
R=$OUT; L=/tmp/logs-$NEW; mkdir -p $L
save() { tar -C $L -czf /tmp/all-$NEW.tgz . && cp /tmp/all-$NEW.tgz $R/all.tgz; }
. scripts/gpu-env.sh; gpu_env /tmp/b; B=/tmp/b/bin
for v in $NEW $OTHERS; do
  f=""; [[ $v != $NEW ]] && f=.gpu-pack/$v.fatbin
  PS_KERNELS_FATBIN=$f timeout 60 /tmp/b/tests/test_gpu_grad_ops "GPU FusedAttention forward against float64" -s > $L/fused-gpu-test-$v.log 2>&1; echo "fused test $v: exit $?"; grep -o "Y *[a-z0-9]*: max_rel [0-9.e-]*" $L/fused-gpu-test-$v.log | sed -n '1~2p' | tr '\n' ';'; tail -2 $L/fused-gpu-test-$v.log
done
timeout 150 python3 scripts/export_models.py --out /tmp/w --models bert_base --opsets 17 --raw > $L/export.log 2>&1
$B/psimport /tmp/w/bert_base_op17.onnx -o /tmp/w/iwith.psm > $L/import.log 2>&1
$B/psimport /tmp/w/bert_base_op17.onnx --skip-passes fuse_attention_softmax -o /tmp/w/iwithout.psm > $L/import-without.log 2>&1
r="--input /tmp/w/bert_base.input_0.bin --input /tmp/w/bert_base.input_1.bin --reference /tmp/w/bert_base.output_0.bin --reference /tmp/w/bert_base.output_1.bin"
for i in 1 2; do for p in tf32 fp32; do for v in $NEW $OTHERS without; do
  m=with; f=""; [[ $v == without ]] && m=without; [[ $v != $NEW && $v != without ]] && f=.gpu-pack/$v.fatbin
  PS_KERNELS_FATBIN=$f timeout 30 $B/psbench infer /tmp/w/i$m.psm --precision $p --runs 50 $r > $L/infer-$v-$p-$i.log 2>&1
  echo "$v $p $i: $(grep 'GPU time' $L/infer-$v-$p-$i.log) $(grep -c OK $L/infer-$v-$p-$i.log) OK $(grep -o 'relative error [0-9.e-]*' $L/infer-$v-$p-$i.log | tr '\n' ' ')"
done; done; done | tee $L/infer.txt
save
for v in $NEW $OTHERS; do for p in tf32 fp32; do
  f=""; [[ $v != $NEW && $v != without ]] && f=.gpu-pack/$v.fatbin
  PS_KERNELS_FATBIN=$f timeout 30 $B/psbench infer /tmp/w/iwith.psm --precision $p --runs 20 --profile > $L/profile-$v-$p.log 2>&1
  echo "$v $p: $(grep -m1 FusedAttention $L/profile-$v-$p.log)"
done; done
save
[[ -z ${SKIP_CHECK:-} ]] && OUT=$L/gpu-check timeout 200 bash scripts/gpu-check.sh /tmp/b --gpu-only --no-bench > $L/gpu-check.txt 2>&1; echo "gpu-check: exit $?"
tail -12 $L/gpu-check.txt
save
NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null)
for v in $NEW $OTHERS; do
  f=""; [[ $v != $NEW ]] && f=.gpu-pack/$v.fatbin
  [[ -n "$NCU" ]] && PS_KERNELS_FATBIN=$f timeout 100 $NCU --kernel-name regex:ps_fused_attention --launch-skip 12 --launch-count 1 \
    --section SpeedOfLight --section WarpStateStats --section Occupancy --section InstructionStats --section SchedulerStats --section LaunchStats \
    $B/psbench infer /tmp/w/iwith.psm --precision tf32 --runs 2 --warmup 1 > $L/ncu-$v.txt 2>&1
  echo "ncu $v:"; grep -E "Duration|Executed Ipc A|Issued Instructions  |Warp Cycles Per Issued|Eligible Warps" $L/ncu-$v.txt | head -6
  save
done
