// gmmdiff (claims): the published claims gmmdiff checks and their built-in sweeps
// (include/gmmdiff/claims.hpp, docs/claims.md). The sweeps are sweep files (docs/sweeps.md) kept
// here as text, one per size; `gmmdiff sweep --list` names them and `gmmdiff sweep <name>` runs one.
//
// Sizes: "cpu" about 3 minutes on 2 idle CPU cores (the cost of a row is about
// n d T (40 + K/2) ns of sampling plus its statistics; the quantities cost 2048 draws x 32 steps x
// O(K d (d + 1)) each); "gpu" larger, on one GPU; "tiny" seconds (CI, the main job's short versions).
#include "gmmdiff/claims.hpp"

#include <map>

#include "gmmdiff/error.hpp"
#include "gmmdiff/sweep.hpp"
#include "io/text.hpp"

namespace gmmdiff {
namespace {

const std::vector<Claim> kClaims = {
    {"theorem1", "arXiv 2504.05300, Theorem 1",
     "ddpm: TV(X_1, Y_1) <~ log^2(KT) log^2(T) / T + eps_score sqrt(log T), with no dependence on d",
     "TV(X_0, Y_1) against T and d on random-sphere mixtures with full-rank means (K = d and 4d, sd 1): the "
     "fitted T-exponent of TV / f(K, T) and the d-exponent at fixed T; a d-dependence the theorem excludes "
     "would show in the d-exponent",
     "T-exponent of TV <= -1 (up to logs); d-exponent 0"},
    {"key-lemma", "Wei 2025 (talk), the key lemma of 2504.05300's proof",
     "for sd 1 mixtures, tr(I + J_t(x)) <~ log(KT) with high probability over X_t ~ p_t",
     "max over t of the 99.9th percentile of tr(I + J_t) over exact draws X_t ~ p_t (J_t the Jacobian of the "
     "exact score, factored: no d x d matrix), against log(KT) for K from 2 to 1024 and two T; tr(I + J_t) is "
     "abar_t times the posterior variance of the mean, so the lemma is a statement about it",
     "exponent of max_t p99.9 tr(I + J_t) in log(KT) <= 1"},
    {"smoothness", "arXiv 2405.16418",
     "the score's Lipschitz constant and the second moment along the diffusion are bounded independently of K",
     "max over t and draws of ||J_t(x)||_op (a lower bound on the Lipschitz constant) and max_t E|X_t|^2, for K "
     "from 2 to 4096 at d = 8 (means on the sphere of radius 2): a growth in K would contradict the claim",
     "K-exponent of max ||J_t||_op and of E|X_t|^2: 0"},
    {"kl-rate", "arXiv 2510.27562",
     "ddpm: KL(X_1 || Y_1) <~ d min{d, L^2} / T^2 up to logs (path-KL analyses give only d / T)",
     "TV(X_0, Y_1) against T and d (two-point and random-sphere): by Pinsker TV <= sqrt(KL / 2), so the claim "
     "implies a T-exponent of TV of at most -1; a lower bound falling slower than T^-1 refutes it (the KL "
     "bracket's upper side comes with the two-sided sweep rows)",
     "T-exponent of KL <= -2 (of TV <= -1)"},
    {"ddim-vs-ddpm", "Li, Wei, Chi, Chen 2024 (ddim) against 2504.05300 (ddpm)",
     "ddim: TV <~ d / T + sqrt(d) eps_score + d eps_Jacobi; ddpm's bound has no d",
     "TV of ddim and of ddpm against d at fixed T with exact scores (random-sphere, K = d, full rank): the "
     "d-exponent of each; the theory lets ddim's grow with d where ddpm's does not",
     "d-exponent: ddim <= 1, ddpm 0"},
    {"robustness", "arXiv 2504.05300, Theorem 1 (second term)",
     "TV grows at most linearly in eps_score: + eps_score sqrt(log T)",
     "TV against the realised eps_score for each score-error kind (bias, scale, weights, means, gaussian) at "
     "fixed T, with eps_Jacobi beside it: the exponent of the TV increase over the exact-score run in eps_score",
     "exponent of TV - TV(eps = 0) in eps_score >= 1 (at most linear growth)"},
};

// ---- the sweeps, per size. "backend" names the backend kind the size is for. ----

const std::map<std::string, std::map<std::string, std::string>> kSweeps = {
    {"theorem1",
     {{"cpu", R"JSON({
  "name": "theorem1-cpu",
  "description": "Theorem 1 of arXiv 2504.05300: ddpm TV against T and d, full-rank random-sphere means, sd 1 (2 CPU cores).",
  "family": {"name": "random-sphere", "K": ["d", "4d"], "full_rank": true},
  "radius": 2, "sd": 1, "d": [2, 8, 32], "T": [64, 128, 256],
  "sampler": "ddpm", "n": 30000, "seeds": 1,
  "tv": {"stats": "means,random:8,radial", "bins": 0, "bootstrap": 100},
  "bounds": {"M": 16, "n": 1024},
  "backend": "cpu"
})JSON"},
      {"gpu", R"JSON({
  "name": "theorem1-gpu",
  "description": "Theorem 1 of arXiv 2504.05300: ddpm TV against T and d, full-rank random-sphere means, sd 1 (one GPU).",
  "family": {"name": "random-sphere", "K": ["d", "4d"], "full_rank": true},
  "radius": 2, "sd": 1, "d": [4, 16, 64, 256], "T": [64, 128, 256, 512, 1024],
  "sampler": "ddpm", "n": 2000000, "seeds": 1,
  "tv": {"stats": "means,random:16,radial", "bins": 0, "bootstrap": 200},
  "bounds": {"M": 32, "n": 4096},
  "backend": "cuda"
})JSON"},
      {"tiny", R"JSON({
  "name": "theorem1-tiny",
  "description": "Theorem 1 of arXiv 2504.05300, a few seconds (CI and the main job's short version).",
  "family": {"name": "random-sphere", "K": "d", "full_rank": true},
  "radius": 2, "sd": 1, "d": [2, 4], "T": [64, 128],
  "sampler": "ddpm", "n": 4000, "seeds": 1,
  "tv": {"stats": "means,random:4", "bins": 0, "bootstrap": 50},
  "bounds": {"M": 32, "n": 2048},
  "backend": "cpu"
})JSON"}}},
    {"key-lemma",
     {{"cpu", R"JSON({
  "name": "key-lemma-cpu",
  "description": "The key lemma of 2504.05300: tr(I + J_t) <~ log(KT) for sd 1, K from 2 to 1024 (2 CPU cores).",
  "family": "random-sphere", "radius": 3, "sd": 1, "d": 8, "K": [2, 8, 32, 128, 512, 1024], "T": [64, 512],
  "sampler": "ddpm", "n": 4000, "seeds": 1, "quantities": true,
  "tv": {"stats": "means", "bins": 0, "bootstrap": 20},
  "backend": "cpu"
})JSON"},
      {"gpu", R"JSON({
  "name": "key-lemma-gpu",
  "description": "The key lemma of 2504.05300: tr(I + J_t) <~ log(KT) for sd 1, K from 2 to 4096 (one GPU).",
  "family": "random-sphere", "radius": 3, "sd": 1, "d": [8, 32], "K": [2, 8, 32, 128, 512, 2048, 4096],
  "T": [64, 256, 1024],
  "sampler": "ddpm", "n": 100000, "seeds": 1, "quantities": true,
  "tv": {"stats": "means", "bins": 0, "bootstrap": 20},
  "backend": "cuda"
})JSON"},
      {"tiny", R"JSON({
  "name": "key-lemma-tiny",
  "description": "The key lemma of 2504.05300, a few seconds.",
  "family": "random-sphere", "radius": 3, "sd": 1, "d": 4, "K": [2, 8, 32], "T": 64,
  "sampler": "ddpm", "n": 1000, "seeds": 1, "quantities": true,
  "tv": {"stats": "means", "bins": 0, "bootstrap": 20},
  "backend": "cpu"
})JSON"}}},
    {"smoothness",
     {{"cpu", R"JSON({
  "name": "smoothness-cpu",
  "description": "arXiv 2405.16418: Lipschitz constant and second moment independent of K, K from 2 to 4096 at d = 8 (2 CPU cores).",
  "family": "random-sphere", "radius": 2, "sd": 1, "d": 8, "K": [2, 8, 32, 128, 512, 2048, 4096], "T": 64,
  "sampler": "ddpm", "n": 2000, "seeds": 1, "quantities": true,
  "tv": {"stats": "means", "bins": 0, "bootstrap": 20},
  "backend": "cpu"
})JSON"},
      {"gpu", R"JSON({
  "name": "smoothness-gpu",
  "description": "arXiv 2405.16418: Lipschitz constant and second moment independent of K, K from 2 to 16384 (one GPU).",
  "family": "random-sphere", "radius": 2, "sd": [1, 0.5], "d": [8, 32],
  "K": [2, 8, 32, 128, 512, 2048, 4096, 16384], "T": 256,
  "sampler": "ddpm", "n": 100000, "seeds": 1, "quantities": true,
  "tv": {"stats": "means", "bins": 0, "bootstrap": 20},
  "backend": "cuda"
})JSON"},
      {"tiny", R"JSON({
  "name": "smoothness-tiny",
  "description": "arXiv 2405.16418, a few seconds.",
  "family": "random-sphere", "radius": 2, "sd": 1, "d": 4, "K": [2, 16, 64], "T": 64,
  "sampler": "ddpm", "n": 1000, "seeds": 1, "quantities": true,
  "tv": {"stats": "means", "bins": 0, "bootstrap": 20},
  "backend": "cpu"
})JSON"}}},
    {"kl-rate",
     {{"cpu", R"JSON({
  "name": "kl-rate-cpu",
  "description": "arXiv 2510.27562: ddpm KL <~ d min(d, L^2) / T^2; TV against T and d (2 CPU cores).",
  "family": ["two-point", {"name": "random-sphere", "K": "d", "full_rank": true}],
  "radius": 2, "sd": 1, "d": [2, 8, 32], "T": [64, 128, 256, 512],
  "sampler": "ddpm", "n": 20000, "seeds": 1,
  "tv": {"stats": "means,random:8,radial", "bins": 0, "bootstrap": 100},
  "bounds": {"M": 16, "n": 1024},
  "backend": "cpu"
})JSON"},
      {"gpu", R"JSON({
  "name": "kl-rate-gpu",
  "description": "arXiv 2510.27562: ddpm KL <~ d min(d, L^2) / T^2; TV against T and d (one GPU).",
  "family": ["two-point", {"name": "random-sphere", "K": "d", "full_rank": true}],
  "radius": 2, "sd": 1, "d": [4, 16, 64, 256], "T": [64, 128, 256, 512, 1024, 2048],
  "sampler": "ddpm", "n": 2000000, "seeds": 1,
  "tv": {"stats": "means,random:16,radial", "bins": 0, "bootstrap": 200},
  "bounds": {"M": 32, "n": 4096},
  "backend": "cuda"
})JSON"},
      {"tiny", R"JSON({
  "name": "kl-rate-tiny",
  "description": "arXiv 2510.27562, a few seconds.",
  "family": "two-point", "radius": 2, "sd": 1, "d": [2, 4], "T": [64, 128],
  "sampler": "ddpm", "n": 4000, "seeds": 1,
  "tv": {"stats": "means", "bins": 0, "bootstrap": 50},
  "bounds": {"M": 32, "n": 2048},
  "backend": "cpu"
})JSON"}}},
    {"ddim-vs-ddpm",
     {{"cpu", R"JSON({
  "name": "ddim-vs-ddpm-cpu",
  "description": "Li, Wei, Chi, Chen 2024: ddim TV <~ d / T; against ddpm's d-free bound, TV against d at T = 128 (2 CPU cores).",
  "family": {"name": "random-sphere", "K": "d", "full_rank": true},
  "radius": 2, "sd": 1, "d": [2, 4, 8, 16, 32], "T": 128,
  "sampler": ["ddpm", "ddim"], "n": 30000, "seeds": 1,
  "tv": {"stats": "means,random:8,radial", "bins": 0, "bootstrap": 100},
  "bounds": {"M": 16, "n": 1024},
  "backend": "cpu"
})JSON"},
      {"gpu", R"JSON({
  "name": "ddim-vs-ddpm-gpu",
  "description": "Li, Wei, Chi, Chen 2024: ddim TV <~ d / T; against ddpm's d-free bound, TV against d (one GPU).",
  "family": {"name": "random-sphere", "K": "d", "full_rank": true},
  "radius": 2, "sd": 1, "d": [4, 8, 16, 32, 64, 128, 256], "T": [128, 512],
  "sampler": ["ddpm", "ddim"], "n": 2000000, "seeds": 1,
  "tv": {"stats": "means,random:16,radial", "bins": 0, "bootstrap": 200},
  "bounds": {"M": 32, "n": 4096},
  "backend": "cuda"
})JSON"},
      {"tiny", R"JSON({
  "name": "ddim-vs-ddpm-tiny",
  "description": "ddim against ddpm in d, a few seconds.",
  "family": {"name": "random-sphere", "K": "d", "full_rank": true},
  "radius": 2, "sd": 1, "d": [2, 4], "T": 64,
  "sampler": ["ddpm", "ddim"], "n": 4000, "seeds": 1,
  "tv": {"stats": "means", "bins": 0, "bootstrap": 50},
  "bounds": {"M": 32, "n": 2048},
  "backend": "cpu"
})JSON"}}},
    {"robustness",
     {{"cpu", R"JSON({
  "name": "robustness-cpu",
  "description": "Theorem 1's second term: TV against the realised eps_score for every score-error kind, T = 128 (2 CPU cores).",
  "family": ["two-point", {"name": "random-sphere", "K": "d", "full_rank": true}],
  "radius": 2, "sd": 1, "d": 8, "T": 128, "sampler": "ddpm", "n": 20000, "seeds": 1,
  "tv": {"stats": "means,random:8,radial", "bins": 0, "bootstrap": 100},
  "bounds": {"M": 16, "n": 1024},
  "backend": "cpu",
  "grids": [
    {"score_error": "none"},
    {"score_error": ["bias", "scale", "weights", "means", "gaussian"], "eps": [0.05, 0.1, 0.2, 0.4]}
  ]
})JSON"},
      {"gpu", R"JSON({
  "name": "robustness-gpu",
  "description": "Theorem 1's second term: TV against the realised eps_score for every score-error kind and profile (one GPU).",
  "family": ["two-point", {"name": "random-sphere", "K": "d", "full_rank": true}],
  "radius": 2, "sd": 1, "d": [8, 64], "T": 256, "sampler": "ddpm", "n": 2000000, "seeds": 1,
  "tv": {"stats": "means,random:16,radial", "bins": 0, "bootstrap": 200},
  "bounds": {"M": 32, "n": 4096},
  "backend": "cuda",
  "grids": [
    {"score_error": "none"},
    {"score_error": ["bias", "scale", "weights", "means", "gaussian"], "eps": [0.02, 0.05, 0.1, 0.2, 0.4],
     "error_profile": ["uniform", "front-loaded", "back-loaded"]}
  ]
})JSON"},
      {"tiny", R"JSON({
  "name": "robustness-tiny",
  "description": "TV against eps_score per kind, a few seconds.",
  "family": "two-point", "radius": 2, "sd": 1, "d": 2, "T": 64, "sampler": "ddpm", "n": 4000, "seeds": 1,
  "tv": {"stats": "means", "bins": 0, "bootstrap": 50},
  "bounds": {"M": 32, "n": 2048},
  "backend": "cpu",
  "grids": [
    {"score_error": "none"},
    {"score_error": ["bias", "means"], "eps": [0.1, 0.4]}
  ]
})JSON"}}},
};

std::string names_text() {
  std::vector<std::string> n = {"default"};
  for (const Claim& c : kClaims) n.push_back(c.name);
  return text::join(n);
}

std::string normal_size(const std::string& size) {
  if (size == "cpu" || size == "tiny") return size;
  if (size == "gpu" || size == "cuda") return "gpu";
  throw Error("sweep size \"" + size + "\" (allowed: cpu, gpu, tiny)");
}

}  // namespace

const std::vector<Claim>& claims() { return kClaims; }

const Claim& find_claim(const std::string& name) {
  for (const Claim& c : kClaims)
    if (c.name == name) return c;
  throw Error("unknown claim \"" + name + "\" (known: " + names_text() + ")");
}

std::vector<BuiltinSweep> builtin_sweeps() {
  std::vector<BuiltinSweep> out;
  out.push_back({"default", "is ddpm dimension-free on mixtures? (two-point and random-sphere, T and d; the "
                            "sweep `gmmdiff sweep` runs without a name)"});
  for (const Claim& c : kClaims) out.push_back({c.name, c.paper + ": " + c.statement});
  return out;
}

bool is_builtin_sweep(const std::string& name) {
  if (name == "default") return true;
  for (const Claim& c : kClaims)
    if (c.name == name) return true;
  return false;
}

std::string builtin_sweep_json(const std::string& name, const std::string& size) {
  const std::string s = normal_size(size);
  if (name == "default") {
    if (s == "tiny") throw Error("the default sweep has sizes cpu and gpu only");
    return default_sweep_json(s == "gpu" ? "cuda" : "cpu");
  }
  const auto it = kSweeps.find(name);
  if (it == kSweeps.end()) throw Error("unknown built-in sweep \"" + name + "\" (known: " + names_text() + ")");
  return it->second.at(s);
}

}  // namespace gmmdiff
