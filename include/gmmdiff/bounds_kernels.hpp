// gmmdiff: the per-chunk work of the two-sided bounds (THEORY.md, "Two-sided TV: upper bounds and
// exact densities"), as an interface a backend implements. Host-only types: no CUDA here.
//
// The bounds layer (gmmdiff/bounds.hpp) builds a plan in double from the schedule and the
// sampler's own step coefficients (step_coeffs), cuts the work into chunks, and asks a
// BoundsKernels for each chunk's per-particle sums only: one log-weight per outer draw and prefix
// (ddpm path bound), one log-density ratio per particle (ddim exact density). Everything else (the
// means, standard errors, confidence bounds) is computed on the host from those sums. The CPU
// implementation (host/bounds/bounds_cpu.cpp) is the oracle; a device implementation would use
// the same per-particle arithmetic (gmmdiff/detail/bounds_math.hpp) and the same Philox streams,
// so that a chunk's sums do not depend on where it ran, beyond rounding.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "gmmdiff/backend.hpp"
#include "gmmdiff/detail/bounds_math.hpp"
#include "gmmdiff/model.hpp"

namespace gmmdiff {

/// One step t of the ddpm path bound.
struct PathStep {
  StepCoeffs c;                 ///< the sampler's step t for the score model (P, Q, bias, score_scale, bias_dir)
  detail::PathStepTerms terms;  ///< the forward step and the constants of log rev_t - log fwd_t
};

/// The importance-weighted path bound of a stochastic sampler: n outer draws x_s ~ p_s, each with
/// M forward continuations x_{s+1..T}; continuation (i, m) has the log-weight
///   log R = log N(x_T; 0, I) + sum_t [log rev_t(x_{t-1} | x_t) - log fwd_t(x_t | x_{t-1})] - log p_s(x_s).
/// The steps (PathStep, t = s+1 .. T in the forward order, steps with 1 - alpha_t = 0 left out)
/// are handed to the kernels one at a time.
struct PathPlan {
  int d = 0, K = 0;
  uint64_t seed = 0;
  uint64_t n = 0;             ///< outer draws: x_s(i) from Philox stream kStreamBoundOuter, particle i
  int M = 0;                  ///< continuations per outer draw (noise: kStreamBoundForward,
                              ///< particle detail::continuation_particle(i, m), step t)
  std::vector<int> prefixes;  ///< increasing, in 1..M: a log R_m per prefix (the mean of the first m weights)
  Mixture outer;              ///< p_s: the outer draws' law and the log p_s(x_s) of the weight
};

/// One reverse step t of a deterministic sampler (ddim), with what its Jacobian determinant needs.
struct FlowStep {
  StepCoeffs c;                  ///< the sampler's step t for the score model (sigma = 0)
  double kappa_j = 0;            ///< kappa * score_scale: D Phi_t = (I + kappa_j J_t) / sqrt(alpha_t)
  double d_log_inv_sqrt_alpha = 0;  ///< d log(1 / sqrt(alpha_t))
  std::vector<double> PP;        ///< [K, K] = P P^T (isotropic components; empty for diagonal)
};

/// The exact output density of a deterministic sampler along each particle's own path:
///   log q_s(Y_s) = log N(Y_T; 0, I) - sum_t log det D Phi_t(Y_t),
/// the steps (FlowStep, t = T .. s+1 in the sampler's order, identities left out) handed to the
/// kernels one at a time.
struct FlowPlan {
  int d = 0, K = 0;
  uint64_t seed = 0;
  uint64_t n = 0;               ///< particles: Y_T(i) from Philox stream kStreamInit, particle i (the sampler's own)
  Mixture reference;            ///< p: the law each Y_s is compared with (the target X_0)
};

/// The chunk kernels of the bounds, used like a Backend: begin a chunk, hand it every step, end it
/// and receive the per-particle sums. The kernels hold the chunk's state (the continuations or
/// particles and their running log-weights) in their own memory; max_rows says how many rows fit.
/// first and count of a chunk are multiples of the unit (count may end at plan.n), so a chunk's
/// results do not depend on the chunk size or the thread count, bit for bit.
class BoundsKernels {
 public:
  virtual ~BoundsKernels() = default;
  BoundsKernels() = default;
  BoundsKernels(const BoundsKernels&) = delete;
  BoundsKernels& operator=(const BoundsKernels&) = delete;

  virtual std::string name() const = 0;         ///< "cpu"
  virtual std::string device_name() const = 0;  ///< e.g. "2 threads"
  /// Rows (continuations or particles) of dimension d, K components, that one chunk may hold.
  virtual uint64_t max_rows(int d, int K) const = 0;

  // ---- the ddpm path bound ----
  /// Outer draws per unit for M continuations each.
  virtual uint64_t path_unit(int M) const = 0;
  /// Starts the chunk of outer draws first .. first + count - 1: every continuation at x_s(i).
  virtual void path_begin(const PathPlan& plan, uint64_t first, uint64_t count) = 0;
  /// Moves every continuation of the chunk through the forward step st.terms and adds the step's
  /// log rev_t - log fwd_t (the reverse kernel's mean from st.c at x_t) to its log-weight.
  virtual void path_step(const PathStep& st) = 0;
  /// Ends the chunk: log_rm[(i - first) * P + p] = log R_{prefixes[p]}(i), the log of the mean of
  /// the weights of continuations m = 0 .. prefixes[p] - 1 (P = plan.prefixes.size(); NaN when a
  /// weight is not a number).
  virtual void path_end(double* log_rm) = 0;

  // ---- the ddim exact density ----
  /// Particles per unit.
  virtual uint64_t flow_unit() const = 0;
  /// Starts the chunk of particles first .. first + count - 1 at Y_T.
  virtual void flow_begin(const FlowPlan& plan, uint64_t first, uint64_t count) = 0;
  /// One reverse step: log det D Phi_t at each particle, then the particle moves to Y_{t-1}.
  virtual void flow_step(const FlowStep& st) = 0;
  /// Ends the chunk: log_ratio[i - first] = log p(Y_s) - log q_s(Y_s). Returns 0, or the largest
  /// step t at which I + kappa_j J_t(Y_t) was not positive definite for some particle of the chunk:
  /// the step map may fold there and log_ratio means nothing.
  virtual int flow_end(double* log_ratio) = 0;
};

}  // namespace gmmdiff
