#!/usr/bin/env bash
# Scaling over MPI ranks on this machine (docs/scale.md, "Measured scaling"): `gmmdiff sample`,
# `tv`, `bracket` and `sweep` under `mpirun -np 1` and `-np 2`, one OpenMP thread per rank (one core each),
# the two rank counts alternated REPEATS times in one run so that a shared, noisy machine slows
# both alike; prints a Markdown table of the median wall times and their ratio (the speedup), and
# of the CPU seconds of all ranks together and their ratio (the work splitting adds: 1.00 is
# none), with `uptime` before and after. Results are checked equal across rank counts (cmp, the JSON, the rows).
#   bench/scale_mpi.sh [GMMDIFF] [REPEATS]     (default build/gmmdiff, 3)
set -euo pipefail
cd "$(dirname "$0")/.."
G=$(readlink -f "${1:-build/gmmdiff}")
REPEATS=${2:-3}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
export OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_rmaps_base_oversubscribe=1
export OMP_NUM_THREADS=1 CI=1
root=()
[ "$(id -u)" -eq 0 ] && root=(--allow-run-as-root)
mpi() { local np=$1; shift; mpirun -np "$np" --bind-to core "${root[@]}" "$G" "$@"; }

SAMPLE=(sample --preset random-sphere --d 32 --K 8 --n 400000 --T 64 --seed 1 --backend cpu -q)
TV=(tv "$W/y1.npy" --preset random-sphere --d 32 --K 8 --seed 1 --stat means,random:16,radial --backend cpu)
BRACKET=(bracket --preset random-sphere --d 8 --K 4 --T 64 --seed 1 --n 8192 --M 16 --n-lower 20000 --backend cpu)
cat >"$W/sweep.json" <<'EOF'
{"name": "scale", "family": "random-sphere", "d": [8, 16], "K": 8, "T": [32, 64, 128], "n": 20000,
 "seeds": [0, 1], "tv": {"stats": "means,radial"}, "backend": "cpu"}
EOF

declare -A times cpu
run() {  # name np command...: appends the wall and CPU (user + sys, all ranks) seconds to times/cpu[name,np]
  local name=$1 np=$2 t
  shift 2
  t=$( { TIMEFORMAT='%R %U %S'; time "$@" >/dev/null 2>"$W/err"; } 2>&1 ) || { cat "$W/err" >&2; exit 1; }
  read -r wall user sys <<<"$t"
  times[$name,$np]+="$wall "
  cpu[$name,$np]+="$(echo "$user + $sys" | bc) "
}
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

echo "uptime before: $(uptime)"
for rep in $(seq "$REPEATS"); do
  for np in 1 2; do
    run sample "$np" mpi "$np" "${SAMPLE[@]}" --out "$W/y$np.npy"
    run tv "$np" mpi "$np" "${TV[@]}" --json "$W/tv$np.json"
    run bracket "$np" mpi "$np" "${BRACKET[@]}" --json "$W/br$np.json"
    rm -rf "$W/s$np"
    run sweep "$np" mpi "$np" sweep "$W/sweep.json" --no-report --out "$W/s$np"
  done
done
echo "uptime after:  $(uptime)"
cmp "$W/y1.npy" "$W/y2.npy"
/usr/bin/python3 - "$W" <<'EOF'
import json, sys
w = sys.argv[1]
a, b = (json.load(open(f"{w}/tv{n}.json")) for n in (1, 2))
a.pop("backend"); b.pop("backend")
assert a == b, "tv reports differ"
a, b = (json.load(open(f"{w}/br{n}.json")) for n in (1, 2))
for k in ("seconds", "rate"): a.pop(k); b.pop(k)
for x in (a, b): x["parameters"].pop("bounds_device", None)
assert a == b, "bracket figures differ"
ign = {"seconds", "eps_seconds", "wall_seconds", "elt_steps_per_s", "finished_at", "version", "device", "backend", "chunks"}
rows = [{r["key"]: {k: v for k, v in r.items() if k not in ign} for r in map(json.loads, open(f"{w}/s{n}/results.jsonl"))} for n in (1, 2)]
assert rows[0] == rows[1], "sweep rows differ"
EOF
echo "results equal for 1 and 2 ranks (sample bytes, tv report, bracket figures, sweep rows)"
echo
echo "| command | wall, 1 rank (s) | wall, 2 ranks (s) | speedup | CPU, 1 rank (s) | CPU, 2 ranks (s) | CPU ratio |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for name in sample tv bracket sweep; do
  t1=$(echo "${times[$name,1]}" | median)
  t2=$(echo "${times[$name,2]}" | median)
  c1=$(echo "${cpu[$name,1]}" | median)
  c2=$(echo "${cpu[$name,2]}" | median)
  printf "| %s | %.2f | %.2f | %.2fx | %.2f | %.2f | %.2f |\n" "$name" "$t1" "$t2" "$(echo "$t1 / $t2" | bc -l)" \
    "$c1" "$c2" "$(echo "$c2 / $c1" | bc -l)"
done
