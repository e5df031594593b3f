#!/usr/bin/env bash
# The two ways of installing the Python package (docs/python.md, "Installing"), each from
# scratch and offline, then used from another directory:
#   1. pip install --no-build-isolation --no-index . into a fresh venv that sees Debian's NumPy
#      (Debian's pip refuses to install into the system interpreter, PEP 668);
#   2. cmake --install of build/ into a scratch prefix (also checked by python/tests/test_docs.py).
# Each imports gmmdiff and checks a sample against the CLI's, bit for bit.
# Environment: GMMDIFF_CMAKE_ARGS for pip's CMake build (e.g. -DGMMDIFF_CUDA=OFF), GMMDIFF_BUILD_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
. scripts/lib/packages.sh
install_missing python-install python3-venv python3-pip python3-setuptools python3-dev pybind11-dev \
    libdlpack-dev python3-numpy
BUILD=$(cd "${GMMDIFF_BUILD_DIR:-build}" && pwd)
[ -x "$BUILD/gmmdiff" ] || { echo "python-install: build the project first (bash scripts/setup.sh)" >&2; exit 2; }
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT

# The check both installs must pass, run from a directory with no source or build tree in it.
check() {  # check LABEL PYTHON [PYTHONPATH]
  local label=$1 py=$2 path=${3:-}
  "$BUILD/gmmdiff" sample --preset random-sphere --d 6 --K 3 --radius 2 --model-seed 4 --n 777 --T 12 \
      --seed 5 --out "$SCRATCH/cli.npy" -q
  (cd "$SCRATCH" && env -u PYTHONPATH ${path:+PYTHONPATH="$path"} "$py" -c '
import sys, numpy as np, gmmdiff
m = gmmdiff.Mixture.preset("random-sphere", d=6, K=3, radius=2, seed=4)
y = gmmdiff.sample(m, n=777, T=12, seed=5)
ref = np.load("cli.npy")
assert y.dtype == ref.dtype and y.tobytes() == ref.tobytes(), "not the CLI sample"
print(sys.argv[1] + ": gmmdiff", gmmdiff.__version__, "from", gmmdiff.__file__, "- sample equals the CLI")
' "$label")
}

t0=$SECONDS
/usr/bin/python3 -m venv --system-site-packages "$SCRATCH/venv"
"$SCRATCH/venv/bin/pip" install -q --no-build-isolation --no-index "$ROOT"
check "pip install (venv, $((SECONDS - t0)) s)" "$SCRATCH/venv/bin/python"

PY=$(sed -n 's/^PYTHON_EXECUTABLE = "\(.*\)"$/\1/p' "$BUILD/python/gmmdiff/_build.py")
cmake --install "$BUILD" --prefix "$SCRATCH/prefix" >/dev/null
SITE=$(dirname "$(dirname "$(ls "$SCRATCH"/prefix/lib/python3*/*-packages/gmmdiff/__init__.py)")")
check "cmake --install" "$PY" "$SITE"
