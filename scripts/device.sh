#!/usr/bin/env bash
# On the GPU (device) machine, in one call: unpack the carried Debian packages (.deps/, made here by
# scripts/fetch-device-deps.sh), build for sm_90, run the whole test suite (GPU tests included),
# compute-sanitizer over the GPU tests, and the benchmark with its peers. Logs and JSON go to
# $OUT (or out/ when OUT is unset).
#   bash scripts/device.sh [all|build|test|sanitize|bench|sweep]...
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out}
mkdir -p "$OUT"
PREFIX=/tmp/gmmdiff-deps
BUILD=build-device
stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(all)
has() { for s in "${stages[@]}"; do [ "$s" = "$1" ] || [ "$s" = all ] && return 0; done; return 1; }
status=0

{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv || true
  nvcc --version | tail -2
} | tee "$OUT/device.txt"

mkdir -p "$PREFIX"
for f in .deps/*.deb; do [ -e "$f" ] && dpkg -x "$f" "$PREFIX"; done
LIBDIR=$PREFIX/usr/lib/x86_64-linux-gnu
export LD_LIBRARY_PATH=$LIBDIR/openblas-openmp:$LIBDIR:${LD_LIBRARY_PATH:-}

if has build || has test || has sanitize || has bench || has sweep; then
  set -o pipefail
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
    -DGMMDIFF_CUDA=ON -DGMMDIFF_OPENBLAS_ROOT="$PREFIX" \
    -DGTest_DIR="$LIBDIR/cmake/GTest" -Dnlohmann_json_DIR="$PREFIX/usr/share/cmake/nlohmann_json" \
    -DCLI11_DIR="$PREFIX/usr/share/cmake/CLI11" 2>&1 | tee "$OUT/configure.log" | tail -3 || status=1
  cmake --build "$BUILD" -j "$(nproc)" 2>&1 | tee "$OUT/build.log" | tail -3 || status=1
  "$BUILD/gmmdiff" info | tee -a "$OUT/device.txt"
fi
if has test; then
  (cd "$BUILD" && ctest -j 4 --timeout 900 --output-on-failure) >"$OUT/ctest.log" 2>&1 || status=1
  tail -5 "$OUT/ctest.log"
  "$BUILD/tests/gmmdiff_gpu_tests" >"$OUT/gpu-tests.log" 2>&1 || status=1
  grep -E "PASSED|FAILED|SKIPPED" "$OUT/gpu-tests.log" | tail -5
fi
if has sanitize; then
  for tool in memcheck racecheck initcheck; do
    compute-sanitizer --tool "$tool" --error-exitcode 9 "$BUILD/tests/gmmdiff_gpu_tests" \
      --gtest_filter='-*MatchesCpu/*fp64*' >"$OUT/sanitizer-$tool.log" 2>&1 || status=1
    echo "compute-sanitizer $tool: $(grep -E 'ERROR SUMMARY|PASSED|FAILED' "$OUT/sanitizer-$tool.log" | tail -2 | tr '\n' ' ')"
  done
fi
if has bench; then
  "$BUILD/gmmdiff" bench --backend cuda --n 1000000,10000000 --d 64 --K 1,4,16,64,256,1024,4096 \
    --precision fp32,fp64 --json "$OUT/bench-cuda.json" 2>&1 | tee "$OUT/bench-cuda.txt" || status=1
  if [ -f bench/run_peers.py ]; then
    python3 bench/run_peers.py --gmmdiff "$BUILD/gmmdiff" --backend cuda --out "$OUT" 2>&1 | tee "$OUT/peers.txt" || status=1
  fi
fi
if has sweep; then
  "$BUILD/gmmdiff" sweep --backend cuda --out "$OUT/sweep" 2>&1 | tail -40 | tee "$OUT/sweep.txt" || status=1
  "$BUILD/gmmdiff" report "$OUT/sweep" >"$OUT/report.txt" 2>&1 || status=1
fi
echo "device.sh: exit $status"
exit $status
