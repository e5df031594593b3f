// gmmdiff: the host driver that steps the reverse schedule (THEORY.md, Samplers and Score error).
#pragma once
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "gmmdiff/backend.hpp"
#include "gmmdiff/model.hpp"
#include "gmmdiff/schedule.hpp"
#include "gmmdiff/types.hpp"

namespace gmmdiff {

/// The injected score error (THEORY.md, Score error): at step t the sampler uses s*_t + e_t with
/// e_t of the given kind and size eps f(t), f the time profile (score_error_factor).
struct ScoreError {
  ScoreError() = default;
  ScoreError(ScoreErrorKind k, double e) : kind(k), eps(e) {}  ///< uniform profile, random bias direction
  ScoreErrorKind kind = ScoreErrorKind::None;
  double eps = 0.0;
  /// Where over t the error sits. Uniform: f = 1. FrontLoaded / BackLoaded: f(t)^2 grows linearly
  /// towards the sampler's first step (t = T) / its last step (t = stop + 1), normalised so that
  /// the mean of f^2 over the steps taken is 1 (the same eps_score as uniform for the `bias` and
  /// `gaussian` kinds). File: f(t) = factors[t - 1], as given.
  ErrorProfile profile = ErrorProfile::Uniform;
  std::vector<double> factors;  ///< [T]: the File profile's f(1), ..., f(T) (finite, >= 0)
  /// The `bias` kind's direction: Random (a unit vector from the seed), Means (the principal
  /// direction of the means: the top eigenvector of sum_k pi_k mu_k mu_k^T) or Vector (direction,
  /// normalised here; it must not be 0).
  BiasDirection direction = BiasDirection::Random;
  std::vector<double> direction_vector;  ///< [d] for BiasDirection::Vector
};

struct SampleOptions {
  uint64_t n = 1000;
  /// The particles this call runs: first .. first + count - 1 of the run's n (count kAllParticles:
  /// to the end). Each particle, its noise and its arithmetic depend only on its index, so runs of
  /// consecutive ranges give, range by range, the particles of the whole run, bit for bit (one
  /// range per MPI rank, docs/scale.md). An empty range runs nothing.
  uint64_t first = 0;
  uint64_t count = UINT64_MAX;
  SamplerKind sampler = SamplerKind::DDPM;
  Variance variance = Variance::Beta;
  double eta = 0.0;  ///< ddim-song: the noise fraction eta in [0, 1] (0: deterministic; 1: ddpm's posterior law)
  int stop = 1;  ///< output Y_1 (1, Theorem 1 of 2504.05300) or Y_0 (0)
  uint64_t seed = 0;
  Precision precision = Precision::FP32;
  std::size_t chunk = 0;  ///< rows per chunk; 0: as many as memory allows (see max_chunk_rows)
  ScoreError score_error;
  std::vector<int> snapshot_steps;  ///< steps t whose Y_t the sink also receives
  int eps_samples = 1024;  ///< Monte Carlo size per step for the realised eps_score
  int threads = 0;  ///< CPU threads of the eps_score measurement (0: OpenMP's default, all cores)
  bool check_finite = true;  ///< stop with an error naming the step when a particle turns non-finite
  /// Called after each step (or slice of steps) of each chunk with (particle-steps done, in all);
  /// empty: none. It may throw to cancel the run: the exception leaves run_sampler, and a sink's
  /// uncommitted output is removed by its owner as for any error.
  std::function<void(uint64_t done, uint64_t total)> progress;
};

/// Receives each finished chunk while it still lies in the backend.
class ChunkSink {
 public:
  virtual ~ChunkSink() = default;
  /// The chunk holds Y_stop for particles be.first() .. be.first() + be.rows() - 1.
  virtual void on_chunk(Backend& be) = 0;
  /// The chunk holds Y_t for a requested snapshot step t.
  virtual void on_snapshot(Backend& /*be*/, int /*t*/) {}
};

struct RunSummary {
  uint64_t n = 0;               ///< particles this call ran (the run's n unless a range was given)
  int ranks = 1;                ///< processes the run was split over (docs/scale.md)
  int d = 0, K = 0, T = 0;
  std::string sampler;          ///< e.g. "ddpm/beta" or "ddim"
  std::string precision;        ///< "fp32" | "fp64"
  ScoreErrorKind score_error = ScoreErrorKind::None;
  double seconds = 0;           ///< sampling time (excludes the eps_score measurement)
  double elt_steps_per_s = 0;   ///< n * d * (steps - identity_steps) / seconds: computed steps only
  int steps = 0;                ///< reverse steps taken per particle
  int identity_steps = 0;       ///< of which identity steps (is_identity_step), skipped; elt_steps_per_s counts the others
  double eps_score = 0;         ///< realised sqrt((1/T) sum_t E|s_t(X_t) - s*_t(X_t)|^2)
  /// eps_Jacobi = (1/T) sum_t E ||J_t^err(X_t) - J_t(X_t)||_op: run_sampler leaves it NaN (the driver
  /// does not differentiate the score); the bounds layer's measure_eps_jacobi fills it
  /// (gmmdiff/quantities.hpp), NaN where it is undefined (the `gaussian` kind: say so).
  double eps_jacobi = std::numeric_limits<double>::quiet_NaN();
  bool eps_jacobi_defined = true;  ///< false for the `gaussian` kind (the injected score is not differentiable)
  double eps_seconds = 0;       ///< time spent measuring eps_score
  std::string backend, device;
  std::string path;             ///< the step path the backend took (Backend::step_path)
  std::size_t chunk_rows = 0;
  std::size_t chunks = 0;
  std::string one_line() const;  ///< the summary printed on stderr
  /// ", eps_Jacobi=..." when measured, ", eps_Jacobi undefined (...)" for the gaussian kind, else "".
  std::string eps_jacobi_text() const;
};

/// The sampler as runs name it: "ddpm/beta", "ddim", "ddim-song/eta=0.5".
std::string sampler_label(const SampleOptions& opt);

/// Chunk size a run of n particles uses on be (opt.chunk if set, else memory-bounded; a
/// multiple of kChunkAlign unless it covers all of n).
std::size_t choose_chunk_rows(const Backend& be, const RunShape& shape, uint64_t n, std::size_t requested);

/// The coefficients of step t for model m (already perturbed if the score error says so: see
/// ScorePlan). The `scale`, `bias` and `gaussian` errors enter here with eps times the profile's
/// factor at t; bias_unit is the unit bias direction (ScorePlan::bias_unit).
StepCoeffs step_coeffs(const Mixture& m, const Schedule& s, int t, const SampleOptions& opt,
                       const std::vector<double>& bias_unit);

/// True when step c maps every finite particle to itself: kappa = 0, sigma = 0 and
/// 1/sqrt(alpha_t) = 1 exactly (1 - alpha_t = 0 in double, as where a schedule's abar stops moving
/// near t = 1). y' = 1 (y + 0 e) + 0 z = y bit for bit (only an exact -0.0 coordinate would turn
/// +0.0), so the sampler skips such steps: the results are those of computing them.
bool is_identity_step(const StepCoeffs& c);
/// identity[t] = is_identity_step of step t, for t = 1..T (index 0 unused), from the scalars alone.
std::vector<bool> identity_steps(const Schedule& s, const SampleOptions& opt);

/// kappa_t, 1/sqrt(alpha_t) and sigma_t of step t for opt's sampler (THEORY.md, Samplers). For
/// ddim-song, Song et al. 2021 with eta: sigma_t^2 = eta^2 (1 - abar_{t-1})/(1 - abar_t) (1 - alpha_t)
/// and Y_{t-1} = sqrt(abar_{t-1}) x0(Y_t) + sqrt(1 - abar_{t-1} - sigma_t^2) eps(Y_t) + sigma_t Z with
/// eps = -sqrt(1 - abar_t) s_t, x0 = (Y_t + (1 - abar_t) s_t) / sqrt(abar_t): the update
/// (Y_t + kappa_t s_t) / sqrt(alpha_t) + sigma_t Z with
/// kappa_t = (1 - abar_t) - sqrt(alpha_t (1 - abar_{t-1} - sigma_t^2)(1 - abar_t)), formed without
/// cancellation (docs/cli.md, "Two DDIMs").
void step_scalars(const Schedule& s, int t, const SampleOptions& opt, double& kappa, double& inv_sqrt_alpha,
                  double& sigma);

/// The mixture whose exact score is used (the target itself, or the perturbed one for the
/// `weights` and `means` score errors, with eps x factor: deterministic in seed, eps and factor;
/// where the direct form of the weights would overflow or underflow they are perturbed in log
/// space, so any finite eps x factor gives finite positive weights). Throws gmmdiff::Error for an
/// eps x factor that check_score_error refuses (not finite; means moved beyond what a double holds).
Mixture score_model(const Mixture& target, const ScoreError& err, uint64_t seed, double factor = 1.0);
/// Unit bias direction of the `bias` score error with BiasDirection::Random (from seed).
std::vector<double> bias_direction(int d, uint64_t seed);
/// The unit bias direction of err for target (Random: bias_direction(d, seed); Means: the
/// principal direction of the means, its largest coordinate positive; Vector: err.direction_vector
/// normalised). Throws gmmdiff::Error for a vector of the wrong length, zero or not finite, and for
/// Means when every mean is 0.
std::vector<double> bias_unit_vector(const Mixture& target, const ScoreError& err, uint64_t seed);

/// The factor f(t) of eps at step t (ScoreError::profile) for a sampler that takes the steps
/// stop + 1 .. T.
double score_error_factor(const ScoreError& err, int t, int T, int stop);

/// The score every step of a run uses, so that the sampler, the bounds, eps_score and eps_Jacobi
/// follow the same error and profile: the mixture whose exact score step t differentiates or
/// evaluates (model), the bias direction, the profile's factor, and the step coefficients.
class ScorePlan {
 public:
  ScorePlan(const Mixture& target, const Schedule& s, const SampleOptions& opt);
  /// The model changes from step to step (`weights` or `means` with a profile other than uniform).
  bool per_step() const { return per_step_; }
  /// The mixture whose exact score step t uses.
  Mixture model(int t) const;
  /// The fixed model (the target or its perturbation) when !per_step().
  const Mixture& fixed_model() const { return fixed_; }
  double factor(int t) const;
  const std::vector<double>& bias_unit() const { return bias_unit_; }
  /// step_coeffs(model(t), ...) for step t.
  StepCoeffs coeffs(int t) const;

 private:
  const Mixture& target_;
  const Schedule& s_;
  SampleOptions opt_;
  bool per_step_ = false;
  Mixture fixed_;
  std::vector<double> bias_unit_;
};

/// Realised eps_score by Monte Carlo over exact forward samples X_t, t = stop+1..T (double, CPU, on
/// opt.threads threads; the same figure, bit for bit, for any thread count).
double measure_eps_score(const Mixture& target, const Schedule& s, const SampleOptions& opt);

/// The factors of ErrorProfile::File from a text file: numbers separated by white space or commas,
/// '#' starts a comment; f(1) first. Throws gmmdiff::Error for a file that cannot be read or is not
/// a regular file (io/input), a token that is not a number, a factor that is negative or not
/// finite, or no factor at all.
std::vector<double> load_error_factors(const std::string& path);
/// --bias-direction: "random", "means" or d numbers separated by commas (returned; kind = Vector).
std::vector<double> parse_bias_direction(const std::string& text, BiasDirection& kind);

/// The largest factor f(t) over the steps stop + 1 .. T a sampler takes (1 for uniform; for the
/// other profiles 0 when it takes none). Throws for a File profile without a factor for each of those steps.
double max_score_error_factor(const ScoreError& err, int T, int stop);

/// Throws gmmdiff::Error for a score error that cannot apply to target and s over the steps
/// stop + 1 .. T (0: every step, the strictest): eps not finite; eps negative (for `scale`, the
/// score times 1 + eps f(t): eps f(t) > -1 at every step); eps x f(t) not finite at some step;
/// for `means`, means moved to |mu| + eps max f(t) whose square overflows a double; File factors
/// not T finite values >= 0; a bias vector of the wrong length or zero. The same rule for
/// `gmmdiff sample`, bracket, inspect and every run of a sweep.
void check_score_error(const Mixture& target, const Schedule& s, const ScoreError& err, int stop = 0);
/// The same for a target whose largest |mu_k| is max_mean_norm and a schedule of T steps (all but
/// the bias vector, which needs the target).
void check_score_error(double max_mean_norm, const ScoreError& err, int T, int stop);

/// An exact draw of X_t ~ p_t (forward marginal), sample i: the draws measure_eps_score uses
/// (Philox stream kStreamForward, counters 3t .. 3t + 2), so eps_score, eps_Jacobi and `inspect`
/// see the same X_t for the same seed. cum: the target's cumulative weights; x: [d].
void forward_draw(const Mixture& target, const Schedule& s, int t, uint64_t seed, uint64_t i,
                  const std::vector<double>& cum, double* x);
/// The steps at which eps_score (and eps_Jacobi) are evaluated: at most max_steps, evenly spaced
/// over stop + 1 .. T.
std::vector<int> eps_steps(const Schedule& s, int stop, int max_steps);

/// Throws gmmdiff::Error for options run_sampler would refuse (n, stop, T, eta, the score error
/// with its profile, eps_samples in [0, 2^24] (0: not measured), snapshot steps in stop..T, each
/// once): call it before creating a run's outputs. run_sampler calls it too, and refuses a
/// non-finite realised eps_score.
void check_sample_options(const Mixture& target, const Schedule& s, const SampleOptions& opt);

/// The range [opt.first, opt.first + count) that opt selects (count resolved against opt.n).
uint64_t range_count(const SampleOptions& opt);

/// Runs the sampler over the particles of opt's range (all n by default), chunk by chunk, handing
/// each chunk to sink.
RunSummary run_sampler(const Mixture& target, const Schedule& s, const SampleOptions& opt,
                       Backend& be, ChunkSink& sink);

}  // namespace gmmdiff
