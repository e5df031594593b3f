#!/usr/bin/env bash
# The main job: the embedded default bound-verification sweep ("is DDPM dimension-free on
# mixtures?"), on the GPU when there is one, else on the CPU (a few minutes), then its report
# (tables, fitted slopes, PNG plots) under runs/. Re-running resumes where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
backend=$(./build/gmmdiff info --json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["auto_backend"])')
out=${1:-runs/default-$backend}
# The sweep without its report, then the report once (the verdict table is printed once).
./build/gmmdiff sweep --out "$out" --no-report "${@:2}"
./build/gmmdiff report "$out"
echo "main job: results in $out (report.md, results.jsonl, results.csv, *.png)"
