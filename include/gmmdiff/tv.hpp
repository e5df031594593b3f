// gmmdiff: total-variation estimates of a sample against the target, through statistics
// (THEORY.md, Measuring TV in high dimension). Each statistic phi gives a lower bound
// TV(phi(X_0), phi(Y)) <= TV(X_0, Y); its histogram is binned where the particles lie (the
// backend's accumulate_histograms), and only counts come back to the host.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
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
  /// The direction files of file:PATH statistics already read, by PATH as written in `stats`: a
  /// sweep reads each once, when it is parsed, and every run uses that copy. A PATH not here is
  /// read when the plan is made.
  std::map<std::string, std::shared_ptr<const NpyArray>> files;
};

/// The PATHs of the file:PATH statistics of `stats`, as written, in order (throws gmmdiff::Error
/// on a malformed list, as the plan would).
std::vector<std::string> stat_files(const std::string& stats);

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
  /// Lower end of a 95% interval that holds jointly for every statistic of the report (Bonferroni:
  /// each statistic's one-sided level 0.025 / N), so it accounts for picking the largest of N
  /// statistics. Equal to ci_lo when the report has one statistic.
  double ci_lo_joint = 0;
  // KL(Y || X_0) of the binned statistic (docs/tv.md, "KL"), a lower bound on KL(Y || X_0) by the
  // data-processing inequality:
  double kl = 0;          ///< plug-in KL of the two histograms (>= 0; biased upward)
  double kl_mm = 0;       ///< Miller-Madow bias-corrected: kl - (B - 1)/(2n) [- (B - 1)/(2m)], clipped at 0
  double kl_ci_lo = 0, kl_ci_hi = 0;  ///< 95% interval for the binned KL
};

struct TvReport {
  std::vector<StatResult> stats;
  std::size_t best = 0;      ///< index of the largest tv_corrected
  std::size_t best_kl = 0;   ///< index of the largest kl_mm
  uint64_t n = 0;            ///< rows in the sample
  uint64_t nonfinite = 0;    ///< rows with NaN/Inf (excluded from every histogram; TV refers
                             ///< to the n - nonfinite finite rows)
  uint64_t against_n = 0;          ///< tv_of_npy_against: rows of the second sample (0 otherwise)
  uint64_t against_nonfinite = 0;  ///< of which hold NaN or Inf (excluded)
  std::vector<std::string> notes;  ///< statistics skipped and why (e.g. means of rank 0)
  const StatResult& max() const { return stats.at(best); }
  const StatResult& max_kl() const { return stats.at(best_kl); }
};

/// The binning plan for a model, options and sample size: the statistics, their histogram spec
/// (directions, radial centre, equal-mass edges, 2-D pairs) and the target's masses of the bins.
class TvPlan {
 public:
  /// Throws gmmdiff::Error for an empty sample, bad options or statistics (docs/tv.md), or when
  /// no requested statistic can be evaluated.
  TvPlan(const Mixture& target, const TvOptions& opt, uint64_t n);
  TvPlan(const TvPlan& other);
  TvPlan(TvPlan&& other) noexcept;
  TvPlan& operator=(const TvPlan& other);
  TvPlan& operator=(TvPlan&& other) noexcept;
  ~TvPlan();

  /// The statistics the backend bins where the chunk lies (projections, radial, their 2-D pairs).
  const HistogramSpec& spec() const;
  /// Whether some statistic is binned on the host (meansperp, logp: docs/tv.md): accumulate then
  /// downloads each chunk (Backend::stream_chunk) to bin them.
  bool host_statistics() const;
  /// Counts shaped for every statistic: spec()'s values and pairs first (as
  /// HistogramCounts::zeros(spec()) shapes them), then the host statistics' histograms.
  HistogramCounts zeros() const;
  /// Bins the backend's current chunk (be.rows() rows in the run's `precision`) into counts shaped
  /// by zeros(): spec() where the chunk lies, and the host statistics from host_rows (the same rows
  /// as doubles, when the caller holds them) or else from a download of the chunk.
  void accumulate(Backend& be, Precision precision, HistogramCounts& counts, const double* host_rows = nullptr) const;
  /// Completes target masses that need an exact reference sample, using backend be (it calls
  /// be.begin(), so call it before a run's begin()): the logp statistic's edges (an exact pilot
  /// sample) and the masses of every statistic whose law is not closed-form. No-op when every
  /// statistic is exact.
  void prepare_reference(Backend& be, Precision precision);
  /// prepare_reference in parts (e.g. one per MPI rank, docs/scale.md): the reference sample's size
  /// (0 when every statistic is exact); the counts of its rows first .. first + count - 1 (each row
  /// a function of its index; it calls be.begin()); then set_reference with the counts of all its
  /// rows summed (integers: any split and order give the same counts, hence the same figures).
  uint64_t reference_rows() const;
  HistogramCounts reference_counts(Backend& be, Precision precision, uint64_t first, uint64_t count) const;
  void set_reference(const HistogramCounts& counts);
  /// Only the logp edges (its pilot sample; prepare_reference does this first, and a caller of
  /// reference_counts must do it before: every rank draws the same pilot). No-op without logp.
  void prepare_edges(Backend& be, Precision precision);
  /// Two-sample comparison (`gmmdiff tv A --against B`): every statistic's masses become the
  /// frequencies of a second sample (its counts, shaped by zeros(); its finite rows m), with that
  /// sample's noise in the floor and the interval (as a reference sample of m rows). Call
  /// prepare_reference first when the plan has logp (its edges).
  void set_against(const HistogramCounts& second);
  /// The figures for accumulated counts of a sample (shaped by zeros(); HistogramCounts::zeros(spec())
  /// is the same when host_statistics() is false).
  TvReport evaluate(const HistogramCounts& counts) const;
  /// The statistics' names, in the order of TvReport::stats.
  const std::vector<std::string>& names() const;
  /// Statistics that were requested but skipped, with the reason.
  const std::vector<std::string>& notes() const;
  /// Bins per 1-D histogram and per axis of a 2-D histogram for this plan.
  int bins_1d() const;
  int bins_2d_axis() const;

 private:
  struct Impl;  // holds a tv_detail::Plan (host/tv/plan_detail.hpp)
  std::unique_ptr<Impl> impl_;
};

/// A ChunkSink that bins each chunk where it lies (and, for host statistics, from a download of
/// it: hence the run's precision).
class TvSink : public ChunkSink {
 public:
  TvSink(const TvPlan& plan, Precision precision) : plan_(plan), precision_(precision), counts_(plan.zeros()) {}
  void on_chunk(Backend& be) override { plan_.accumulate(be, precision_, counts_); }
  const HistogramCounts& counts() const { return counts_; }
  TvReport report() const { return plan_.evaluate(counts_); }

 private:
  const TvPlan& plan_;
  Precision precision_;
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

/// Hands over rows first .. first + rows - 1 of a sample (rows x d doubles, row-major); the
/// pointer stays valid until the next call. Called in order, each chunk once. It may throw (e.g.
/// to cancel): the exception leaves tv_of_rows.
using TvChunkSource = std::function<const double*(uint64_t first, std::size_t rows)>;

/// TV of a sample of `rows` rows that `next` hands over chunk by chunk (tv_of_sample and
/// tv_of_npy are this with an array and a file): the plan for n = rows, its reference sample,
/// then every chunk of tv_chunk_rows(..., chunk_rows) rows uploaded and binned in order. The
/// report depends only on the rows' values, never on how they are cut into chunks.
/// `label` (e.g. "y.npy: ") starts the messages about the sample's values.
TvReport tv_of_rows(const Mixture& target, uint64_t rows, const TvOptions& opt, Backend& be,
                    const TvChunkSource& next, std::size_t chunk_rows = 0, const std::string& label = "");

/// Checks that a sample of this shape is an (n, d) array (or (n,) for d = 1) with n > 0 and
/// d = target_d columns; throws gmmdiff::Error whose message starts with `label` (a file name, or
/// "sample" for an array): the messages of `gmmdiff tv`.
void check_tv_sample(const std::vector<uint64_t>& shape, int target_d, const std::string& label);
/// The same for a .npy sample, naming the file.
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

/// Two samples against each other (`gmmdiff tv A.npy --against B.npy`): the statistics and bins of
/// the model's plan (for n = A's rows), the masses the frequencies of B's finite rows instead of
/// the target's, so that both samples' noise is in the floor and the interval (the two-sample
/// figures of docs/tv.md). Both are streamed as tv_of_npy streams one; B's NaN/Inf rows are
/// excluded and counted (against_nonfinite). Checks both with check_tv_sample first.
TvReport tv_of_npy_against(const Mixture& target, NpyReader& sample, NpyReader& against, const TvOptions& opt,
                           Backend& be, std::size_t chunk_rows = 0);

/// The report as the JSON text `gmmdiff tv --json` writes (without the final newline), the one
/// writer of its keys: Python's gmmdiff.tv returns this text parsed, so both have the same keys and
/// values by construction (docs/tv.md lists them). `sample` and `against` are what the caller read
/// (a file's name; std::nullopt writes null: an in-memory array, or no second sample); `backend`
/// the backend's name; opt the options the report was made with (under "options").
std::string tv_json(const TvReport& r, const Mixture& target, const TvOptions& opt, const std::string& backend,
                    const std::optional<std::string>& sample, const std::optional<std::string>& against);

}  // namespace gmmdiff
