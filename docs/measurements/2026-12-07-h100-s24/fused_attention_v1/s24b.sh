#!/usr/bin/env bash
# Session 24's second lease: FusedAttention (fuse_attention_softmax, inference): its [gpu] case
# and the attention cases, BERT-base inference with and without the pass (TF32 and fp32, three
# alternating rounds, PyTorch's outputs as references), the profile, PyTorch eager beside,
# gpu-check. Every log into $OUT/all.tgz.
set -u
mkdir -p /tmp/b /tmp/w && { [[ -d /tmp/b/bin ]] || tar -C /tmp/b -xJf .gpu-pack/b.tar.xz; }
. scripts/gpu-env.sh; gpu_env /tmp/b
L=/tmp/logs; mkdir -p $L; B=/tmp/b/bin
save() { tar -C $L -czf /tmp/all.tgz . && cp /tmp/all.tgz "$OUT/"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $L/gpu.txt
timeout 120 /tmp/b/tests/test_gpu_grad_ops "GPU FusedAttention forward against float64" -s > $L/fused-gpu-test.log 2>&1; echo "fused test: exit $?"
tail -3 $L/fused-gpu-test.log
timeout 120 /tmp/b/tests/test_gpu_grad_ops "[gpu]" > $L/grad-ops.log 2>&1; echo "grad ops: exit $?"; tail -2 $L/grad-ops.log
save
timeout 150 python3 scripts/export_models.py --out /tmp/w --models bert_base --opsets 17 --raw > $L/export.log 2>&1
$B/psimport /tmp/w/bert_base_op17.onnx -o /tmp/w/iwith.psm > $L/import.log 2>&1
$B/psimport /tmp/w/bert_base_op17.onnx --skip-passes fuse_attention_softmax -o /tmp/w/iwithout.psm > $L/import-without.log 2>&1
tail -4 $L/import.log
r="--input /tmp/w/bert_base.input_0.bin --input /tmp/w/bert_base.input_1.bin --reference /tmp/w/bert_base.output_0.bin --reference /tmp/w/bert_base.output_1.bin"
for i in 1 2 3; do for p in tf32 fp32; do for v in with without; do
  timeout 30 $B/psbench infer /tmp/w/i$v.psm --precision $p --runs 50 $r > $L/infer-$v-$p-$i.log 2>&1
  echo "$v $p $i: $(grep 'GPU time' $L/infer-$v-$p-$i.log) $(grep -c OK $L/infer-$v-$p-$i.log) OK"
done; done; done | tee $L/infer.txt
save
for v in with without; do timeout 30 $B/psbench infer /tmp/w/i$v.psm --precision tf32 --runs 20 --profile > $L/profile-$v.log 2>&1; done
timeout 120 python3 scripts/torch_bench.py --models bert_base --precisions tf32,fp32 --runs 50 > $L/torch.log 2>&1; tail -3 $L/torch.log
save
timeout 240 scripts/gpu-check.sh /tmp/b --gpu-only --no-bench > $L/gpu-check.log 2>&1; tail -18 $L/gpu-check.log
cp -r "$OUT"/gpu-check-logs $L/ 2>/dev/null; find "$OUT" -mindepth 1 -delete
save
