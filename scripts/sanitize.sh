#!/usr/bin/env bash
# The test suite under AddressSanitizer + UndefinedBehaviorSanitizer (docs/reliability.md,
# "Fuzzing and sanitizers"):
#   scripts/sanitize.sh [ctest args...]     e.g. scripts/sanitize.sh -R FuzzRegression
# Configures a separate build (build-asan: CUDA off, RelWithDebInfo, -DGMMDIFF_SANITIZE=
# address,undefined, which the top-level CMakeLists.txt turns into -fsanitize=... with
# -fno-sanitize-recover=all), builds the library, the CLI and the tests, and runs ctest. Any ASan
# report, leak or UBSan report fails the test in which it happens. Compiler: CXX, or g++.
# Environment: GMMDIFF_ASAN_BUILD_DIR (build-asan), GMMDIFF_ASAN_BUILD_TYPE (RelWithDebInfo),
#              GMMDIFF_ASAN_FLAGS (the RelWithDebInfo flags: -Og -g1 -DNDEBUG).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

BUILD=${GMMDIFF_ASAN_BUILD_DIR:-build-asan}
# RelWithDebInfo as -Og -g1: line tables are enough for the reports' stack traces. On the 2-core CI
# machine (fresh clone, 2026-11-29) the build took 5.6 min at -Og against 9.0 min at -O1 (UBSan's
# checks make -O1's passes slow), and the 818 tests 178 s against 170 s; the default -O2 -g builds
# slower still, and Debug (-O0) makes the tests several times slower under ASan.
TYPE=${GMMDIFF_ASAN_BUILD_TYPE:-RelWithDebInfo}
FLAGS=${GMMDIFF_ASAN_FLAGS:--Og -g1 -DNDEBUG}

# What the build needs from Debian's archive (as scripts/setup.sh, without its Release build).
. scripts/lib/packages.sh
install_missing sanitize cmake ninja-build g++ libgtest-dev nlohmann-json3-dev libcli11-dev \
    libopenblas-openmp-dev libomp-dev

# MPI off: OpenMPI's own allocations at MPI_Init are never freed (LeakSanitizer reports some 120 KB
# from its plugins, already unloaded at exit, so no suppression can name them). The protocols over
# the ranks (host/dist, the sweep's dispatcher) are still checked here, with ranks that are threads
# (tests/util/thread_comm.hpp); the mpirun tests run in the plain build (label mpi).
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE="$TYPE" -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="$FLAGS" -DGMMDIFF_CUDA=OFF \
      -DGMMDIFF_MPI=OFF -DGMMDIFF_SANITIZE=address,undefined -DGMMDIFF_TESTS=ON >/dev/null
cmake --build "$BUILD" -j "$(nproc)"

# detect_leaks: a leak is a failure too. strict_string_checks/detect_stack_use_after_return: more
# checking at little cost. The suppressions files say why each entry is there.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

cd "$BUILD"
ctest --output-on-failure -j "$(nproc)" --timeout 1800 "$@"
