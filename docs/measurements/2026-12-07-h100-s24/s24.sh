#!/usr/bin/env bash
# Session 24's lease: passab remove_zero_add (2 rounds, gpu-check included), then old (ca2bbba)
# vs new psbench on the same package (the LayerNorm final-sum change alone), the old profile,
# PyTorch eager TF32 beside; every log into $OUT/all.tgz (the device returns few files).
set -u
bash scripts/gpu-session.sh passab remove_zero_add 2 > /tmp/passab.txt 2>&1
mkdir -p /tmp/old && tar -C /tmp/old -xJf .gpu-pack/old.tar.xz
. scripts/gpu-env.sh; gpu_env /tmp/b
for r in 1 2 3; do for s in old new; do
  b=/tmp/b/bin/psbench; [[ $s == old ]] && b=/tmp/old/psbench
  echo "$s $r $(timeout 40 $b train /tmp/w/with.psm --precision tf32 --steps 0 --runs 20 2>&1 | grep '^step:')"
done; done > /tmp/ab.txt 2>&1
timeout 40 /tmp/old/psbench train /tmp/w/with.psm --precision tf32 --steps 1 --runs 3 \
  --profile-top 1000 > /tmp/items-old.log 2>&1
timeout 120 python3 scripts/torch_train.py --model bert_base --batch 8 --seq 251 --time \
  --precisions tf32 > /tmp/torch.log 2>&1
cp /tmp/passab.txt /tmp/ab.txt /tmp/items-old.log /tmp/torch.log "$OUT/"
tar -C "$OUT" -czf /tmp/all.tgz . && find "$OUT" -mindepth 1 -delete && cp /tmp/all.tgz "$OUT/"
tail -30 /tmp/passab.txt; cat /tmp/ab.txt; tail -2 /tmp/torch.log
