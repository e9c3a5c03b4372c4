#!/usr/bin/env bash
# Session 25, second lease: the FusedAttention kernel rewritten on mma.sync (registers, cp.async
# double buffer): its [gpu] case, BERT-base inference with and without fuse_attention_softmax
# (TF32 three rounds, fp32 two), the profile, then test_gpu_grad_ops, test_gpu_backend and
# test_e2e whole. Logs in $OUT/all.tgz, saved after each stage.
set -u
mkdir -p /tmp/b /tmp/w && { [[ -d /tmp/b/bin ]] || tar -C /tmp/b -xJf .gpu-pack/b.tar.xz; }
. scripts/gpu-env.sh; gpu_env /tmp/b
L=/tmp/logs; mkdir -p $L; B=/tmp/b/bin
save() { tar -C $L -czf /tmp/all.tgz . && cp /tmp/all.tgz "$OUT/all.tgz"; }
timeout 90 /tmp/b/tests/test_gpu_grad_ops "GPU FusedAttention forward against float64" -s > $L/fused-gpu-test.log 2>&1; echo "fused test: exit $?"; grep -i "max_rel" $L/fused-gpu-test.log | head -8; tail -3 $L/fused-gpu-test.log
save
[[ -f /tmp/w/bert_base_op17.onnx ]] || timeout 150 python3 scripts/export_models.py --out /tmp/w --models bert_base --opsets 17 --raw > $L/export.log 2>&1
$B/psimport /tmp/w/bert_base_op17.onnx -o /tmp/w/iwith.psm > $L/import.log 2>&1
$B/psimport /tmp/w/bert_base_op17.onnx --skip-passes fuse_attention_softmax -o /tmp/w/iwithout.psm > $L/import-without.log 2>&1
r="--input /tmp/w/bert_base.input_0.bin --input /tmp/w/bert_base.input_1.bin --reference /tmp/w/bert_base.output_0.bin --reference /tmp/w/bert_base.output_1.bin"
for i in 1 2 3; do for p in tf32 fp32; do for v in with without; do
  [[ $p == fp32 && $i -gt 2 ]] && continue
  timeout 30 $B/psbench infer /tmp/w/i$v.psm --precision $p --runs 50 $r > $L/infer-$v-$p-$i.log 2>&1
  echo "$v $p $i: $(grep 'GPU time' $L/infer-$v-$p-$i.log) $(grep -c OK $L/infer-$v-$p-$i.log) OK"
done; done; done | tee $L/infer.txt
save
for p in tf32 fp32; do
  timeout 30 $B/psbench infer /tmp/w/iwith.psm --precision $p --runs 20 --profile > $L/profile-with-$p.log 2>&1
  grep -m2 FusedAttention $L/profile-with-$p.log
done
save
for t in test_gpu_grad_ops test_gpu_backend test_e2e; do
  timeout 240 /tmp/b/tests/$t > $L/$t.log 2>&1; echo "$t: exit $? $(tail -2 $L/$t.log | head -1)"
  save
done
