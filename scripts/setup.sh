#!/usr/bin/env bash
# Installs what the build needs, and only what is missing: Debian packages through apt-get, and
# a check that the CUDA 13 toolkit (nvcc, cuDNN, cuBLAS headers and libraries) is present.
# Usage: scripts/setup.sh [--check]   (--check: report what is missing, install nothing)
set -euo pipefail

CHECK_ONLY=0
case "${1:-}" in
  --check) CHECK_ONLY=1 ;;
  -h|--help) sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  "") ;;
  *) echo "setup.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
esac

PACKAGES=(
  build-essential cmake pkg-config
  libuv1-dev libprotobuf-dev protobuf-compiler libonnx-dev catch2 libonnx-testdata
  libhttp-parser-dev
  python3
  clang-14 libclang-rt-14-dev
  libtsan2
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  if ((CHECK_ONLY)); then
    echo "setup: missing Debian packages: ${missing[*]}"
  else
    echo "setup: installing ${missing[*]}"
    SUDO=""
    if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -q >/dev/null
    $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  fi
else
  echo "setup: Debian packages present"
fi

CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"
cuda_missing=()
[[ -x "$CUDA_HOME/bin/nvcc" ]] || cuda_missing+=("$CUDA_HOME/bin/nvcc")
[[ -f "$CUDA_HOME/include/cuda.h" ]] || cuda_missing+=("$CUDA_HOME/include/cuda.h")
[[ -f "$CUDA_HOME/include/cudnn.h" ]] || cuda_missing+=("$CUDA_HOME/include/cudnn.h (cuDNN 9)")
[[ -f "$CUDA_HOME/include/cublas_v2.h" ]] || cuda_missing+=("$CUDA_HOME/include/cublas_v2.h (cuBLAS)")
ls "$CUDA_HOME"/lib64/libcudnn.so* >/dev/null 2>&1 || cuda_missing+=("$CUDA_HOME/lib64/libcudnn.so")
ls "$CUDA_HOME"/lib64/libcublas.so* >/dev/null 2>&1 || cuda_missing+=("$CUDA_HOME/lib64/libcublas.so")
if ((${#cuda_missing[@]})); then
  echo "setup: the CUDA 13 toolkit with cuDNN and cuBLAS is expected at $CUDA_HOME (set CUDA_HOME" >&2
  echo "       to use another place); missing:" >&2
  printf '         %s\n' "${cuda_missing[@]}" >&2
  exit 1
fi
nvcc_version=$("$CUDA_HOME/bin/nvcc" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')
if [[ "${nvcc_version%%.*}" -lt 13 ]]; then
  echo "setup: $CUDA_HOME has CUDA $nvcc_version; CUDA 13 or newer is needed" >&2
  exit 1
fi
echo "setup: CUDA $nvcc_version toolkit at $CUDA_HOME"
if ((CHECK_ONLY)) && ((${#missing[@]})); then exit 1; fi
