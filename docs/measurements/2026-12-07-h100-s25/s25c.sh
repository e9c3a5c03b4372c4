#!/usr/bin/env bash
# Session 25, third lease: gpu-check --gpu-only on the bundle minus test_gpu_grad_ops and
# test_gpu_backend (the second lease ran those whole; the pack must stay under 64 MiB).
set -u
mkdir -p /tmp/b && { [[ -d /tmp/b/bin ]] || tar -C /tmp/b -xJf .gpu-pack/b.tar.xz; }
R=$OUT; export OUT=/tmp/gc; mkdir -p $OUT
timeout 520 bash scripts/gpu-check.sh /tmp/b --gpu-only --no-bench > $OUT/gpu-check.txt 2>&1; echo "gpu-check: exit $?"
tail -25 $OUT/gpu-check.txt
tar -C $OUT -czf $R/all.tgz .
