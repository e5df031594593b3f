#!/usr/bin/env bash
# Here (a Debian machine with the archive): download the Debian packages the device machine lacks
# into .deps/ (git-ignored), to be carried to it and unpacked by scripts/device.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .deps
cd .deps
apt-get download nlohmann-json3-dev libcli11-dev libgtest-dev libopenblas-openmp-dev libopenblas0-openmp \
  libgfortran5 2>&1 | grep -v "^W: Download is performed unsandboxed" || true
ls -la
