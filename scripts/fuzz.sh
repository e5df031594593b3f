#!/usr/bin/env bash
# Fuzzes the loaders of hand-written files with libFuzzer + ASan + UBSan (docs/reliability.md,
# "Fuzzing and sanitizers"):
#   scripts/fuzz.sh [SECONDS]      each target for SECONDS (default 60), up to $(nproc) at once
# Targets: fuzz_model_json, fuzz_npy, fuzz_schedule_file, and fuzz_sweep_json when the sweep header
# exists. Builds with clang into build-fuzz/ (CUDA off, -DGMMDIFF_FUZZ=ON), installing clang's
# libFuzzer runtime from Debian's archive when it is missing (as root, or through sudo).
# Seeds: fuzz/corpus/<target>/ (read only); what the fuzzer learns goes to build-fuzz/corpus/.
# Exits non-zero when any target crashes, leaks, times out or runs out of memory; the reproducer
# is left in build-fuzz/artifacts/ (replay: build-fuzz/fuzz/<target> <file>).
# Environment: GMMDIFF_FUZZ_BUILD_DIR (build-fuzz), GMMDIFF_FUZZ_JOBS (nproc),
#              GMMDIFF_FUZZ_TARGETS (space-separated subset), GMMDIFF_FUZZ_ARGS (extra libFuzzer flags).
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=${1:-60}
[[ "$SECS" =~ ^[0-9]+$ ]] || { echo "usage: scripts/fuzz.sh [seconds per target]" >&2; exit 2; }
BUILD=${GMMDIFF_FUZZ_BUILD_DIR:-build-fuzz}
JOBS=${GMMDIFF_FUZZ_JOBS:-$(nproc)}

# ---- clang and its libFuzzer runtime (Debian: clang, libclang-rt-N-dev), OpenMP for clang
. scripts/lib/packages.sh
command -v clang++ >/dev/null 2>&1 || install_missing fuzz clang
LLVM_MAJOR=$(clang++ -dumpversion | cut -d. -f1)
fuzzer_rt() { echo "$(clang++ -print-resource-dir)/lib/linux/libclang_rt.fuzzer-x86_64.a"; }
rt=()
[ -f "$(fuzzer_rt)" ] || rt+=("libclang-rt-${LLVM_MAJOR}-dev")
install_missing fuzz "${rt[@]}" cmake ninja-build libomp-dev nlohmann-json3-dev libcli11-dev libopenblas-openmp-dev
[ -f "$(fuzzer_rt)" ] || { echo "fuzz: no libFuzzer runtime at $(fuzzer_rt)" >&2; exit 1; }

# ---- build (-O1 -g with assertions on: nlohmann's JSON_ASSERT checks misuse too)
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
      -DGMMDIFF_CUDA=OFF -DGMMDIFF_FUZZ=ON -DGMMDIFF_TESTS=OFF \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" >/dev/null
cmake --build "$BUILD" --target fuzz_all -j "$(nproc)"

TARGETS=${GMMDIFF_FUZZ_TARGETS:-$(cd "$BUILD/fuzz" && ls fuzz_* 2>/dev/null | grep -v '\.' | tr '\n' ' ')}
ART="$BUILD/artifacts"
LOGS="$BUILD/fuzz-logs"
mkdir -p "$ART" "$LOGS"

# halt_on_error: the first UBSan report is a crash with a reproducer, like an ASan one.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# The targets write every input to a file (the loaders take paths): on tmpfs that costs ~20 us
# instead of ~450 us on this machine's disk, which is most of the time of one run. A folder of
# this run's own, removed at the end: a crashing target cannot remove its temporary files.
SHM=/tmp
if [ -d /dev/shm ] && [ -w /dev/shm ]; then SHM=/dev/shm; fi
TMPDIR=$(mktemp -d "${TMPDIR:-$SHM}/gmmdiff-fuzz.XXXXXX")
export TMPDIR
trap 'rm -rf "$TMPDIR"' EXIT
export OMP_NUM_THREADS=1  # the loaders are serial; one OpenMP thread keeps runs reproducible

run_target() {
  local t=$1 dict=fuzz/dict/json.dict
  [ "$t" = fuzz_npy ] && dict=fuzz/dict/npy.dict
  mkdir -p "$BUILD/corpus/$t"
  # -timeout: one input taking 25 s is a hang; -rss_limit_mb: 2 GiB for a file of at most 4 KiB
  # is a size taken from the file without a check. Only the first corpus folder is written to.
  local rc=0 pid
  "$BUILD/fuzz/$t" -max_total_time="$SECS" -timeout=25 -rss_limit_mb=2048 -max_len=4096 \
      -dict="$dict" -print_final_stats=1 -artifact_prefix="$ART/$t-" ${GMMDIFF_FUZZ_ARGS:-} \
      "$BUILD/corpus/$t" "fuzz/corpus/$t" </dev/null >"$LOGS/$t.log" 2>&1 &
  pid=$!
  wait "$pid" || rc=$?
  # clang's OpenMP runtime registers itself in /dev/shm; a crashed process leaves that file behind.
  rm -f "/dev/shm/__KMP_REGISTERED_LIB_${pid}_"*
  echo "$rc" >"$LOGS/$t.rc"
}

echo "fuzz: ${SECS} s per target, ${JOBS} at a time: ${TARGETS}" >&2
failed=()
ran=()
for t in $TARGETS; do
  [ -x "$BUILD/fuzz/$t" ] || { echo "fuzz: no target $t" >&2; failed+=("$t"); continue; }
  rm -f "$LOGS/$t.rc"
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
  run_target "$t" &
  ran+=("$t")
done
wait || true
for t in "${ran[@]}"; do
  if [ "$(cat "$LOGS/$t.rc" 2>/dev/null)" = 0 ]; then
    echo "fuzz: $t: ok ($(grep -o 'stat::number_of_executed_units: [0-9]*' "$LOGS/$t.log" | grep -o '[0-9]*$') runs)" >&2
  else
    failed+=("$t")
    echo "fuzz: $t: FAILED (log: $LOGS/$t.log)" >&2
    grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error:|.*uncaught exception|.*Test unit written to)' \
        "$LOGS/$t.log" | head -5 >&2 || true
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (reproducers in $ART/; replay with $BUILD/fuzz/<target> <file>)" >&2
  exit 1
fi
echo "fuzz: all targets ran ${SECS} s without a finding" >&2
