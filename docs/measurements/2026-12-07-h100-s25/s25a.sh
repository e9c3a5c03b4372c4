#!/usr/bin/env bash
# Session 25, first lease: the FusedAttention kernel with float4 prefetch: its [gpu] case, then
# BERT-base inference with and without fuse_attention_softmax (TF32 three rounds, fp32 one), the
# profile. Logs in $OUT/all.tgz, saved after each stage.
set -u
mkdir -p /tmp/b /tmp/w && { [[ -d /tmp/b/bin ]] || tar -C /tmp/b -xJf .gpu-pack/b.tar.xz; }
. scripts/gpu-env.sh; gpu_env /tmp/b
L=/tmp/logs; mkdir -p $L; B=/tmp/b/bin
save() { tar -C $L -czf /tmp/all.tgz . && cp /tmp/all.tgz "$OUT/all.tgz"; }
timeout 90 /tmp/b/tests/test_gpu_grad_ops "GPU FusedAttention forward against float64" > $L/fused-gpu-test.log 2>&1; echo "fused test: exit $?"; tail -3 $L/fused-gpu-test.log
save
[[ -f /tmp/w/bert_base_op17.onnx ]] || timeout 150 python3 scripts/export_models.py --out /tmp/w --models bert_base --opsets 17 --raw > $L/export.log 2>&1
$B/psimport /tmp/w/bert_base_op17.onnx -o /tmp/w/iwith.psm > $L/import.log 2>&1
$B/psimport /tmp/w/bert_base_op17.onnx --skip-passes fuse_attention_softmax -o /tmp/w/iwithout.psm > $L/import-without.log 2>&1
r="--input /tmp/w/bert_base.input_0.bin --input /tmp/w/bert_base.input_1.bin --reference /tmp/w/bert_base.output_0.bin --reference /tmp/w/bert_base.output_1.bin"
for i in 1 2 3; do for p in tf32 fp32; do for v in with without; do
  [[ $p == fp32 && $i -gt 1 ]] && continue
  timeout 30 $B/psbench infer /tmp/w/i$v.psm --precision $p --runs 50 $r > $L/infer-$v-$p-$i.log 2>&1
  echo "$v $p $i: $(grep 'GPU time' $L/infer-$v-$p-$i.log) $(grep -c OK $L/infer-$v-$p-$i.log) OK"
done; done; done | tee $L/infer.txt
save
timeout 30 $B/psbench infer /tmp/w/iwith.psm --precision tf32 --runs 20 --profile > $L/profile-with.log 2>&1
grep -m3 FusedAttention $L/profile-with.log
save
timeout 30 $B/psbench infer /tmp/w/iwithout.psm --precision tf32 --runs 20 --profile > $L/profile-without.log 2>&1
nvidia-smi > $L/nvidia-smi.txt 2>&1
save
timeout 150 python3 scripts/torch_bench.py --models bert_base --precisions tf32,fp32 --runs 50 > $L/torch-infer.jsonl 2> $L/torch-infer.log
tail -4 $L/torch-infer.log
save
