#!/usr/bin/env bash
# Packs what a lent GPU machine needs into .gpu-pack/b.tar.xz (git-ignored), small enough to
# travel with the working tree (the device tool's limit is 64 MiB for both): the bundle's bin/,
# lib/, scripts/, testdata/ and only the test executables with [gpu] cases (test_gpu_*,
# test_cuda_*, test_e2e). The whole bundle compresses to ~62 MiB, too much; this is ~26 MB.
# Usage: scripts/gpu-pack.sh [BUILD_DIR]   (then: run with carry [".gpu-pack"] and
#        `bash scripts/gpu-session.sh STEP`; see that script)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${1:-build}"
scripts/bundle.sh "$BUILD_DIR" .gpu >/dev/null
mkdir -p .gpu-pack
(cd .gpu && tar -cf - COMMIT bin lib scripts testdata tests/test_gpu_* tests/test_cuda_* tests/test_e2e) |
  xz -T"$(nproc)" -6 > .gpu-pack/b.tar.xz
echo "gpu-pack: $(du -h .gpu-pack/b.tar.xz | cut -f1) in .gpu-pack/b.tar.xz (with the tree: keep under 64 MiB)"
