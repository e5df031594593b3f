#!/usr/bin/env bash
# The main job: the embedded default bound-verification sweep ("is DDPM dimension-free on
# mixtures?"), on the GPU when there is one, else on the CPU (a few minutes), then its report
# (tables, fitted slopes, PNG plots) under runs/; then a short (tiny) version of every claim's
# sweep (docs/claims.md), and last ONE table: claim | measured [95% CI] | claimed | verdict |
# details. Re-running resumes where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
backend=$(./build/gmmdiff info --json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["auto_backend"])')
out=${1:-runs/default-$backend}
# The sweep without its report, then the report once (the verdict table is printed once).
./build/gmmdiff sweep --out "$out" --no-report "${@:2}"
./build/gmmdiff report "$out"
echo "main job: results in $out (report.md, results.jsonl, results.csv, *.png)"

# The claims' short sweeps: their progress goes to a log, their verdicts to the one table below.
claims_dir=runs/claims-tiny
mkdir -p "$claims_dir"
dirs=()
for claim in $(./build/gmmdiff claims --json | /usr/bin/python3 -c 'import json,sys; print(" ".join(c["claim"] for c in json.load(sys.stdin)))'); do
  ./build/gmmdiff sweep "$claim" --size tiny --out "$claims_dir/$claim" --no-report >>"$claims_dir/sweeps.log" 2>&1 ||
    { echo "main job: the $claim sweep failed (see $claims_dir/sweeps.log)" >&2; exit 1; }
  dirs+=("$claims_dir/$claim")
done
echo
echo "claims (tiny sweeps, docs/claims.md; details per claim in claim.md beside its report.md):"
./build/gmmdiff claims --verdicts "${dirs[@]}"
