#!/usr/bin/env bash
# Byte-compares `gmmdiff sample` outputs of two builds over a grid of d, K, precision, sampler,
# covariance, score error and step path: a change meant to keep every seed's particles (issue 16)
# must print "0 differ". Usage: scripts/compare_builds.sh OLD_GMMDIFF NEW_GMMDIFF [quick]
set -euo pipefail
old=${1:?old gmmdiff binary}
new=${2:?new gmmdiff binary}
quick=${3:-}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
ds="1 2 3 4 5 7 8 9 15 16 17 31 32 33 64 65 100"
Ks="1 2 3 8 16 17 64 65 130"
[[ -n $quick ]] && { ds="1 2 5 8 17 64"; Ks="1 3 8 64 130"; }
runs=0 differ=0
run() {  # name, args...
  local name=$1; shift
  "$old" sample "$@" -q -o "$dir/old.npy"
  "$new" sample "$@" -q -o "$dir/new.npy"
  runs=$((runs + 1))
  if ! cmp -s "$dir/old.npy" "$dir/new.npy"; then
    differ=$((differ + 1))
    echo "DIFFER: $name: $*"
  fi
}
for d in $ds; do
  for K in $Ks; do
    for prec in fp32 fp64; do
      common=(--preset random-sphere --d "$d" --K "$K" --n 600 --chunk 512 --T 24 --seed 7 --precision "$prec" --threads 2)
      run "ddpm" "${common[@]}"
      run "ddim gauss" "${common[@]}" --sampler ddim --score-error gaussian --eps 0.2 --eps-samples 16
      run "sd pattern" "${common[@]}" --sd $(for ((k = 0; k < K; k++)); do echo -n "$(( k % 3 + 1 )).0 "; done) \
          --variance posterior --score-error bias --eps 0.1 --eps-samples 16
    done
  done
done
# the products (BLAS) path: K d values beyond the fused path's 1 MiB
run "products" --preset random-sphere --d 300 --K 1000 --n 256 --T 8 --seed 3 --threads 2
echo "$runs runs, $differ differ"
[[ $differ == 0 ]]
