# Sourced by the GPU-machine wrappers (gpu-reproduce.sh, gpu-train-check.sh, gpu-bench-switch.sh):
# `gpu_env BUNDLE_DIR` puts the bundle's lib/ first on the library path, then cuDNN from
# PyTorch's wheel (9.19, the toolkit's headers' version) and the toolkit's libraries, and
# PyTorch's venv first on PATH (exports, peers, matplotlib) when the machine has them.
gpu_env() {
  export LD_LIBRARY_PATH="$1/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  local d
  for d in /opt/torch/.venv/lib/python3.12/site-packages/nvidia/cudnn/lib /usr/local/cuda/lib64; do
    [[ -d "$d" ]] && export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$d"
  done
  [[ -d /opt/torch/.venv/bin ]] && export PATH=/opt/torch/.venv/bin:$PATH
  export PYTHONUNBUFFERED=1
}
