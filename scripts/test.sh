#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, runs every test (GPU tests skip
# cleanly without a device).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cd "${GMMDIFF_BUILD_DIR:-build}"
ctest --output-on-failure -j "$(nproc)" --timeout 900
