#!/usr/bin/env bash
# Packs what a GPU machine needs to run this build into one folder (default .gpu/, git-ignored):
#   bin/      the tools (psimport, psbench, pipeswitchd, psnc, ... whichever are built)
#   tests/    every test executable
#   lib/      shared libraries the GPU machine may lack (libonnx, libonnx_proto, libprotobuf,
#             libhttp_parser); libuv is linked statically; cuBLAS/cuDNN/driver are found there
#   testdata/ the ONNX node test cases (libonnx-testdata) as a tarball
#   scripts/  the scripts (gpu-check.sh, export_models.py, ...) and scripts/repro/ (the harness)
# Usage: scripts/bundle.sh [BUILD_DIR] [OUT_DIR]     (run `make build` first, or it runs it)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${1:-build}"
OUT="${2:-.gpu}"
[[ -d "$BUILD_DIR" ]] || make build BUILD_DIR="$BUILD_DIR"

rm -rf "$OUT"
mkdir -p "$OUT"/{bin,tests,lib,testdata,scripts}
for exe in $(find "$BUILD_DIR/tools" -maxdepth 3 -type f -executable \
               \( -name 'ps*' -o -name 'pipeswitchd' \) 2>/dev/null); do
  cp "$exe" "$OUT/bin/"
done
for exe in $(find "$BUILD_DIR/tests" -type f -executable -name 'test_*'); do
  cp "$exe" "$OUT/tests/"
done
for lib in libonnx.so.1 libonnx_proto.so.1 libprotobuf.so.32 libhttp_parser.so.2.9; do
  src="/usr/lib/x86_64-linux-gnu/$lib"
  [[ -e "$src" ]] && cp -L "$src" "$OUT/lib/$lib"
done
tar -C /usr/share/libonnx-testdata/data -czf "$OUT/testdata/onnx-node.tar.gz" node
cp scripts/*.sh scripts/*.py "$OUT/scripts/"
# The commit the bundle was built from, for the results' machine record (no .git travels).
git describe --always --dirty > "$OUT/COMMIT" 2>/dev/null || true
mkdir -p "$OUT/scripts/repro" && cp scripts/repro/*.py "$OUT/scripts/repro/"
strip --strip-debug "$OUT"/bin/* "$OUT"/tests/* 2>/dev/null || true
echo "bundle: $(du -sh "$OUT" | cut -f1) in $OUT ($(ls "$OUT/bin" | wc -l) tools, $(ls "$OUT/tests" | wc -l) test executables)"
