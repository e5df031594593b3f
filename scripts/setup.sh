#!/usr/bin/env bash
# Installs what gmmdiff needs from Debian's archive (only what is missing), then configures and
# builds it into build/ (the CUDA backend too when nvcc is found). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(cmake ninja-build g++ libgtest-dev libbenchmark-dev nlohmann-json3-dev libcli11-dev
      libopenblas-openmp-dev libomp-dev python3-numpy python3-matplotlib)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# nvcc is usually not on a fresh shell's PATH; use the toolkit when it is there.
if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH=/usr/local/cuda/bin:$PATH
fi

BUILD=${GMMDIFF_BUILD_DIR:-build}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release ${GMMDIFF_CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD" -j "$(nproc)"
