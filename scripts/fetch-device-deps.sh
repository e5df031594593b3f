#!/usr/bin/env bash
# Here (a Debian machine with the archive): download the Debian packages the device machine lacks
# into .deps/ (git-ignored: name it in the device call's carry), to be unpacked by scripts/device.sh
# into a prefix its CMake configuration points at. The device image has the CUDA toolkit, a C++
# compiler, CMake, Ninja and Python with NumPy and PyTorch, not these: the JSON and command-line
# headers, GoogleTest, and the OpenMP build of OpenBLAS with its Fortran runtime.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .deps
cd .deps
apt-get download nlohmann-json3-dev libcli11-dev libgtest-dev libopenblas-openmp-dev libopenblas0-openmp \
  libgfortran5 2>&1 | grep -v "^W: Download is performed unsandboxed" || true
ls -la
