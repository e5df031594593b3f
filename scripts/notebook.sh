#!/usr/bin/env bash
# Executes the example notebook(s) with the build's Python package, so that they never rot:
#   scripts/notebook.sh [--update] [NOTEBOOK...]     (default: examples/*.ipynb)
# Each notebook is copied to a scratch directory (what it writes, e.g. runs/, stays there) and
# run there by jupyter nbconvert with Debian's python3 kernel (python3-ipykernel); any cell that
# raises fails the script. --update writes the executed notebook, with its real output, back over
# the committed one. Environment: GMMDIFF_BUILD_DIR (build), GMMDIFF_NOTEBOOK_TIMEOUT (seconds
# per cell, 600).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
UPDATE=0
if [ "${1:-}" = "--update" ]; then UPDATE=1; shift; fi
BUILD=$(cd "${GMMDIFF_BUILD_DIR:-build}" && pwd)
[ -f "$BUILD/python/gmmdiff/__init__.py" ] || { echo "notebook: no Python package in $BUILD/python (build first)" >&2; exit 2; }
command -v jupyter-nbconvert >/dev/null || { echo "notebook: jupyter-nbconvert is missing (apt-get install jupyter-nbconvert python3-ipykernel)" >&2; exit 2; }
NOTEBOOKS=("$@")
[ ${#NOTEBOOKS[@]} -gt 0 ] || NOTEBOOKS=(examples/*.ipynb)
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT
export PYTHONPATH="$BUILD/python${PYTHONPATH:+:$PYTHONPATH}"
export MPLBACKEND=module://matplotlib_inline.backend_inline
for nb in "${NOTEBOOKS[@]}"; do
  name=$(basename "$nb")
  cp "$nb" "$SCRATCH/$name"
  t0=$SECONDS
  (cd "$SCRATCH" && jupyter-nbconvert --to notebook --execute --inplace \
      --ExecutePreprocessor.timeout="${GMMDIFF_NOTEBOOK_TIMEOUT:-600}" --ExecutePreprocessor.kernel_name=python3 \
      "$name" >/dev/null 2>"$SCRATCH/$name.log") || { cat "$SCRATCH/$name.log" >&2; echo "notebook: $nb failed" >&2; exit 1; }
  echo "notebook: $nb ran in $((SECONDS - t0)) s" >&2
  if [ "$UPDATE" = 1 ]; then
    cp "$SCRATCH/$name" "$ROOT/$nb"
    echo "notebook: $nb updated with this run's output" >&2
  fi
done
