#!/usr/bin/env bash
# The CUDA checks, in one call on a GPU machine (an H100 or H200, sm_90), in under 8 minutes:
#   build     CMake + nvcc for sm_90 (-Xptxas -v: the register/spill table of every kernel)
#   test      the GPU tests (build-device/tests/gmmdiff_gpu_tests: label gpu, and the host
#             emulations beside them), including the OOM retries under an allocation limit
#   oom       the CLI under GMMDIFF_CUDA_ALLOC_LIMIT: sample retries smaller chunks and writes the
#             same file; a limit too small for one chunk is exit 3; bench goes on after a
#             configuration that does not fit
#   sass      the fused kernel's loop over components in SASS (docs/cuda.md's FP32 ceiling)
#   sanitize  compute-sanitizer memcheck, racecheck and initcheck on a short subset
#   bench     the benchmark grid against the PyTorch peer (bench/run_peers.py)
# in that order (the short ones first: a stage that would start past the budget is skipped).
# Every figure goes to $OUT/device.json (the files below, 5 in all, fit what a device run brings
# back); the end prints a short summary. Each stage has a time cap and the whole run a budget
# (GMMDIFF_DEVICE_BUDGET_S, 440 s by default): a stage that would start past it is skipped and
# says so (GMMDIFF_DEVICE_BUILD_CAP, 240 s by default, caps the build: a machine without ccache's
# cache and with few cores needs more). Without a CUDA device it builds, runs the host-side tests
# of the GPU binary, and stops with exit 2 and a line saying that a device is needed.
#   bash scripts/device.sh [build test oom sass sanitize bench | all]   (default: all)
# Files in $OUT (default out/device): device.json, device.log, gpu-tests.json, sanitizer.log,
# peers.json. Debian packages the machine lacks come from .deps/ (scripts/fetch-device-deps.sh,
# run beforehand where apt-get works; git ignores .deps/, so name it in the device call's carry).
set -uo pipefail
cd "$(dirname "$0")/.."
[ -d /usr/local/cuda/bin ] && export PATH=$PATH:/usr/local/cuda/bin  # nvcc, cuobjdump, compute-sanitizer
ROOT=$(pwd)
OUT=${OUT:-$ROOT/out/device}
mkdir -p "$OUT"
BUDGET_S=${GMMDIFF_DEVICE_BUDGET_S:-440}
BUILD=${GMMDIFF_DEVICE_BUILD:-build-device}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gmmdiff-device.XXXXXX")
LOG=$OUT/device.log
REPORT="python3 $ROOT/scripts/lib/device_report.py"
T0=$(date +%s)
: >"$LOG"
: >"$WORK/stages.tsv"

stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(all)
want() { for s in "${stages[@]}"; do [ "$s" = "$1" ] || [ "$s" = all ] && return 0; done; return 1; }
left() { echo $((BUDGET_S - ($(date +%s) - T0))); }
say() { echo "device.sh: $*" | tee -a "$LOG" >&2; }
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$WORK/stages.tsv"; }

# run_stage NAME CAP_SECONDS COMMAND...: runs COMMAND (a shell function) under min(CAP, budget
# left - 15 s), logs it, records status and seconds.
run_stage() {
  local name=$1 cap=$2
  shift 2
  local budget=$(($(left) - 15))
  if [ "$budget" -lt 20 ]; then
    say "$name: skipped (the run's budget of ${BUDGET_S}s is spent)"
    record "$name" skipped 0 "budget spent"
    return 0
  fi
  [ "$cap" -lt "$budget" ] || cap=$budget
  local t=$(date +%s)
  say "$name: start (cap ${cap}s)"
  STAGE_NOTE=""
  STAGE_CAP=$cap "$@" >>"$LOG" 2>&1
  local rc=$?
  local secs=$(($(date +%s) - t))
  local status=ok
  [ $rc -eq 0 ] || status=failed
  [ $rc -eq 124 ] && status=timeout
  record "$name" "$status" "$secs" "${STAGE_NOTE:-}"
  say "$name: $status in ${secs}s ${STAGE_NOTE:-}"
  [ $rc -eq 0 ]
}

status=0

# ---- the machine ----
{
  gpu=$(nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader 2>/dev/null | head -1)
  nvcc_v=$(nvcc --version 2>/dev/null | tail -1)
  torch_v=$(python3 -c 'import torch; print(torch.__version__, torch.version.cuda)' 2>/dev/null)
  python3 - "$gpu" "$nvcc_v" "$torch_v" >"$WORK/env.json" <<'EOF'
import datetime, json, os, platform, sys
gpu, nvcc, torch = sys.argv[1:4]
print(json.dumps({"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                  "host": platform.node(), "gpu": gpu or None, "nvcc": nvcc or None, "torch": torch or None,
                  "cpu_count": os.cpu_count(), "load_average": os.getloadavg()}))
EOF
} 2>>"$LOG"

# ---- dependencies: Debian packages carried in .deps/ (scripts/fetch-device-deps.sh) ----
# A fixed prefix, so that a build directory configured against it stays valid between runs.
PREFIX=${TMPDIR:-/tmp}/gmmdiff-deps
CMAKE_DEPS=()
if compgen -G ".deps/*.deb" >/dev/null; then
  rm -rf "$PREFIX"
  mkdir -p "$PREFIX"
  for f in .deps/*.deb; do dpkg -x "$f" "$PREFIX" 2>>"$LOG"; done
  LIBDIR=$PREFIX/usr/lib/x86_64-linux-gnu
  export LD_LIBRARY_PATH=$LIBDIR/openblas-openmp:$LIBDIR:${LD_LIBRARY_PATH:-}
  CMAKE_DEPS=(-DGMMDIFF_OPENBLAS_ROOT="$PREFIX" -DGTest_DIR="$LIBDIR/cmake/GTest"
              -Dnlohmann_json_DIR="$PREFIX/usr/share/cmake/nlohmann_json" -DCLI11_DIR="$PREFIX/usr/share/cmake/CLI11")
  say "deps: unpacked $(ls .deps/*.deb | wc -l) packages from .deps/"
fi

# ---- build ----
build() {
  local launcher=()
  command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
  timeout 60 cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGMMDIFF_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_CUDA_FLAGS="-Xptxas=-v" "${launcher[@]}" "${CMAKE_DEPS[@]}" || return $?
  # The compilers' output stays in the log (ptxas's table among it; ccache replays it on a hit).
  timeout "$STAGE_CAP" cmake --build "$BUILD" -j "$(nproc)" >"$WORK/build.log" 2>&1
  local rc=$?
  grep -E "error|FAILED" "$WORK/build.log" | head -40
  tail -3 "$WORK/build.log"
  $REPORT ptxas "$WORK/build.log" >"$WORK/ptxas.json"
  STAGE_NOTE="$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))), "kernels in the ptxas table")' "$WORK/ptxas.json")"
  return $rc
}
if want build; then
  run_stage build "${GMMDIFF_DEVICE_BUILD_CAP:-240}" build || { status=1; say "build failed: see $LOG"; }
fi
CLI=$BUILD/gmmdiff
GPU_TESTS=$BUILD/tests/gmmdiff_gpu_tests

# ---- is there a device? ----
have_device=0
if [ -x "$CLI" ]; then
  "$CLI" info --json >"$WORK/info.json" 2>>"$LOG"
  n=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1])).get("cuda_devices", [])))' "$WORK/info.json" 2>/dev/null || echo 0)
  [ "${n:-0}" -gt 0 ] && have_device=1
fi
if [ $have_device -eq 0 ]; then
  if [ -x "$GPU_TESTS" ]; then  # what runs without a device: the host emulations and plans
    "$GPU_TESTS" --gtest_filter='CudaFusedHelpers.*:CudaWeightsEmulation.*:CudaPlan.*:CudaRt.*:CudaBoundsEmulation.*:CudaBoundsPlan.*' \
      --gtest_output="json:$OUT/gpu-tests.json" >>"$LOG" 2>&1 && record host-tests ok 0 "no device: host-side tests only" ||
      { record host-tests failed 0 "no device: host-side tests only"; status=1; }
    $REPORT gtest "$OUT/gpu-tests.json" >"$WORK/gtest.json" 2>>"$LOG"
  fi
  record device missing 0 "no CUDA device: test, sanitize, oom, sass and bench need one"
  $REPORT assemble "$WORK" "$OUT/device.json"
  $REPORT summary "$OUT/device.json"
  say "no CUDA device on this machine ($(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("cuda_runtime",""))' "$WORK/info.json" 2>/dev/null)): built, then stopped; the device stages need a GPU"
  rm -rf "$WORK"
  exit 2
fi

# ---- GPU tests ----
gpu_tests() {
  timeout "$STAGE_CAP" "$GPU_TESTS" --gtest_output="json:$OUT/gpu-tests.json"
  local rc=$?
  $REPORT gtest "$OUT/gpu-tests.json" >"$WORK/gtest.json"
  STAGE_NOTE=$(python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print("%d tests, %d failed, %d skipped" % (j["tests"], j["failures"], j["skipped"]))' "$WORK/gtest.json" 2>/dev/null)
  return $rc
}
if want test; then run_stage test 150 gpu_tests || status=1; fi

# ---- out of memory: the retries under a forced allocation limit ----
oom() {
  local d=$WORK/oom rc=0
  mkdir -p "$d"
  local common=(--preset random-sphere --d 16 --K 8 --T 20 --n 1000000 --seed 3 --eps-samples 16 --backend cuda)
  "$CLI" sample "${common[@]}" --out "$d/free.npy" 2>"$d/free.txt"
  local free_rc=$?
  GMMDIFF_CUDA_ALLOC_LIMIT=64M "$CLI" sample "${common[@]}" --out "$d/limited.npy" 2>"$d/limited.txt"
  local lim_rc=$?
  local same=false
  cmp -s "$d/free.npy" "$d/limited.npy" && same=true
  GMMDIFF_CUDA_ALLOC_LIMIT=1M "$CLI" sample "${common[@]}" --out "$d/tiny.npy" 2>"$d/tiny.txt"
  local tiny_rc=$?
  GMMDIFF_CUDA_ALLOC_LIMIT=96M "$CLI" bench --backend cuda --n 4000000,100000 --d 16 --K 8 --T 4 --repeats 1 \
    --warmup 0 --path fused --json "$d/bench.json" >"$d/bench.txt" 2>&1
  local bench_rc=$?
  python3 - "$d" "$free_rc" "$lim_rc" "$same" "$tiny_rc" "$bench_rc" >"$WORK/oom.json" <<'EOF'
import json, os, re, sys
d, free_rc, lim_rc, same, tiny_rc, bench_rc = sys.argv[1:7]
def text(n):
    try:
        return open(os.path.join(d, n)).read().strip()
    except OSError:
        return ""
def chunks(s):
    m = re.search(r"(\d+) chunks? of (\d+)", s)
    return {"chunks": int(m.group(1)), "chunk_rows": int(m.group(2))} if m else None
b = {}
try:
    b = json.load(open(os.path.join(d, "bench.json")))
except (OSError, ValueError):
    pass
rows = [{"n": r["n"], "status": r["status"], "failure": r["failure"]} for r in b.get("results", [])]
v = {"sample_retries_and_matches": lim_rc == "0" and same == "true",
     "one_chunk_too_big_is_exit_3": tiny_rc == "3" and len(text("tiny.txt").splitlines()) == 1,
     "bench_goes_on": len(rows) == 2 and rows[0]["status"] == "FAILED" and rows[0]["failure"].startswith("resources")
                      and rows[1]["status"] == "ok"}
print(json.dumps({"verdicts": v,
                  "sample_unlimited": {"exit": int(free_rc), "summary": text("free.txt"), **(chunks(text("free.txt")) or {})},
                  "sample_limit_64M": {"exit": int(lim_rc), "summary": text("limited.txt"), "same_file": same == "true",
                                       **(chunks(text("limited.txt")) or {})},
                  "sample_limit_1M": {"exit": int(tiny_rc), "stderr": text("tiny.txt")},
                  "bench_limit_96M": {"exit": int(bench_rc), "results": rows}}, indent=1))
EOF
  python3 -c 'import json,sys; v=json.load(open(sys.argv[1]))["verdicts"]; sys.exit(0 if all(v.values()) else 1)' "$WORK/oom.json" || rc=1
  STAGE_NOTE=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["verdicts"])' "$WORK/oom.json" 2>/dev/null)
  rm -rf "$d"
  return $rc
}
if want oom; then run_stage oom 60 oom || status=1; fi

# ---- SASS of the fused kernel's loop over components ----
sass() {
  local obj
  obj=$(find "$BUILD" -name 'fused_step.cu.o' | head -1)
  [ -n "$obj" ] || { echo "no fused_step.cu.o in $BUILD"; return 1; }
  cuobjdump -sass "$obj" >"$WORK/fused.sass" || return 1
  $REPORT sass "$WORK/fused.sass" >"$WORK/sass.json"
}
if want sass; then run_stage sass 60 sass || status=1; fi

# ---- compute-sanitizer on a short subset: every kernel once, small ----
# Each kernel at least once, on a few hundred particles: init, upload/download, histograms (shared
# memory), the products path (GEMMs, weights, update; isotropic fp32, diagonal fp64), the fused path
# (staged fp32 diagonal, fp64 isotropic), the staged transfers and the bounds' kernels (path bound,
# flow, fallbacks: a few rows each).
SUBSET='CudaBackend.InitChunkMatchesCpu:CudaBackend.UploadDownloadRoundTrip:CudaBackend.HistogramsMatchCpuSharedMemory:Cuda/CudaRun.MatchesCpu/iso_varying_fp32_ddpm_gaussian_256:Cuda/CudaRun.MatchesCpu/diagonal_fp64_ddim_bias_all:Cuda/CudaFusedRun.MatchesCpu/diagonal_fp32_ddpm_bias_256:Cuda/CudaFusedRun.MatchesCpu/iso_varying_fp64_ddpm_gaussian_all:CudaStaging.*:CudaBounds.EveryKernelOnceSmall'
sanitize() {
  : >"$OUT/sanitizer.log"
  local rc=0 tool
  for tool in memcheck racecheck initcheck; do
    echo "==== compute-sanitizer --tool $tool" >>"$OUT/sanitizer.log"
    timeout $((STAGE_CAP / 3)) compute-sanitizer --tool "$tool" --error-exitcode 9 "$GPU_TESTS" \
      --gtest_filter="$SUBSET" >"$WORK/san-$tool.log" 2>&1 || rc=1
    cat "$WORK/san-$tool.log" >>"$OUT/sanitizer.log"
    $REPORT sanitizer "$WORK/san-$tool.log" >"$WORK/sanitizer-$tool.json"
  done
  return $rc
}
if want sanitize; then run_stage sanitize 90 sanitize || status=1; fi

# ---- the benchmark grid against the PyTorch peer ----
# The grid against PyTorch eager; torch.compile (tens of seconds of compilation a configuration,
# each in its own process) on one configuration of it.
bench() {
  local rc=0
  timeout $((STAGE_CAP * 2 / 3)) python3 bench/run_peers.py --gmmdiff "$CLI" --backend cuda --path auto,products \
    --n 1000000,10000000 --d 64 --K 4,16,64,256,1024 --T 16 --repeats 5 --warmup 1 \
    --peers torch --torch-device cuda --torch-variants eager --out "$OUT/peers.json" || rc=1
  timeout $((STAGE_CAP / 3)) python3 bench/run_peers.py --gmmdiff "$CLI" --backend cuda --path auto \
    --n 10000000 --d 64 --K 64 --T 16 --repeats 5 --warmup 1 \
    --peers torch --torch-device cuda --torch-variants compile --out "$WORK/peers-compile.json" || rc=1
  python3 "$ROOT/scripts/lib/device_report.py" peers "$OUT/peers.json" "$WORK/peers-compile.json" >"$WORK/peers.json"
  return $rc
}
if want bench; then run_stage bench 170 bench || status=1; fi

# ---- device.json and the summary ----
$REPORT assemble "$WORK" "$OUT/device.json"
$REPORT summary "$OUT/device.json" | tee -a "$LOG"
say "exit $status after $(($(date +%s) - T0))s; every figure is in $OUT/device.json"
rm -rf "$WORK"
exit $status
