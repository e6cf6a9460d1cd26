#!/usr/bin/env bash
# Builds the CUDA trainer (`coconut` with --features cuda) on a machine WITHOUT a GPU or a CUDA
# install: the CUDA 13.0 toolchain comes from PyPI wheels, libcuda from a link-time stub.
# Result: target/cuda/release/coconut (stripped copy: target/cuda/coconut-cuda). Run it on a
# machine with an NVIDIA driver (scripts/h200-train.sh). A clean build takes ~20 min on 2 cores.
# What it works around: docs/training.md, "CUDA"; measured speed: BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${CUDA_VENV:-$ROOT/target/cuda-venv}
CUDA_ROOT=${CUDA_ROOT:-$ROOT/target/cuda-root}

if [ ! -x "$VENV/bin/pip" ]; then
  python3 -m venv "$VENV"
fi
# Every piece pinned to one CUDA version: unpinned, nvcc pulls a mismatched nvvm/crt.
"$VENV/bin/pip" install -q "nvidia-cuda-nvcc==13.0.88" "nvidia-nvvm==13.0.88" "nvidia-cuda-crt==13.0.88" \
  "nvidia-cuda-runtime==13.0.96" "nvidia-cuda-nvrtc==13.0.88" "nvidia-cublas==13.0.2.14" \
  "nvidia-curand==10.4.0.35" "nvidia-cuda-cccl==13.0.*"

CU13=$("$VENV/bin/python" -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13"))')
mkdir -p "$CUDA_ROOT/lib/stubs"
for d in bin include nvvm; do ln -sfn "$CU13/$d" "$CUDA_ROOT/$d"; done
for lib in cublas cublasLt curand nvrtc cudart; do
  so=$(ls "$CU13"/lib/lib$lib.so.* | sort | head -n 1)
  ln -sf "$so" "$CUDA_ROOT/lib/lib$lib.so"
done

# A link-time stub of the driver API: every cu* function cudarc declares, returning an error.
# Never shipped or loaded on the GPU machine (the driver's libcuda.so.1 is used there).
STUB=$CUDA_ROOT/lib/stubs/libcuda.so
if [ ! -f "$STUB" ]; then
  cargo fetch --manifest-path trainer/Cargo.toml >/dev/null
  SYS=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.*/src/driver/sys/mod.rs | head -n 1)
  grep -o 'fn cu[A-Za-z0-9_]*(' "$SYS" | sed 's/^fn //; s/($//' | sort -u |
    awk '{print "int " $1 "(void){return 100;}"}' > "$CUDA_ROOT/lib/stubs/libcuda_stub.c"
  gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$STUB" "$CUDA_ROOT/lib/stubs/libcuda_stub.c"
fi

export CUDA_ROOT CUDA_HOME=$CUDA_ROOT CUDA_PATH=$CUDA_ROOT PATH=$CUDA_ROOT/bin:$PATH
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90} CUDARC_CUDA_VERSION=13000 NVCC_CCBIN=/usr/bin/g++
export LIBRARY_PATH=$CUDA_ROOT/lib:$CUDA_ROOT/lib/stubs
# Its own target dir, so the CPU build is not rebuilt each time.
cargo build --release -p coconut --features cuda --target-dir target/cuda
strip -o target/cuda/coconut-cuda target/cuda/release/coconut
ls -la target/cuda/coconut-cuda
