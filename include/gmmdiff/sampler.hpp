// gmmdiff: the host driver that steps the reverse schedule (THEORY.md, Samplers and Score error).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "gmmdiff/backend.hpp"
#include "gmmdiff/model.hpp"
#include "gmmdiff/schedule.hpp"
#include "gmmdiff/types.hpp"

namespace gmmdiff {

struct ScoreError {
  ScoreErrorKind kind = ScoreErrorKind::None;
  double eps = 0.0;
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
  double eps_seconds = 0;       ///< time spent measuring eps_score
  std::string backend, device;
  std::string path;             ///< the step path the backend took (Backend::step_path)
  std::size_t chunk_rows = 0;
  std::size_t chunks = 0;
  std::string one_line() const;  ///< the summary printed on stderr
};

/// Chunk size a run of n particles uses on be (opt.chunk if set, else memory-bounded; a
/// multiple of kChunkAlign unless it covers all of n).
std::size_t choose_chunk_rows(const Backend& be, const RunShape& shape, uint64_t n, std::size_t requested);

/// The coefficients of step t for model m (already perturbed if the score error says so).
StepCoeffs step_coeffs(const Mixture& m, const Schedule& s, int t, const SampleOptions& opt,
                       const std::vector<double>& bias_unit);

/// True when step c maps every finite particle to itself: kappa = 0, sigma = 0 and
/// 1/sqrt(alpha_t) = 1 exactly (1 - alpha_t = 0 in double, as where a schedule's abar stops moving
/// near t = 1). y' = 1 (y + 0 e) + 0 z = y bit for bit (only an exact -0.0 coordinate would turn
/// +0.0), so the sampler skips such steps: the results are those of computing them.
bool is_identity_step(const StepCoeffs& c);
/// identity[t] = is_identity_step of step t, for t = 1..T (index 0 unused), from the scalars alone.
std::vector<bool> identity_steps(const Schedule& s, const SampleOptions& opt);
/// Throws gmmdiff::Error unless err can be applied to target: a finite eps >= 0 (> -1 for
/// `scale`, the score times 1 + eps), and for `means` perturbed means whose squared norms are
/// finite. The same check for `gmmdiff sample` and for every run of a sweep.
void check_score_error(const Mixture& target, const ScoreError& err);
/// The same for a target whose largest |mu_k| is max_mean_norm.
void check_score_error(double max_mean_norm, const ScoreError& err);

/// The mixture whose exact score is used (the target itself, or the perturbed one for the
/// `weights` and `means` score errors: deterministic in seed and eps; where the direct form of the
/// weights would overflow or underflow they are perturbed in log space, so any finite eps gives
/// finite positive weights).
Mixture score_model(const Mixture& target, const ScoreError& err, uint64_t seed);
/// Unit bias direction of the `bias` score error (from seed).
std::vector<double> bias_direction(int d, uint64_t seed);

/// Realised eps_score by Monte Carlo over exact forward samples X_t, t = stop+1..T (double, CPU, on
/// opt.threads threads; the same figure, bit for bit, for any thread count).
double measure_eps_score(const Mixture& target, const Schedule& s, const SampleOptions& opt);

/// Throws gmmdiff::Error for options run_sampler would refuse (n, stop, T, the score error,
/// eps_samples in [0, 2^24], 0: not measured, snapshot steps in stop..T, each once): call it before creating a
/// run's outputs. run_sampler calls it too, and refuses a non-finite realised eps_score.
void check_sample_options(const Mixture& target, const Schedule& s, const SampleOptions& opt);

/// The range [opt.first, opt.first + count) that opt selects (count resolved against opt.n).
uint64_t range_count(const SampleOptions& opt);

/// Runs the sampler over the particles of opt's range (all n by default), chunk by chunk, handing
/// each chunk to sink.
RunSummary run_sampler(const Mixture& target, const Schedule& s, const SampleOptions& opt,
                       Backend& be, ChunkSink& sink);

}  // namespace gmmdiff
