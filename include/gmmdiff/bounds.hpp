// gmmdiff: two-sided TV and KL with exact scores (THEORY.md, "Two-sided TV: upper bounds and exact
// densities"; docs/tv.md, "Upper bounds and exact densities").
//
//   path_bound       ddpm: importance-weighted path bounds U_TV(M) >= TV(X_s, Y_s) and
//                    U_KL(M) >= KL(X_s || Y_s), with the same figure at M/4 as a diagnostic, and for
//                    stop 1 the TV(X_0, X_1) term that makes U_TV an upper bound on TV(X_0, Y_1);
//   exact_density    ddim: the exact TV(X_0, Y_s) and KL(Y_s || X_0) through the output density
//                    along each particle's path (change of variables), with CLT intervals;
//   exact_reference  reducible models (means on a line through the origin, one shared isotropic
//                    sd): the output law by a 1-D grid and an isotropic Gaussian orthogonal part,
//                    TV and KL to quadrature accuracy, without sampling noise.
// Every function is in double, on the CPU or (the kernels behind the first two, BoundsKernels,
// gmmdiff/bounds_kernels.hpp) on a CUDA device, and every random number is a pure function of
// (seed, stream, index, step, coordinate): on the CPU the figures are bitwise the same for any
// thread count and chunk size, and the CUDA kernels give them to rounding.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "gmmdiff/bounds_kernels.hpp"
#include "gmmdiff/model.hpp"
#include "gmmdiff/sampler.hpp"
#include "gmmdiff/schedule.hpp"

namespace gmmdiff {

/// The bounds' chunk kernels for a backend name, as make_backend chooses: "cpu" (the CPU kernels,
/// the oracle; threads: 0 for all), "cuda" (device 0: docs/cuda.md, "The bounds on the device";
/// gmmdiff::Error when the build or the machine has no CUDA device), "auto" (cuda when a device
/// is there, else cpu). The CUDA kernels give the CPU's figures to rounding (not bitwise).
std::unique_ptr<BoundsKernels> make_bounds_kernels(const std::string& backend = "auto", int threads = 0);

/// Defaults, sized for `gmmdiff bracket` on 2 CPU cores with d <= 64, K <= 16, T <= 256: the path
/// bound is then at most n M (T - 1) d = 2.1e9 continuation-elt-steps (docs/tv.md, "Costs").
constexpr uint64_t kDefaultPathOuter = 4096;      ///< ddpm: outer draws
constexpr int kDefaultPathM = 32;                 ///< ddpm: continuations per outer draw
constexpr uint64_t kDefaultFlowParticles = 65536; ///< ddim: particles (each is one path)
/// The ddim determinant costs O(K^2 + K^3/3) per particle-step (isotropic) or O(K^2 d) (diagonal),
/// beside the O(K d) of the score: K is limited to keep that below the score's cost times ~K/6.
constexpr int kMaxFlowK = 512;
constexpr double kZ95OneSided = 1.6448536269514722;  ///< one-sided 95% normal quantile
constexpr double kZ95TwoSided = 1.959963984540054;   ///< two-sided 95% normal quantile

struct BoundsOptions {
  uint64_t n = 0;      ///< outer draws (ddpm) or particles (ddim); 0: kDefaultPathOuter / kDefaultFlowParticles
  int M = kDefaultPathM;  ///< continuations per outer draw (ddpm)
  uint64_t chunk = 0;  ///< outer draws (ddpm) or particles (ddim) per chunk; 0: automatic (memory-bounded);
                       ///< rounded up to the kernels' unit. Figures do not depend on it.
  /// Called after each step of each chunk with (units done, units in all), a unit being one outer
  /// draw (with its M continuations) or one particle through one step; empty: none. May throw to cancel.
  std::function<void(uint64_t done, uint64_t total)> progress;
};

/// The mean of a figure over independent draws, with its standard error.
struct MeanSe {
  double mean = 0, se = 0;
  double upper95() const { return mean + kZ95OneSided * se; }  ///< one-sided 95% upper confidence bound
  double lo95() const { return mean - kZ95TwoSided * se; }     ///< two-sided 95% CLT interval
  double hi95() const { return mean + kZ95TwoSided * se; }
};

/// TV(X_0, X_1) <= sum_k pi_k TV(N(mu_k, C_k), N(sqrt(abar_1) mu_k, abar_1 C_k + (1 - abar_1) I)):
/// each term in closed form (isotropic components, through non-central chi-square CDFs) or, where
/// that is not accurate (the two Gaussians nearly equal) or not available (diagonal components),
/// by Pinsker's inequality from the closed-form KL.
struct TvX0X1 {
  double bound = 0;
  std::string method;  ///< "closed form", "Pinsker" or "closed form and Pinsker" (per component)
};
TvX0X1 tv_x0_x1_bound(const Mixture& target, const Schedule& s);

/// TV(N(m1, a I_d), N(m2, b I_d)) given |m1 - m2|^2 and a, b, with a_minus_b = a - b passed
/// separately (it may be known more accurately than the difference of a and b).
double gaussian_tv_isotropic(double dist2, double a, double b, double a_minus_b, int d);

/// The ddpm importance-weighted path bound (THEORY.md, "Stochastic samplers").
struct PathBound {
  uint64_t n = 0;          ///< outer draws
  int d = 0;
  int M = 0, M_quarter = 0;
  int stop = 1;
  int steps = 0;           ///< steps with 1 - alpha_t > 0 (the others are skipped in both processes)
  MeanSe tv;               ///< U_TV(M) = E[(1 - R_M)_+] >= TV(X_s, Y_s)
  MeanSe tv_quarter;       ///< U_TV(M/4): a diagnostic (if far above U_TV(M), a larger M tightens it)
  MeanSe kl;               ///< U_KL(M) = E[-log R_M] >= KL(X_s || Y_s)
  MeanSe kl_quarter;       ///< U_KL(M/4)
  TvX0X1 x0x1;             ///< stop 1: the TV(X_0, X_1) term (0 and "" for stop 0)
  double seconds = 0;
  /// Upper bounds on TV(X_0, Y_s): one-sided 95% (mean + 1.645 se), the mean, and the M/4 figure.
  double tv_upper() const { return tv.upper95() + x0x1.bound; }
  double tv_upper_mean() const { return tv.mean + x0x1.bound; }
  double tv_upper_quarter() const { return tv_quarter.upper95() + x0x1.bound; }
  /// Throughput: outer draws x M x steps x d per second.
  double rate() const { return seconds > 0 ? double(n) * M * steps * double(d) / seconds : 0.0; }
};

/// Throws gmmdiff::Error for options path_bound would refuse (sampler not ddpm, n < 2, M out of
/// 1..2^20, n over 2^28, a step without noise such as posterior variance with stop 0).
void check_path_options(const Mixture& target, const Schedule& s, const SampleOptions& opt, const BoundsOptions& bo);
/// The plan (without its steps) and step t's PathStep (public for tests and the benchmark).
PathPlan make_path_plan(const Mixture& target, const Schedule& s, const SampleOptions& opt, uint64_t n, int M,
                        const std::vector<int>& prefixes);
/// Step t of the path bound for the score model sm (score_model(target, ...)) and bias_unit
/// (bias_direction, or empty); throws gmmdiff::Error when the reverse kernel of t has no noise.
PathStep make_path_step(const Mixture& sm, const Schedule& s, int t, const SampleOptions& opt,
                        const std::vector<double>& bias_unit);
/// n outer draws (opt.n is not used: bo.n), M continuations, on kernels kr.
PathBound path_bound(const Mixture& target, const Schedule& s, const SampleOptions& opt, const BoundsOptions& bo,
                     BoundsKernels& kr);

/// The ddim exact output density (THEORY.md, "Deterministic samplers").
struct ExactDensity {
  uint64_t n = 0;  ///< particles
  int d = 0;
  int stop = 1;
  int steps = 0;
  MeanSe tv;       ///< TV(X_0, Y_s) = E_q[(1 - p_0(Y_s) / q_s(Y_s))_+], exact up to the CLT interval
  MeanSe kl;       ///< KL(Y_s || X_0) = E_q[log q_s(Y_s) - log p_0(Y_s)]
  double seconds = 0;
  /// Throughput: particles x steps x d per second.
  double rate() const { return seconds > 0 ? double(n) * steps * double(d) / seconds : 0.0; }
};
/// Throws gmmdiff::Error for options exact_density would refuse (sampler not ddim, the `gaussian`
/// score error (the sampler is then stochastic), n < 2, K > kMaxFlowK).
void check_flow_options(const Mixture& target, const Schedule& s, const SampleOptions& opt, const BoundsOptions& bo);
FlowPlan make_flow_plan(const Mixture& target, const Schedule& s, const SampleOptions& opt, uint64_t n);
/// Step t of the flow for the score model sm (score_model(target, ...)) and bias_unit.
FlowStep make_flow_step(const Mixture& sm, const Schedule& s, int t, const SampleOptions& opt,
                        const std::vector<double>& bias_unit);
/// Throws gmmdiff::Error naming the step (never a number) when a step map is not invertible at
/// some particle (I + kappa J_t not positive definite).
ExactDensity exact_density(const Mixture& target, const Schedule& s, const SampleOptions& opt, const BoundsOptions& bo,
                           BoundsKernels& kr);

/// The exact reference of a reducible model (THEORY.md, "Exact reference for reducible models").
struct ReferenceOptions {
  double tol = 1e-6;          ///< refine the grid until TV changes by less than this
  int max_points = 1 << 20;   ///< largest grid
  int min_points = 1 << 10;   ///< first grid
};
struct Reference {
  double tv = 0;           ///< TV(X_0, Y_s)
  double kl_yx = 0;        ///< KL(Y_s || X_0)
  double kl_xy = 0;        ///< KL(X_s || Y_s) (+inf when Y_s's grid density vanishes where X_s has mass)
  double change = 0;       ///< |tv - tv at the previous (half as fine) grid|
  bool converged = false;  ///< change < tol
  int points = 0;          ///< grid points of the line coordinate at the finest level
  double h = 0, lo = 0, hi = 0;  ///< the finest grid: spacing and range
  int levels = 0;          ///< grids computed
  double perp_var = 0;     ///< variance of each orthogonal coordinate of Y_s (d > 1)
  int steps = 0;
  double seconds = 0;
};
/// "" when the model (with the sampler's score error) is reducible, else what reducible needs and
/// what is missing, in one line.
std::string reducible_reason(const Mixture& target, const SampleOptions& opt);
/// Throws gmmdiff::Error (with reducible_reason) for a model that is not reducible, or when a step
/// map folds on the line (it must be increasing).
Reference exact_reference(const Mixture& target, const Schedule& s, const SampleOptions& opt,
                          const ReferenceOptions& ro = {});

}  // namespace gmmdiff
