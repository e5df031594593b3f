// gmmdiff: the TV of a sample held by the caller (tv_of_sample) or streamed from a .npy file
// (tv_of_npy), include/gmmdiff/tv.hpp; docs/tv.md, "Streaming the sample": the plan, its
// reference sample, then the rows uploaded and binned chunk by chunk (tv_chunk_rows).
#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "gmmdiff/error.hpp"
#include "gmmdiff/sampler.hpp"
#include "gmmdiff/tv.hpp"
#include "tv/distributed.hpp"

namespace gmmdiff {

std::size_t tv_chunk_rows(const Backend& be, const RunShape& shape, uint64_t rows, std::size_t requested) {
  GMMDIFF_EXPECTS(rows > 0, "empty sample: there are no rows to estimate TV from");
  GMMDIFF_EXPECTS(shape.d >= 1, "TV: d = ", shape.d, " (need d >= 1)");
  const std::size_t max_rows = be.max_chunk_rows(shape);
  if (max_rows == 0) throw ResourceError("TV: not even one row of the sample fits the backend's memory");
  if (requested > 0) {
    const std::size_t chunk = static_cast<std::size_t>(std::min<uint64_t>(requested, rows));
    if (chunk > max_rows)
      throw ResourceError(detail::cat("--chunk ", requested, " does not fit in the memory of the ", be.name(),
                                      " backend (at most ", max_rows, " rows of d = ", shape.d, ")"));
    return chunk;
  }
  const std::size_t cap = std::max<std::size_t>(1, kTvChunkBytes / (sizeof(double) * static_cast<std::size_t>(shape.d)));
  std::size_t chunk = static_cast<std::size_t>(std::min<uint64_t>(rows, std::min(max_rows, cap)));
  if (chunk < rows && chunk >= kChunkAlign) chunk -= chunk % kChunkAlign;
  return chunk;
}

namespace {

/// Hands over rows first .. first + rows - 1 of the sample (rows x d doubles, row-major); the
/// pointer stays valid until the next call. Called in order, each chunk once, from the first row
/// of this rank's range.
using ChunkSource = std::function<const double*(uint64_t first, std::size_t rows)>;

/// The counts of a sample of `rows` rows (every chunk uploaded and binned in order, the host
/// statistics from the rows as handed over); the backend is begun here with shape (chunk_rows set).
/// Integer counts do not depend on how the rows are cut into chunks.
HistogramCounts bin_rows(const TvPlan& plan, const Mixture& target, uint64_t rows, RunShape shape, Backend& be,
                         const ChunkSource& next) {
  const std::size_t chunk = shape.chunk_rows;
  be.begin(shape, target);
  HistogramCounts counts = plan.zeros();
  for (uint64_t first = 0; first < rows; first += chunk) {
    const std::size_t r = static_cast<std::size_t>(std::min<uint64_t>(chunk, rows - first));
    const double* y = next(first, r);
    be.upload_chunk(y, first, r);
    plan.accumulate(be, Precision::FP64, counts, y);
  }
  return counts;
}

/// The one path of tv_of_sample and tv_of_npy: the plan for n = rows, its reference sample, then
/// every chunk of this rank's rows (all of them in one process) uploaded and binned in order, the
/// counts summed over the ranks. Only the counts are kept, and integer counts do not depend on how
/// the rows are cut into chunks or ranks.
/// `label` (e.g. "y.npy: ") starts the messages about the sample's values.
TvReport tv_of_chunks(const Mixture& target, uint64_t rows, const TvOptions& opt, Backend& be,
                      std::size_t chunk_rows, const ChunkSource& next, const std::string& label,
                      dist::Comm& comm) {
  GMMDIFF_EXPECTS(rows > 0, "empty sample: there are no rows to estimate TV from");
  std::unique_ptr<TvPlan> plan;
  RunShape shape = run_shape(target, Precision::FP64, opt.seed);
  shape.steps = false;  // uploaded and binned only: no step scratch (a d = 10^6 sample fits)
  std::size_t chunk = 0;
  dist::collective(comm, [&] {
    plan = std::make_unique<TvPlan>(target, opt, rows);
    // Chosen before the reference sample is drawn, so that a --chunk that does not fit fails at once.
    chunk = tv_chunk_rows(be, shape, rows, chunk_rows);
  });
  prepare_reference(*plan, be, Precision::FP64, comm);
  const dist::Range mine = dist::split_range(rows, comm.rank(), comm.size());
  HistogramCounts counts = plan->zeros();
  dist::collective(comm, [&] {
    if (mine.count == 0) return;
    shape.chunk_rows = chunk;
    be.begin(shape, target);
    for (uint64_t first = mine.first; first < mine.first + mine.count; first += chunk) {
      const std::size_t r = static_cast<std::size_t>(std::min<uint64_t>(chunk, mine.first + mine.count - first));
      const double* y = next(first, r);
      be.upload_chunk(y, first, r);
      plan->accumulate(be, Precision::FP64, counts, y);
    }
  });
  dist::sum_counts(comm, counts);
  TvReport report;
  dist::on_root(comm, [&] {
    GMMDIFF_EXPECTS(counts.nonfinite_rows < counts.rows, label, "all ", counts.rows,
                    " rows of the sample hold NaN or Inf: no finite rows to estimate TV from");
    report = plan->evaluate(counts);
  });
  return report;
}

/// Reads a .npy sample chunk by chunk into one buffer of doubles (the only memory that holds its values).
ChunkSource npy_source(NpyReader& sample, int d, std::vector<double>& buf) {
  const std::size_t dd = static_cast<std::size_t>(d);
  return [&sample, dd, &buf](uint64_t first, std::size_t r) {
    if (buf.size() < r * dd) {  // the first chunk is the largest: one allocation
      try {
        buf.resize(r * dd);
      } catch (const std::bad_alloc&) {
        throw ResourceError(detail::cat(sample.path(), ": cannot allocate a chunk of ", r, " rows x d = ", dd,
                                        " doubles (", (r * dd * sizeof(double)) >> 20, " MiB); try a smaller --chunk"));
      }
    }
    const uint64_t got = sample.read_rows(buf.data(), r);
    GMMDIFF_EXPECTS(got == r, sample.path(), ": read ", got, " rows at row ", first, " where ", r, " were due");
    return static_cast<const double*>(buf.data());
  };
}

}  // namespace

TvReport tv_of_rows(const Mixture& target, uint64_t rows, const TvOptions& opt, Backend& be,
                    const TvChunkSource& next, std::size_t chunk_rows, const std::string& label) {
  return tv_of_chunks(target, rows, opt, be, chunk_rows, next, label, dist::serial());
}

TvReport tv_of_sample(const Mixture& target, const double* y, uint64_t rows, const TvOptions& opt, Backend& be,
                      std::size_t chunk_rows) {
  const std::size_t d = static_cast<std::size_t>(target.d);
  return tv_of_chunks(target, rows, opt, be, chunk_rows, [&](uint64_t first, std::size_t) { return y + first * d; },
                      "", dist::serial());
}

void check_tv_sample(const std::vector<uint64_t>& shape, int target_d, const std::string& label) {
  GMMDIFF_EXPECTS(shape.size() == 1 || shape.size() == 2, label, ": a sample must be an (n, d) array, got ",
                  shape.size(), " dimensions");
  GMMDIFF_EXPECTS(shape[0] > 0, label, ": empty sample (0 rows)");
  const uint64_t cols = shape.size() == 2 ? shape[1] : 1;
  GMMDIFF_EXPECTS(cols == static_cast<uint64_t>(target_d), label, ": the sample has d = ", cols,
                  " columns but the model has d = ", target_d);
}

void check_tv_sample(const NpyReader& sample, int target_d) { check_tv_sample(sample.shape(), target_d, sample.path()); }

TvReport tv_of_npy(const Mixture& target, NpyReader& sample, const TvOptions& opt, Backend& be,
                   std::size_t chunk_rows) {
  return tv_of_npy(target, sample, opt, be, chunk_rows, dist::serial());
}

TvReport tv_of_npy(const Mixture& target, NpyReader& sample, const TvOptions& opt, Backend& be,
                   std::size_t chunk_rows, dist::Comm& comm) {
  dist::collective(comm, [&] {
    check_tv_sample(sample, target.d);
    GMMDIFF_EXPECTS(sample.rows_read() == 0, sample.path(), ": ", sample.rows_read(),
                    " rows were already read; the TV needs the sample from its first row");
  });
  const std::size_t d = static_cast<std::size_t>(target.d);
  std::vector<double> buf;  // one chunk of doubles: the only memory that holds sample values
  auto read_chunk = [&](uint64_t first, std::size_t r) {
    if (buf.size() < r * d) {  // the first chunk is the largest: one allocation
      try {
        buf.resize(r * d);
      } catch (const std::bad_alloc&) {
        throw ResourceError(detail::cat(sample.path(), ": cannot allocate a chunk of ", r, " rows x d = ", d,
                                        " doubles (", (r * d * sizeof(double)) >> 20, " MiB); try a smaller --chunk"));
      }
    }
    if (sample.rows_read() != first) sample.seek_row(first);  // the first chunk of a rank's range
    const uint64_t got = sample.read_rows(buf.data(), r);
    GMMDIFF_EXPECTS(got == r, sample.path(), ": read ", got, " rows at row ", first, " where ", r, " were due");
    return static_cast<const double*>(buf.data());
  };
  return tv_of_chunks(target, sample.rows(), opt, be, chunk_rows, read_chunk, sample.path() + ": ", comm);
}

TvReport tv_of_npy_against(const Mixture& target, NpyReader& sample, NpyReader& against, const TvOptions& opt,
                           Backend& be, std::size_t chunk_rows) {
  check_tv_sample(sample, target.d);
  check_tv_sample(against, target.d);
  for (const NpyReader* r : {&sample, &against})
    GMMDIFF_EXPECTS(r->rows_read() == 0, r->path(), ": ", r->rows_read(),
                    " rows were already read; the TV needs the sample from its first row");
  TvPlan plan(target, opt, sample.rows());
  RunShape shape = run_shape(target, Precision::FP64, opt.seed);
  const std::size_t chunk = tv_chunk_rows(be, shape, std::max(sample.rows(), against.rows()), chunk_rows);
  plan.prepare_edges(be, Precision::FP64);  // logp's edges: the target's, from its pilot sample
  std::vector<double> buf;
  shape.chunk_rows = std::min<uint64_t>(chunk, against.rows());
  const HistogramCounts second =
      bin_rows(plan, target, against.rows(), shape, be, npy_source(against, target.d, buf));
  GMMDIFF_EXPECTS(second.nonfinite_rows < second.rows, against.path(), ": all ", second.rows,
                  " rows of the sample hold NaN or Inf: no finite rows to compare with");
  plan.set_against(second);
  shape.chunk_rows = std::min<uint64_t>(chunk, sample.rows());
  const HistogramCounts counts = bin_rows(plan, target, sample.rows(), shape, be, npy_source(sample, target.d, buf));
  GMMDIFF_EXPECTS(counts.nonfinite_rows < counts.rows, sample.path(), ": all ", counts.rows,
                  " rows of the sample hold NaN or Inf: no finite rows to estimate TV from");
  TvReport rep = plan.evaluate(counts);
  rep.against_n = second.rows;
  rep.against_nonfinite = second.nonfinite_rows;
  return rep;
}

}  // namespace gmmdiff
