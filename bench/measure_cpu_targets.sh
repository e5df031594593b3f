#!/usr/bin/env bash
# Measures every target figure of issue 16 (CPU speed) in one run, with `uptime` before and after:
#   1. gmmdiff bench at d = 64, K = 8 and 64 (T = 64: no identity step), with % of roofline;
#   2. d = 2 and d = 8 (K = 8) against an older build, in the same run (ratio new / old);
#   3. the old build's embedded default sweep, run by both builds: wall time, new against old, and
#      whether its figures agree;
#   4. against the NumPy peer (bench/run_peers.py, same configurations, same run): bench figures,
#      and whole `gmmdiff sample` processes against whole peer processes in 5 rounds of one each
#      (wall times, the hypervisor's steal during each; each round's ratio, their median, and the
#      ratio of the best times).
# Figures measured while the 1-minute load is well above 0 share the cores with other work: say so
# beside them (bench/RESULTS.md only carries figures from a quiet machine).
#
# Usage: bench/measure_cpu_targets.sh --old OLD_GMMDIFF [--new NEW_GMMDIFF] [--python /usr/bin/python3]
#        [--n 100000] [--skip-sweep] [--out DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
old="" new="$root/build/gmmdiff" py=/usr/bin/python3 n=100000 skip_sweep=0 out=""
while [[ $# -gt 0 ]]; do
  case $1 in
    --old) old=$2; shift 2 ;;
    --new) new=$2; shift 2 ;;
    --python) py=$2; shift 2 ;;
    --n) n=$2; shift 2 ;;
    --skip-sweep) skip_sweep=1; shift ;;
    --out) out=$2; shift 2 ;;
    *) echo "measure_cpu_targets: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ -x $old ]] || { echo "measure_cpu_targets: --old OLD_GMMDIFF (the build to compare with) is required" >&2; exit 2; }
[[ -x $new ]] || { echo "measure_cpu_targets: no new build at $new (--new)" >&2; exit 2; }
out=${out:-$(mktemp -d /tmp/gmmdiff-cpu-targets.XXXXXX)}
mkdir -p "$out"
T=64
ticks() { awk '/^cpu /{print $2+$3+$4+$5+$6+$7+$8+$9, $9; exit}' /proc/stat 2>/dev/null || echo "0 0"; }
timed() {  # timed CMD...: the wall time of one run, and the steal (% of all CPUs' time) during it
  local s e a b
  a=$(ticks); s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); b=$(ticks)
  echo "$(echo "$e - $s" | bc) $(echo "$a $b" | awk '{dt = $3 - $1; printf (dt > 0 ? "%.1f" : "-"), (dt > 0 ? 100 * ($4 - $2) / dt : 0)}')"
}

echo "== measure_cpu_targets $(date -u +%FT%TZ) on $(hostname): $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)"
echo "   new: $new ($("$new" --version 2>/dev/null | head -1))"
echo "   old: $old ($("$old" --version 2>/dev/null | head -1))"
echo "   results in $out"
echo "== uptime before: $(uptime)"

echo
echo "== 1. bench, d = 64, K = 8 and 64, fp32, n = $n, T = $T (the new build)"
"$new" bench --backend cpu --n "$n" --d 64 --K 8,64 --T $T --repeats 5 --warmup 1 --json "$out/bench-d64.json"

echo
echo "== 2. d = 2 and 8, K = 8, new against old (T = $T, n = $n; each build's own bench, one after the other)"
steal_of() {  # steal_of FILE CMD...: runs CMD, writes the steal (% of all CPUs' time) during it to FILE
  local f=$1 a b
  shift
  a=$(ticks); "$@"; b=$(ticks)
  echo "$a $b" | awk '{dt = $3 - $1; if (dt > 0) printf "%.1f\n", 100 * ($4 - $2) / dt; else print "-"}' >"$f"
}
for r in 1 2; do
  steal_of "$out/small-old-$r.steal" "$old" bench --backend cpu --n "$n" --d 2,8 --K 8 --T $T --repeats 5 --warmup 1 \
      --json "$out/small-old-$r.json" >/dev/null
  steal_of "$out/small-new-$r.steal" "$new" bench --backend cpu --n "$n" --d 2,8 --K 8 --T $T --repeats 5 --warmup 1 \
      --json "$out/small-new-$r.json" >/dev/null
done
"$py" - "$out" <<'EOF'
import json, sys, os
out = sys.argv[1]
def load(name):
    with open(os.path.join(out, name)) as f:
        return {(r["d"], r["K"]): r for r in json.load(f)["results"]}
steal = lambda name: open(os.path.join(out, name)).read().strip()
print("steal: of all CPUs' time during each build's whole bench call, what the hypervisor took (/proc/stat)")
print("%4s %4s %14s %14s %7s %16s %8s %15s" % ("d", "K", "old elt-st/s", "new elt-st/s", "new/old", "new path", "%roof",
                                              "steal% old/new"))
for rep in (1, 2):
    o, n = load("small-old-%d.json" % rep), load("small-new-%d.json" % rep)
    st = "%s/%s" % (steal("small-old-%d.steal" % rep), steal("small-new-%d.steal" % rep))
    for key in sorted(n):
        a, b = o[key]["elt_steps_per_s"], n[key]["elt_steps_per_s"]
        roof = n[key].get("pct_roofline")
        print("%4d %4d %14.4g %14.4g %6.2fx %16s %8s %15s" % (key[0], key[1], a, b, b / a, n[key]["path_taken"],
                                                            "%.1f" % roof if roof is not None else "-", st))
EOF

if [[ $skip_sweep == 0 ]]; then
  echo
  # The old build's embedded default, run by both: the new default may do more (bounds since
  # issue 10), and the target compares the same sweep.
  echo "== 3. the old build's embedded default sweep (its --print-default, backend cpu), old then new"
  "$old" sweep --print-default | "$py" -c 'import json, sys; s = json.load(sys.stdin); s["backend"] = "cpu"; print(json.dumps(s, indent=2))' \
      >"$out/sweep-spec.json"
  for b in old new; do
    bin=$old; [[ $b == new ]] && bin=$new
    rm -rf "$out/sweep-$b"
    s=$(date +%s.%N)
    "$bin" sweep "$out/sweep-spec.json" -o "$out/sweep-$b" --no-report >"$out/sweep-$b.log" 2>&1
    e=$(date +%s.%N)
    echo "$b: $(echo "$e - $s" | bc) s wall" | tee "$out/sweep-$b.seconds"
  done
  "$py" - "$out" <<'EOF'
import json, sys, os, glob
out = sys.argv[1]
def rows(b):
    res = {}
    for p in glob.glob(os.path.join(out, "sweep-" + b, "**", "*.jsonl"), recursive=True):
        with open(p) as f:
            for line in f:
                if line.strip():
                    r = json.loads(line)
                    res[r["key"]] = r  # a run's key: the hash of its parameters
    return res
# Every field but times, rates, dates and build names.
SKIP = ("second", "elt_steps", "date", "time", "_at", "version", "commit", "host", "threads")
def figures(r):
    if isinstance(r, dict):
        return {k: figures(v) for k, v in r.items() if not any(s in k for s in SKIP)}
    if isinstance(r, list):
        return [figures(v) for v in r]
    return r
o, n = rows("old"), rows("new")
t_old = float(open(os.path.join(out, "sweep-old.seconds")).read().split()[1])
t_new = float(open(os.path.join(out, "sweep-new.seconds")).read().split()[1])
same = added_only = 0
added, differ = set(), []
for k in n:
    if k not in o:
        continue
    a, b = figures(o[k]), figures(n[k])
    if a == b:
        same += 1
        continue
    # fields the new build adds (absent or null in the old rows) do not change a figure the old had
    new_fields = {f for f in b if a.get(f) is None and b[f] is not None}
    if {f: v for f, v in a.items() if f not in new_fields} == {f: v for f, v in b.items() if f not in new_fields}:
        added_only += 1
        added |= new_fields
    else:
        differ.append(k)
print("default sweep: %d runs old, %d new, %d in both; %d with identical figures, %d identical but for new fields %s, "
      "%d differing %s" % (len(o), len(n), len(set(o) & set(n)), same, added_only, sorted(added), len(differ), differ[:5]))
print("wall %.1f s old, %.1f s new: %.2fx" % (t_old, t_new, t_old / t_new))
for b, rs in (("old", o), ("new", n)):  # where each build's time went, summed over its rows
    S = sum(r.get("seconds", 0) for r in rs.values())
    E = sum(r.get("eps_seconds", 0) for r in rs.values())
    W = sum(r.get("wall_seconds", 0) for r in rs.values())
    print("  %s: rows' wall %.1f s = sampling %.1f + eps_score %.1f + the rest (TV, eps_Jacobi, bounds) %.1f"
          % (b, W, S, E, W - S - E))
EOF
fi

echo
echo "== 4. against the NumPy peer ($py), same run: bench figures (run_peers.py), then whole processes"
"$py" "$here/run_peers.py" --gmmdiff "$new" --backend cpu --n "$n" --d 64,2 --K 8 --T $T --repeats 5 --warmup 1 \
    --peers numpy --python "$py" --out "$out/peers.json"
runs=5
echo "whole processes, $runs rounds, each a gmmdiff sample (writes its .npy) then a peer process (one pass, no"
echo "warm-up), so that each round's ratio compares two runs a few seconds apart; steal: of all CPUs' time"
echo "during that run, what the hypervisor took (/proc/stat)"
printf "%4s %4s %6s %10s %7s %10s %7s %8s\n" d K round "gmmdiff_s" "steal%" "numpy_s" "steal%" "ratio"
for d in 64 2; do
  ratios=() gs=() ps=()
  for r in $(seq $runs); do
    read -r g gst < <(timed "$new" sample --preset random-sphere --d $d --K 8 --radius 2 --sd 1 --n "$n" --T $T \
        --seed 0 --backend cpu -q -o "$out/sample.npy")
    read -r p pst < <(cd "$here/peers" && timed "$py" numpy_peer.py --n "$n" --d $d --K 8 --T $T --repeats 1 --warmup 0)
    ratio=$(echo "$p / $g" | bc -l)
    ratios+=("$ratio") gs+=("$g") ps+=("$p")
    printf "%4d %4d %6d %10.3f %7s %10.3f %7s %7.1fx\n" $d 8 "$r" "$g" "$gst" "$p" "$pst" "$ratio"
  done
  printf "%s\n" "${ratios[@]}" | sort -g | awk -v d=$d -v runs=$runs '{r[NR] = $1}
      END {printf "d = %d, K = 8: median of the %d rounds'"'"' ratios %.1fx (lowest %.1fx, highest %.1fx)\n", d, runs, r[int((NR + 1) / 2)], r[1], r[NR]}'
  gbest=$(printf "%s\n" "${gs[@]}" | sort -g | head -1)
  pbest=$(printf "%s\n" "${ps[@]}" | sort -g | head -1)
  printf "d = %d, K = 8: best of %d, gmmdiff %.3f s, numpy %.3f s: %.1fx\n" $d $runs "$gbest" "$pbest" \
      "$(echo "$pbest / $gbest" | bc -l)"
done
rm -f "$out/sample.npy"
echo
echo "== uptime after: $(uptime)"
