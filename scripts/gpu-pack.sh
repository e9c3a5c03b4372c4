#!/usr/bin/env bash
# Packs what a lent GPU machine needs into .gpu-pack/b.tar.xz (git-ignored), small enough to
# travel with the working tree (the device tool's limit is 64 MiB for both): the bundle's bin/,
# lib/, scripts/, testdata/ and only the test executables with [gpu] cases (test_gpu_*,
# test_cuda_*, test_e2e). The whole bundle compresses to ~62 MiB, too much; this is ~26 MB.
# Usage: scripts/gpu-pack.sh [BUILD_DIR]   (then: run with carry [".gpu-pack"] and
#        `bash scripts/gpu-session.sh STEP`; see that script)
#        scripts/gpu-pack.sh --old BUILD_DIR   an older build's psbench alone, for
#        `gpu-session.sh ab` (.gpu-pack/old.tar.xz, with that build's commit in COMMIT); make it
#        before checking out the new code (COMMIT is the working tree's)
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == --old ]]; then
  old_build="${2:?usage: gpu-pack.sh --old BUILD_DIR}"
  bench=$(find "$old_build/tools" -type f -executable -name psbench | head -1)
  [[ -n "$bench" ]] || { echo "gpu-pack: no psbench under $old_build/tools" >&2; exit 1; }
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  cp "$bench" "$tmp/psbench" && strip --strip-debug "$tmp/psbench"
  git describe --always --dirty > "$tmp/COMMIT"
  mkdir -p .gpu-pack
  tar -C "$tmp" -cf - psbench COMMIT | xz -T"$(nproc)" -6 > .gpu-pack/old.tar.xz
  echo "gpu-pack: $(du -h .gpu-pack/old.tar.xz | cut -f1) in .gpu-pack/old.tar.xz ($(cat "$tmp/COMMIT"))"
  exit 0
fi
BUILD_DIR="${1:-build}"
scripts/bundle.sh "$BUILD_DIR" .gpu >/dev/null
mkdir -p .gpu-pack
(cd .gpu && tar -cf - COMMIT bin lib scripts testdata tests/test_gpu_* tests/test_cuda_* tests/test_e2e) |
  xz -T"$(nproc)" -6 > .gpu-pack/b.tar.xz
echo "gpu-pack: $(du -h .gpu-pack/b.tar.xz | cut -f1) in .gpu-pack/b.tar.xz (with the tree: keep under 64 MiB)"
