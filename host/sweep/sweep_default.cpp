// gmmdiff: the embedded default sweep, "is DDPM dimension-free on mixtures?" (docs/sweeps.md).
// `gmmdiff sweep --print-default` prints the one for this machine's backend, to copy and edit.
//
// Families: two-point (means in a 1-D subspace: for sd = 1 the orthogonal part stays exactly
// N(0, I), dimension-free for a trivial reason, THEORY.md) and random-sphere with K = d and
// K = 4d (full-rank means), each at sd = 1 (Theorem 1's setting) and sd = 0.5. Exact score over
// all T; the "means" score error (the exact score of a mixture with perturbed means) at a few eps
// at one T, for TV against the realised eps_score.
#include <string>

#include "gmmdiff/error.hpp"
#include "gmmdiff/sweep.hpp"

namespace gmmdiff {
namespace {

// T starts at 64: with the default lcw constants (c1 = 10) the recursion reaches abar = 1 early
// when c1 log T / T >= 1, i.e. T < 40, and those T take fewer effective steps (docs/cli.md).
// CPU: under a minute on 2 cores alone (measured: docs/sweeps.md); the sample costs n d T (40 +
// K/2) ns and the bounds about half as much again: every row carries the bracket (ddpm path bound,
// 256 outer draws x 8 continuations), whose upper side is what can confirm a claim.
const char* const kDefaultCpu = R"JSON({
  "name": "dimension-free-cpu",
  "description": "Is DDPM dimension-free on mixtures? Theorem 1 of arXiv 2504.05300, sized for 2 CPU cores.",
  "family": ["two-point", {"name": "random-sphere", "K": ["d", "4d"], "full_rank": true}],
  "radius": 2,
  "sd": [1, 0.5],
  "d": [2, 8, 32],
  "sampler": "ddpm",
  "variance": "beta",
  "schedule": "lcw",
  "stop": 1,
  "n": 30000,
  "seeds": 1,
  "tv": {"stats": "means,random:8,radial", "bins": 0, "bootstrap": 100},
  "bounds": {"M": 8, "n": 256},
  "backend": "cpu",
  "grids": [
    {"T": [64, 96, 128, 192]},
    {"T": 64, "sd": 1, "score_error": "means", "eps": [0.2, 0.5]}
  ]
})JSON";

// GPU: full scale on one GPU. The largest cost is random-sphere at d = 256, K = 1024:
// n d K T_sum 4 FLOP = 2e6 * 256 * 1024 * 1984 * 4 = 4e15 FLOP per sd, about 1.5 minutes at
// 50 TFLOP/s; two-point reaches d = 1024 (memory-bound: 8 bytes per elt-step). The bounds at
// `gmmdiff bracket`'s defaults (4096 outer draws x 32 continuations) cost 1.3e5 particle-steps
// per step, under a tenth of the sample's 2e6.
const char* const kDefaultGpu = R"JSON({
  "name": "dimension-free-gpu",
  "description": "Is DDPM dimension-free on mixtures? Theorem 1 of arXiv 2504.05300 at full scale on one GPU.",
  "radius": 2,
  "sd": [1, 0.5],
  "sampler": "ddpm",
  "variance": "beta",
  "schedule": "lcw",
  "stop": 1,
  "n": 2000000,
  "seeds": 1,
  "tv": {"stats": "means,random:16,radial", "bins": 0, "bootstrap": 200},
  "bounds": {"M": 32, "n": 4096},
  "backend": "cuda",
  "grids": [
    {"family": "two-point", "d": [4, 16, 64, 256, 1024], "T": [64, 128, 256, 512, 1024]},
    {"family": {"name": "random-sphere", "K": ["d", "4d"], "full_rank": true}, "d": [4, 16, 64, 256],
     "T": [64, 128, 256, 512, 1024]},
    {"family": ["two-point", {"name": "random-sphere", "K": ["d", "4d"], "full_rank": true}], "d": [16, 256],
     "T": 256, "sd": 1, "score_error": "means", "eps": [0.05, 0.2, 0.5]}
  ]
})JSON";

}  // namespace

std::string default_sweep_json(const std::string& backend_kind) {
  if (backend_kind == "cpu") return kDefaultCpu;
  if (backend_kind == "cuda") return kDefaultGpu;
  throw Error("default sweep: unknown backend kind \"" + backend_kind + "\" (allowed: cpu, cuda)");
}

}  // namespace gmmdiff
