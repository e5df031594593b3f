// gmmdiff: TV(X_0, Y_s) of one configuration from both sides (docs/tv.md, "Upper bounds and exact
// densities"), in one process, as `gmmdiff bracket` computes it and the Python package's
// gmmdiff.bracket returns it: the best projected lower bound from a fresh sample (as `gmmdiff tv`),
// the importance-weighted upper bound (the stochastic samplers: ddpm, ddim-song with eta > 0) or the
// exact value (the deterministic ones: ddim, ddim-song with eta = 0), the exact reference when the
// model is reducible, eps_Jacobi of the score error, and whether lower <= exact <= upper holds at
// the figures' confidence bounds.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "gmmdiff/bounds.hpp"
#include "gmmdiff/model.hpp"
#include "gmmdiff/quantities.hpp"
#include "gmmdiff/sampler.hpp"
#include "gmmdiff/schedule.hpp"
#include "gmmdiff/tv.hpp"

namespace gmmdiff {

/// Particles of the lower bound's fresh sample unless told otherwise.
constexpr uint64_t kDefaultBracketLowerN = 65536;

struct BracketOptions {
  uint64_t n_lower = kDefaultBracketLowerN;  ///< particles of the lower bound's sample
  std::string backend = "auto";  ///< backend of the bounds and of the lower bound's sample (make_bounds_kernels)
  int threads = 0;               ///< CPU threads (0: all)
  TvOptions tv;                  ///< statistics of the lower bound; its seed is the run's seed
  bool reference = true;         ///< compute the exact reference when the model is reducible
  /// Called once every option has been checked, before any work (e.g. to check an output path).
  std::function<void()> checked;
  /// progress(phase, done, total) with phase "upper bound", "exact density" or "lower bound";
  /// empty: none. May throw to cancel.
  std::function<void(const std::string& phase, uint64_t done, uint64_t total)> progress;
};

struct BracketCheck {
  std::string what;  ///< e.g. "lower CI low end <= upper bound: 0.01234 <= 0.05678"
  bool ok = false;
};

struct Bracket {
  int stop = 1;
  bool ddpm = true;                    ///< a stochastic sampler (the path bound), else the exact density
  TvReport lower;                      ///< the lower bound's statistics (lower.max() is the figure)
  RunSummary lower_run;                ///< the lower bound's sample
  uint64_t n_lower = 0;
  std::optional<PathBound> upper;      ///< ddpm, ddim-song with eta > 0
  std::optional<ExactDensity> exact;   ///< ddim, ddim-song with eta = 0
  std::optional<Reference> reference;  ///< reducible models, unless BracketOptions::reference is false
  std::string reducible_reason;        ///< "" when reducible
  std::string bounds_backend, bounds_device;  ///< where the upper bound or exact density ran
  std::vector<BracketCheck> checks;  ///< lower <= exact <= upper at the confidence bounds, TV and KL
  bool consistent = true;              ///< every check holds
  /// eps_Jacobi of opt's score error (measure_eps_jacobi with its default size; rank 0 only).
  EpsJacobi eps_jacobi;
};

/// Whether bracket takes the path bound (true: ddpm, ddim-song with eta > 0) or the exact density
/// (false: ddim, ddim-song with eta = 0) for opt's sampler.
bool bracket_is_stochastic(const SampleOptions& opt);

/// The checks of bracket's sampler options that a caller's own options decide, with
/// `gmmdiff bracket`'s messages, in its order: eta in [0, 1] and only for ddim-song; M given
/// (M_given) only for a stochastic sampler; a variance given (variance_given) only for ddpm.
/// Throws gmmdiff::Error. bracket calls it too (with neither given).
void check_bracket_sampler(const SampleOptions& opt, bool M_given, bool variance_given);

/// Throws gmmdiff::Error for anything it would refuse before any work (then calls br.checked).
/// opt: sampler, variance, eta, stop, seed, score error (kind, eps, profile and its factors, bias
/// direction) and the lower bound's precision (opt.n is not
/// used: br.n_lower); bo: the upper bound's or exact density's n, M and chunk (bo.progress is not
/// used: br.progress).
Bracket bracket(const Mixture& target, const Schedule& s, const SampleOptions& opt, const BoundsOptions& bo,
                const BracketOptions& br);

/// Every figure of b as the JSON text `gmmdiff bracket --json` writes, without "parameters"
/// (the caller adds what it was given: a model file or preset, the names of its options).
std::string bracket_json(const Bracket& b);

}  // namespace gmmdiff
