#!/usr/bin/env bash
# Session 26, first call: gpu-check --gpu-only on the executables not yet run on the mma.sync
# FusedAttention (test_gpu_executor with bert_tiny's two FusedAttention, test_e2e,
# test_gpu_plan_layout, test_gpu_runtime) and on test_cuda_core (PS_KERNELS_FATBIN), the
# FusedAttention [gpu] case against float64; then BERT-base inference A/B in the same lease:
# the binaries' kernel (v1: 16-byte fragment loads, float4 output) against session 25's
# (v0.fatbin through PS_KERNELS_FATBIN) and without the fusion, TF32 and fp32, twice each.
# Logs in $OUT/all.tgz, saved after each stage.
set -u
mkdir -p /tmp/b /tmp/w && { [[ -d /tmp/b/bin ]] || tar -C /tmp/b -xJf .gpu-pack/b.tar.xz; }
R=$OUT; L=/tmp/logs; mkdir -p $L
save() { tar -C $L -czf /tmp/all.tgz . && cp /tmp/all.tgz $R/all.tgz; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu --format=csv > $L/gpu.txt 2>&1; cat $L/gpu.txt
OUT=$L/gpu-check timeout 240 bash scripts/gpu-check.sh /tmp/b --gpu-only --no-bench > $L/gpu-check.txt 2>&1; echo "gpu-check: exit $?"
tail -22 $L/gpu-check.txt
save
. scripts/gpu-env.sh; gpu_env /tmp/b; B=/tmp/b/bin
timeout 60 /tmp/b/tests/test_gpu_grad_ops "GPU FusedAttention forward against float64" -s > $L/fused-gpu-test.log 2>&1; echo "fused test: exit $?"; grep -i "max_rel" $L/fused-gpu-test.log | head -8; tail -2 $L/fused-gpu-test.log
timeout 150 python3 scripts/export_models.py --out /tmp/w --models bert_base --opsets 17 --raw > $L/export.log 2>&1
$B/psimport /tmp/w/bert_base_op17.onnx -o /tmp/w/iwith.psm > $L/import.log 2>&1
$B/psimport /tmp/w/bert_base_op17.onnx --skip-passes fuse_attention_softmax -o /tmp/w/iwithout.psm > $L/import-without.log 2>&1
r="--input /tmp/w/bert_base.input_0.bin --input /tmp/w/bert_base.input_1.bin --reference /tmp/w/bert_base.output_0.bin --reference /tmp/w/bert_base.output_1.bin"
for i in 1 2; do for p in tf32 fp32; do for v in v1 v0 without; do
  m=with; f=""; [[ $v == without ]] && m=without; [[ $v == v0 ]] && f=.gpu-pack/v0.fatbin
  PS_KERNELS_FATBIN=$f timeout 30 $B/psbench infer /tmp/w/i$m.psm --precision $p --runs 50 $r > $L/infer-$v-$p-$i.log 2>&1
  echo "$v $p $i: $(grep 'GPU time' $L/infer-$v-$p-$i.log) $(grep -c OK $L/infer-$v-$p-$i.log) OK $(grep -o 'relative error [0-9.e-]*' $L/infer-$v-$p-$i.log | tr '\n' ' ')"
done; done; done | tee $L/infer.txt
save
for v in v1 v0; do for p in tf32 fp32; do
  f=""; [[ $v == v0 ]] && f=.gpu-pack/v0.fatbin
  PS_KERNELS_FATBIN=$f timeout 30 $B/psbench infer /tmp/w/iwith.psm --precision $p --runs 20 --profile > $L/profile-$v-$p.log 2>&1
  echo "$v $p: $(grep -m1 FusedAttention $L/profile-$v-$p.log)"
done; done
save
