#!/usr/bin/env bash
# Installs what gmmdiff needs from Debian's archive (only what is missing), then configures and
# builds it into build/ (the CUDA backend too when nvcc is found). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/lib/packages.sh
install_missing setup cmake ninja-build g++ libgtest-dev libbenchmark-dev nlohmann-json3-dev libcli11-dev \
    libopenblas-openmp-dev libomp-dev libopenmpi-dev openmpi-bin python3-numpy python3-matplotlib

# nvcc is usually not on a fresh shell's PATH; use the toolkit when it is there.
if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH=/usr/local/cuda/bin:$PATH
fi

BUILD=${GMMDIFF_BUILD_DIR:-build}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release ${GMMDIFF_CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD" -j "$(nproc)"
