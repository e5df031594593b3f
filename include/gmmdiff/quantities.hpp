// gmmdiff: the quantities the proofs use, measured with exact scores (THEORY.md, "Quantities the
// proofs use"; docs/claims.md):
//
//   inspect             per step t, over exact forward draws X_t ~ p_t and over the sampler's own
//                       Y_t: tr(I + J_t) (the key lemma of arXiv 2504.05300: <~ log(KT) for sd 1),
//                       ||J_t||_op (the score's Lipschitz constant, arXiv 2405.16418) and |x|^2
//                       (the second moment), each as mean, 99th and 99.9th percentiles and max;
//   measure_eps_jacobi  eps_Jacobi = (1/T) sum_t E ||J_t^err(X_t) - J_t(X_t)||_op of the injected
//                       score error (the ddim theorem of Li, Wei, Chi, Chen 2024), where it is
//                       defined.
// J_t = d s_t / d x of the target's exact score, in factored form (no d x d matrix): the same
// machinery as the ddim exact density (host/bounds/score_jacobian.hpp). All in double on the CPU;
// every random number is a pure function of the seed (the X_t are measure_eps_score's draws).
#pragma once
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "gmmdiff/backend.hpp"
#include "gmmdiff/model.hpp"
#include "gmmdiff/sampler.hpp"
#include "gmmdiff/schedule.hpp"

namespace gmmdiff {

/// A quantity over n points: its mean (with the standard error of the mean), 99th and 99.9th
/// percentiles (the order statistics at ceil(q n), so the max when n < 1000) and maximum.
struct QuantitySummary {
  static constexpr double nan = std::numeric_limits<double>::quiet_NaN();
  double mean = nan, se = nan, p99 = nan, p999 = nan, max = nan;
  uint64_t n = 0;
  /// The summary of values (reordered).
  static QuantitySummary of(std::vector<double>& values);
};

/// One population (X_t ~ p_t or the sampler's Y_t) at one step.
struct InspectPopulation {
  QuantitySummary trace;   ///< tr(I + J_t(x))
  QuantitySummary opnorm;  ///< ||J_t(x)||_op (its max is a lower bound on the Lipschitz constant of s_t)
  QuantitySummary sq;      ///< |x|^2 (mean: the second moment E|x|^2)
};

struct InspectRow {
  int t = 0;
  double abar = 0;
  double log_KT = 0;               ///< log(K T), the key lemma's scale
  double second_moment_exact = 0;  ///< E|X_t|^2 in closed form: sum_k pi_k (abar |mu_k|^2 + tr V_k)
  InspectPopulation forward;       ///< over X_t ~ p_t (exact forward draws)
  InspectPopulation sampler;       ///< over the sampler's Y_t (empty summaries when not sampled)
};

struct InspectOptions {
  uint64_t n = 1024;     ///< points per step and population
  std::vector<int> steps;  ///< the steps t (each in stop+1..T); empty: default_inspect_steps
  bool sampler = true;   ///< also run the sampler and measure at its Y_t
  std::function<void(uint64_t done, uint64_t total)> progress;  ///< points done, in all; may throw to cancel
};

struct Inspection {
  int d = 0, K = 0, T = 0;
  std::vector<InspectRow> rows;  ///< by decreasing t (the sampler's order)
  RunSummary sampler;            ///< the sampler's run (when sampled)
  double seconds = 0;
};

/// At most max_steps steps, evenly spaced over stop + 1 .. T, T and stop + 1 included.
std::vector<int> default_inspect_steps(int T, int stop, int max_steps = 32);

/// The proofs' quantities per step. The sampler (opt: sampler, variance, eta, score error, seed,
/// precision) runs on backend be with n = io.n particles and snapshots at io.steps; J_t is always
/// the target's exact score's. Throws gmmdiff::Error for steps outside stop+1..T or n < 2.
Inspection inspect_quantities(const Mixture& target, const Schedule& s, const SampleOptions& opt,
                              const InspectOptions& io, Backend& be);

/// eps_Jacobi of opt's score error (THEORY.md): defined = false for `gaussian` (not
/// differentiable); exactly 0 for none and bias (a constant shift); for scale eps f(t) E||J_t||,
/// for weights and means E||J_t^model - J_t||_op (the perturbed mixture's Jacobian), by Monte
/// Carlo over measure_eps_score's draws X_t at up to max_steps steps, `samples` draws each.
struct EpsJacobi {
  bool defined = true;
  double value = 0;   ///< the estimate (0 when exact)
  double se = 0;      ///< its Monte Carlo standard error (0 when exact)
  bool exact = true;  ///< known exactly (none, bias), not estimated
  int steps = 0;
  uint64_t samples = 0;  ///< draws per step
  std::string text() const;  ///< "0.0123 (se 0.0004)", "0 (exact)" or "undefined (...)"
};
struct EpsJacobiOptions {
  int max_steps = 64;
  int samples = 128;
  /// Each draw's ||.||_op by Lanczos to within this fraction of it (the residual bound): far below
  /// the Monte Carlo standard error of `samples` draws (>= 1e-4 of the value in practice), and
  /// about half the iterations of a tolerance near rounding at d >= 32.
  double lanczos_tol = 1e-7;
};
EpsJacobi measure_eps_jacobi(const Mixture& target, const Schedule& s, const SampleOptions& opt,
                             const EpsJacobiOptions& eo = {});

}  // namespace gmmdiff
