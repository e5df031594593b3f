// gmmdiff: total-variation estimates of a sample against the target, through statistics
// (THEORY.md, Measuring TV in high dimension). Each statistic phi gives a lower bound
// TV(phi(X_0), phi(Y)) <= TV(X_0, Y); its histogram is binned where the particles lie (the
// backend's accumulate_histograms), and only counts come back to the host.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "gmmdiff/backend.hpp"
#include "gmmdiff/model.hpp"
#include "gmmdiff/npy.hpp"
#include "gmmdiff/sampler.hpp"

namespace gmmdiff {

struct TvOptions {
  /// Comma-separated statistics: means[:r] | means2d | random:M | axes[:m] | file:PATH.npy |
  /// radial[:0] (see docs/tv.md).
  std::string stats = "means,random:8,radial";
  int bins = 0;             ///< bins per 1-D histogram; 0: from n (docs/tv.md)
  int bootstrap = 200;      ///< parametric bootstrap replicates for the CI and bias correction
  uint64_t seed = 0;        ///< random directions and the bootstrap
  uint64_t reference_n = 0; ///< exact reference sample size where the target law of a statistic
                            ///< is not known in closed form; 0: the sample's n
};

/// One statistic's figures.
struct StatResult {
  std::string name;      ///< e.g. "means[0]", "random[3]", "radial", "means2d"
  int dims = 1;          ///< 1 or 2
  int bins = 0;          ///< number of cells
  bool exact_target = true;  ///< target masses exact (closed form) or from an exact reference sample
  double tv = 0;          ///< plug-in histogram TV
  double tv_corrected = 0;///< bias-corrected estimate (docs/tv.md says which correction)
  double floor = 0;       ///< expected plug-in TV for an exact sample of the same size
  double ci_lo = 0, ci_hi = 0;  ///< 95% confidence interval for the binned TV
  bool resolved = false;  ///< ci_lo > 0 and tv > floor: the figure is resolved from the floor
  uint64_t reference_n = 0;  ///< size of the exact reference sample (0 when exact_target)
};

struct TvReport {
  std::vector<StatResult> stats;
  std::size_t best = 0;      ///< index of the largest tv_corrected
  uint64_t n = 0;            ///< rows in the sample
  uint64_t nonfinite = 0;    ///< rows with NaN/Inf (excluded from every histogram; TV refers
                             ///< to the n - nonfinite finite rows)
  std::vector<std::string> notes;  ///< statistics skipped and why (e.g. means of rank 0)
  const StatResult& max() const { return stats.at(best); }
};

/// The binning plan for a model, options and sample size: statistics, edges, target masses.
class TvPlan {
 public:
  TvPlan(const Mixture& target, const TvOptions& opt, uint64_t n);
  const HistogramSpec& spec() const { return spec_; }
  /// Completes target masses that need an exact reference sample, using backend be (it calls
  /// be.begin(), so call it before a run's begin()). No-op when every statistic is exact.
  void prepare_reference(Backend& be, Precision precision);
  /// The figures for accumulated counts of a sample.
  TvReport evaluate(const HistogramCounts& counts) const;
  const std::vector<std::string>& names() const { return names_; }

  // Implementation data, public for the tests.
  struct Stat {
    std::string name;
    int dims = 1;
    int a = 0, b = -1;                 ///< value indices (b >= 0 for 2-D)
    std::vector<double> target_mass;   ///< per cell
    bool exact = true;
    uint64_t reference_n = 0;          ///< > 0 when the masses come from a reference sample
    int pair = -1;                     ///< index into spec().pairs (2-D)
  };
  const std::vector<Stat>& stats() const { return stats_; }
  /// Statistics that were requested but skipped, with the reason.
  const std::vector<std::string>& notes() const { return notes_; }
  /// Bins per 1-D histogram and per axis of a 2-D histogram for this plan.
  int bins_1d() const { return bins1_; }
  int bins_2d_axis() const { return bins2_; }

 private:
  Mixture target_;
  TvOptions opt_;
  uint64_t n_;
  HistogramSpec spec_;
  std::vector<Stat> stats_;
  std::vector<std::string> names_;
  std::vector<std::string> notes_;
  int bins1_ = 0, bins2_ = 0;
};

/// A ChunkSink that bins each chunk where it lies.
class TvSink : public ChunkSink {
 public:
  explicit TvSink(const TvPlan& plan) : plan_(plan), counts_(HistogramCounts::zeros(plan.spec())) {}
  void on_chunk(Backend& be) override { be.accumulate_histograms(plan_.spec(), counts_); }
  const HistogramCounts& counts() const { return counts_; }
  TvReport report() const { return plan_.evaluate(counts_); }

 private:
  const TvPlan& plan_;
  HistogramCounts counts_;
};

/// Bytes of doubles in one automatic chunk of a host sample handed to the backend (tv_of_sample,
/// tv_of_npy).
constexpr std::size_t kTvChunkBytes = std::size_t(64) << 20;

/// Rows per chunk when a host sample of `rows` rows x shape.d is uploaded to be:
/// - requested > 0: min(requested, rows), exactly (no rounding: the counts, hence every figure,
///   do not depend on the chunk); a ResourceError when more than be.max_chunk_rows(shape).
/// - requested = 0 (automatic): kTvChunkBytes of doubles, at least one row, rounded down to a
///   multiple of kChunkAlign when that is at least kChunkAlign; at most be.max_chunk_rows(shape)
///   and at most rows.
/// ResourceError when not even one row fits the backend.
std::size_t tv_chunk_rows(const Backend& be, const RunShape& shape, uint64_t rows, std::size_t requested = 0);

/// TV of a host sample (rows x d, row-major, double) against the target. The sample goes to the
/// backend in chunks of tv_chunk_rows(..., chunk_rows) rows.
TvReport tv_of_sample(const Mixture& target, const double* y, uint64_t rows, const TvOptions& opt,
                      Backend& be, std::size_t chunk_rows = 0);

/// Checks that a .npy sample is an (n, d) array (or (n,) for d = 1) with n > 0 and d = target_d
/// columns; throws gmmdiff::Error naming the file (the messages of `gmmdiff tv`).
void check_tv_sample(const NpyReader& sample, int target_d);

/// TV of a .npy sample (float32 or float64, (n, d); a reader at its first row), streamed: each
/// chunk of tv_chunk_rows(..., chunk_rows) rows is read, converted to double, uploaded and binned
/// before the next is read, so the memory held for the sample is one chunk of doubles (at most
/// max(kTvChunkBytes, one row) when automatic) plus the reader's staging buffer
/// (NpyReader::kStageValues values) and the backend's own chunk, whatever n is. The
/// report equals tv_of_sample's on the whole array (the same counts, bit for bit) for any chunk
/// size. Checks the sample with check_tv_sample first; a file that turns out shorter than its
/// header while being read is an Error (NpyReader::read_rows), never a partial report.
TvReport tv_of_npy(const Mixture& target, NpyReader& sample, const TvOptions& opt, Backend& be,
                   std::size_t chunk_rows = 0);

/// Building blocks of the plan (tv_stats.cpp), public for the tests.
namespace tv_detail {

/// One token of TvOptions::stats.
struct StatRequest {
  enum Kind { Means, Means2d, Random, Axes, File, Radial };
  Kind kind = Means;
  int count = 0;          ///< means:r, random:M, axes:m (0: the default)
  std::string path;       ///< file:PATH
  bool origin = false;    ///< radial:0 (centre at the origin)
  std::string token;      ///< as written
};
/// Parses the comma-separated statistics; throws gmmdiff::Error with one line listing what is
/// allowed on an unknown or malformed token.
std::vector<StatRequest> parse_stats(const std::string& spec);

/// Top principal directions of span{mu_k}: eigenvectors of M^T M (M the [K, d] uncentered
/// means) by subspace iteration from a fixed start, without forming d x d matrices.
struct Principal {
  int rank = 0;                   ///< numerical rank of M (counted within the iterated block)
  std::vector<double> dirs;       ///< [r, d] orthonormal, r = min(r_max, rank), sign fixed
  std::vector<double> singular;   ///< [r] singular values of M along dirs
  int iterations = 0;
};
Principal principal_directions(const Mixture& m, int r_max);

/// M unit directions in R^d from Philox (stream kStreamAux, particle kAuxTvRandom + i), [M, d].
std::vector<double> random_directions(int d, int M, uint64_t seed);
constexpr uint64_t kAuxTvRandom = 0x545600000000ull;     ///< "TV": random directions
constexpr uint64_t kAuxTvPrincipal = 0x545650000000ull;  ///< start block of principal_directions

/// Rows of a .npy file ([d] or [m, d]) as unit directions; throws on a d mismatch or a zero row.
std::vector<double> file_directions(const std::string& path, int d);

/// A unit vector orthogonal to unit u (deterministic: from the axis where |u_j| is smallest).
std::vector<double> orthogonal_unit(const std::vector<double>& u);

/// Edges e_0 = -inf < e_1 < ... < e_B = +inf with F(e_i) = i / B to within ftol_rel / B, for a
/// non-decreasing CDF F whose mass lies in [lo, hi] (widened until F(lo) < 0.1/B < 1 - 0.1/B < F(hi)).
std::vector<double> equal_mass_edges(const std::function<double(double)>& F, int B, double lo,
                                     double hi, double ftol_rel = 1e-3);

/// The figures of one histogram (docs/tv.md): the sample's counts, the target masses p (exact
/// when reference_n == 0, else the frequencies of an exact reference sample of that size), the
/// bootstrap replicates and their seed. Fills every field of StatResult but name and dims.
StatResult histogram_figures(const std::vector<uint64_t>& counts, const std::vector<double>& p,
                             uint64_t reference_n, int bootstrap, uint64_t seed);

}  // namespace tv_detail

}  // namespace gmmdiff
