#!/usr/bin/env bash
# Installs what gmmdiff needs from Debian's archive (only what is missing), then configures and
# builds it into build/ (the CUDA backend too when nvcc is found, the Python module when Python 3
# with NumPy and pybind11 are found), and registers the build's Python package with the
# interpreter it was built for (docs/python.md, "Installing"). Safe to run again.
#   GMMDIFF_BUILD_DIR (build)  GMMDIFF_CMAKE_ARGS (extra CMake arguments)
#   GMMDIFF_REGISTER_PYTHON=0  leaves the interpreter's user site alone
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/lib/packages.sh
install_missing setup cmake ninja-build g++ libgtest-dev libbenchmark-dev nlohmann-json3-dev libcli11-dev \
    libopenblas-openmp-dev libomp-dev libopenmpi-dev openmpi-bin python3-numpy python3-matplotlib \
    python3-dev pybind11-dev libdlpack-dev python3-pytest jupyter-nbconvert python3-ipykernel

# nvcc is usually not on a fresh shell's PATH; use the toolkit when it is there.
if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH=/usr/local/cuda/bin:$PATH
fi

# The Python module, its tests and the notebook use Debian's /usr/bin/python3 (where the packages
# above went), whichever python3 is first on PATH (a pyenv one has no NumPy), unless
# GMMDIFF_CMAKE_ARGS names another with -DPython3_EXECUTABLE=...
PY_ARGS=()
if [ -x /usr/bin/python3 ] && [[ "${GMMDIFF_CMAKE_ARGS:-}" != *Python3_EXECUTABLE* ]]; then
  PY_ARGS=(-DPython3_EXECUTABLE=/usr/bin/python3)
fi

# ccache when it is there, as pip's build does (setup.py): a rebuild after a clean, or pip's build
# of the same sources, then compiles nothing twice.
LAUNCHER=()
if command -v ccache >/dev/null 2>&1 && [[ "${GMMDIFF_CMAKE_ARGS:-}" != *COMPILER_LAUNCHER* ]]; then
  LAUNCHER=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
fi

BUILD=${GMMDIFF_BUILD_DIR:-build}
# shellcheck disable=SC2086  # GMMDIFF_CMAKE_ARGS is a list of arguments
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release "${PY_ARGS[@]}" "${LAUNCHER[@]}" \
      ${GMMDIFF_CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD" -j "$(nproc)"

# `import gmmdiff` from any directory with the interpreter the module was built for: a one-line .pth
# in its user site directory names build/python (as `pip install -e` would; docs/python.md).
PKG="$BUILD/python/gmmdiff"
if [ "${GMMDIFF_REGISTER_PYTHON:-1}" != 0 ] && [ -f "$PKG/_build.py" ]; then
  PY=$(sed -n 's/^PYTHON_EXECUTABLE = "\(.*\)"$/\1/p' "$PKG/_build.py")
  want=$(cd "$BUILD/python" && pwd)
  site=$("$PY" -c 'import site; print(site.getusersitepackages() if site.ENABLE_USER_SITE else "")' 2>/dev/null || true)
  if [ -n "$site" ]; then
    pth="$site/gmmdiff-build.pth"
    if [ "$(cat "$pth" 2>/dev/null)" != "$want" ]; then
      mkdir -p "$site" && echo "$want" > "$pth"
      echo "setup: $PY imports gmmdiff from $want (registered in $pth)" >&2
    fi
  else
    echo "setup: $PY has no user site directory; use PYTHONPATH=$want to import gmmdiff" >&2
  fi
fi
