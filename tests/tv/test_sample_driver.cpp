// The TV of a sample (host/tv/sample_driver.cpp): non-finite rows counted and excluded, and the
// .npy stream (tv_of_npy): the same report as in memory for any chunk, float32 and float64, on the
// reference-sample path too; the automatic chunk; shape errors and a file cut while streaming.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "gmmdiff/backend.hpp"
#include "gmmdiff/error.hpp"
#include "gmmdiff/model.hpp"
#include "gmmdiff/npy.hpp"
#include "gmmdiff/tv.hpp"
#include "util/sample_util.hpp"
#include "util/tv_util.hpp"

namespace gmmdiff {
namespace {

using test::diagonal_mixture;
using test::draw;
using test::isotropic;
using test::temp_path;
using test::write_npy_raw;

TEST(TvSample, NonFiniteRowsAreCountedAndExcluded) {
  const Mixture m = isotropic(2, {{1, 0}, {-1, 0}}, {1.0, 1.0}, {0.5, 0.5});
  TvOptions o;
  o.stats = "means,radial";
  o.bins = 20;
  const uint64_t n = 5000;
  std::vector<double> y = draw(m, n, 8), clean;
  const std::vector<uint64_t> bad_rows = {0, 17, 4999};
  y[0] = NAN;
  y[17 * 2 + 1] = -INFINITY;
  y[4999 * 2] = INFINITY;
  for (uint64_t i = 0; i < n; ++i)
    if (std::find(bad_rows.begin(), bad_rows.end(), i) == bad_rows.end()) clean.insert(clean.end(), &y[2 * i], &y[2 * i + 2]);
  auto be = make_backend("cpu", 0);
  const TvReport with = tv_of_sample(m, y.data(), n, o, *be);
  const TvReport without = tv_of_sample(m, clean.data(), n - 3, o, *be);
  EXPECT_EQ(with.n, n);
  EXPECT_EQ(with.nonfinite, 3u);
  ASSERT_EQ(with.stats.size(), without.stats.size());
  for (std::size_t i = 0; i < with.stats.size(); ++i) {
    SCOPED_TRACE(with.stats[i].name);
    EXPECT_EQ(with.stats[i].tv, without.stats[i].tv);
    EXPECT_EQ(with.stats[i].floor, without.stats[i].floor);
  }
  std::vector<double> all_bad(4, NAN);
  EXPECT_THROW(tv_of_sample(m, all_bad.data(), 2, o, *be), Error);
  EXPECT_THROW(tv_of_sample(m, y.data(), 0, o, *be), Error);
}


// ---- streaming a .npy sample (tv_of_npy) -------------------------------------------------------

/// Streamed and in-memory reports are compared for exact equality: the counts are integers and
/// do not depend on the chunk, so every figure is the same double.
constexpr double kStreamedVsInMemoryTol = 0.0;

/// Chunk sizes of the streaming tests: one row, a small odd number, one CPU block, more than n.
std::vector<std::size_t> stream_chunks(uint64_t n) { return {1, 7, 256, static_cast<std::size_t>(n) + 13}; }

void expect_same_report(const TvReport& a, const TvReport& b) {
  EXPECT_EQ(a.n, b.n);
  EXPECT_EQ(a.nonfinite, b.nonfinite);
  EXPECT_EQ(a.best, b.best);
  EXPECT_EQ(a.notes, b.notes);
  ASSERT_EQ(a.stats.size(), b.stats.size());
  for (std::size_t i = 0; i < a.stats.size(); ++i) {
    const StatResult &x = a.stats[i], &y = b.stats[i];
    SCOPED_TRACE(x.name);
    EXPECT_EQ(x.name, y.name);
    EXPECT_EQ(x.dims, y.dims);
    EXPECT_EQ(x.bins, y.bins);
    EXPECT_EQ(x.exact_target, y.exact_target);
    EXPECT_EQ(x.reference_n, y.reference_n);
    EXPECT_EQ(x.resolved, y.resolved);
    EXPECT_NEAR(x.tv, y.tv, kStreamedVsInMemoryTol);
    EXPECT_NEAR(x.tv_corrected, y.tv_corrected, kStreamedVsInMemoryTol);
    EXPECT_NEAR(x.floor, y.floor, kStreamedVsInMemoryTol);
    EXPECT_NEAR(x.ci_lo, y.ci_lo, kStreamedVsInMemoryTol);
    EXPECT_NEAR(x.ci_hi, y.ci_hi, kStreamedVsInMemoryTol);
  }
}

/// A backend that forwards to the CPU backend and records the chunk capacity given to begin()
/// and the largest upload: the streaming path must never hand the backend more rows than the
/// chunk it chose (and so never read more from the file at once). With max_rows > 0 it claims
/// exactly that capacity for any shape (machine-independent chunk tests).
class RecordingBackend : public Backend {
 public:
  explicit RecordingBackend(std::size_t max_rows = 0) : inner_(make_backend("cpu", 0)), max_rows_(max_rows) {}
  std::string name() const override { return inner_->name(); }
  std::string device_name() const override { return inner_->device_name(); }
  std::size_t max_chunk_rows(const RunShape& s) const override {
    return max_rows_ > 0 ? max_rows_ : inner_->max_chunk_rows(s);
  }
  void begin(const RunShape& s, const Mixture& t) override {
    capacity = s.chunk_rows;
    inner_->begin(s, t);
  }
  void init_chunk(uint64_t first, std::size_t rows) override { inner_->init_chunk(first, rows); }
  void fill_target(uint64_t first, std::size_t rows) override { inner_->fill_target(first, rows); }
  void upload_chunk(const double* host, uint64_t first, std::size_t rows) override {
    EXPECT_EQ(first, uploaded) << "chunks out of order";
    EXPECT_LE(rows, capacity);
    largest_upload = std::max(largest_upload, rows);
    uploaded += rows;
    ++uploads;
    inner_->upload_chunk(host, first, rows);
  }
  void step(const StepCoeffs& c) override { inner_->step(c); }
  void download(void* host) const override { inner_->download(host); }
  uint64_t count_nonfinite_rows() const override { return inner_->count_nonfinite_rows(); }
  void accumulate_histograms(const HistogramSpec& spec, HistogramCounts& counts) override {
    inner_->accumulate_histograms(spec, counts);
  }
  std::size_t capacity = 0, largest_upload = 0, uploads = 0;
  uint64_t uploaded = 0;

 private:
  std::unique_ptr<Backend> inner_;
  std::size_t max_rows_;
};

/// n draws of m with NaN/Inf in a few rows (fixed seed), as the in-memory array and as a file.
std::vector<double> sample_with_nonfinite_rows(const Mixture& m, uint64_t n, uint64_t seed) {
  std::vector<double> y = draw(m, n, seed);
  const std::size_t d = static_cast<std::size_t>(m.d);
  y[0] = NAN;                    // the first row
  y[6 * d + d - 1] = INFINITY;   // the last row of the first chunk of 7
  y[7 * d] = -INFINITY;          // the first row of the second
  y[(n - 1) * d] = NAN;          // the last row
  return y;
}

TEST(TvStream, StreamedReportEqualsInMemoryForAnyChunkFp32AndFp64) {
  const Mixture m = isotropic(3, {{1.5, 0, 0}, {-1, 1, 0.5}}, {1.0, 0.8}, {0.4, 0.6});
  const uint64_t n = 3001;  // a multiple of no chunk size
  TvOptions o;
  o.stats = "means,random:3,axes:2,radial,means2d";
  o.bins = 16;
  o.seed = 11;
  const std::vector<double> y = sample_with_nonfinite_rows(m, n, 31);
  const std::string p = temp_path("stream.npy");
  auto be = make_backend("cpu", 0);
  for (const bool fp32 : {false, true}) {
    write_npy(p, y.data(), n, m.d, fp32);
    const NpyArray whole = read_npy(p);  // the values as the stream sees them (fp32 rounded)
    const TvReport ref = tv_of_sample(m, whole.data.data(), n, o, *be);
    ASSERT_EQ(ref.nonfinite, 4u);
    for (const std::size_t chunk : stream_chunks(n)) {
      SCOPED_TRACE(testing::Message() << (fp32 ? "<f4" : "<f8") << ", n = " << n << ", chunk = " << chunk
                                      << " rows, stats " << o.stats << ", bins " << o.bins << ", seed " << o.seed);
      NpyReader r(p);
      RecordingBackend rec;
      expect_same_report(tv_of_npy(m, r, o, rec, chunk), ref);
      EXPECT_EQ(rec.capacity, std::min<std::size_t>(chunk, n));
      EXPECT_LE(rec.largest_upload, chunk);
      EXPECT_EQ(rec.uploaded, n);
      EXPECT_EQ(rec.uploads, (n + chunk - 1) / chunk);
      EXPECT_EQ(r.rows_left(), 0u);
      // the in-memory path cut into the same chunks
      expect_same_report(tv_of_sample(m, whole.data.data(), n, o, *be, chunk), ref);
    }
  }
}

TEST(TvStream, ReferenceSamplePathIsTheSameStreamed) {
  // Diagonal components: means2d and radial take their masses from an exact reference sample,
  // drawn by prepare_reference before the sample's begin(); streaming must not disturb it.
  const Mixture m = diagonal_mixture();
  TvOptions o;
  o.stats = "means,means2d,radial";
  o.reference_n = 4000;
  o.seed = 5;
  const uint64_t n = 1500;
  const std::vector<double> y = sample_with_nonfinite_rows(m, n, 23);
  const std::string p = temp_path("stream_ref.npy");
  auto be = make_backend("cpu", 0);
  for (const bool fp32 : {false, true}) {
    write_npy(p, y.data(), n, m.d, fp32);
    const NpyArray whole = read_npy(p);
    const TvReport ref = tv_of_sample(m, whole.data.data(), n, o, *be);
    std::size_t with_reference = 0;
    for (const auto& s : ref.stats) with_reference += s.reference_n == o.reference_n;
    ASSERT_EQ(with_reference, 2u);  // means2d and radial
    for (const std::size_t chunk : stream_chunks(n)) {
      SCOPED_TRACE(testing::Message() << (fp32 ? "<f4" : "<f8") << ", n = " << n << ", chunk = " << chunk
                                      << " rows, reference_n = " << o.reference_n << ", seed " << o.seed);
      NpyReader r(p);
      expect_same_report(tv_of_npy(m, r, o, *be, chunk), ref);
    }
  }
}

TEST(TvStream, AutomaticChunkIs64MiBOfDoublesAndAnOversizedChunkIsRefused) {
  const RecordingBackend cpu(std::size_t(1) << 30);  // room for any automatic chunk
  RunShape s;
  s.K = 1;
  s.precision = Precision::FP64;
  struct Case {
    int d;
    uint64_t rows;
    std::size_t requested, expect;
  };
  const std::vector<Case> cases = {
      {64, 100000000, 0, kTvChunkBytes / (8 * 64)},  // 131072 rows of d = 64: 64 MiB
      {3, 100000000, 0, kTvChunkBytes / (8 * 3) / kChunkAlign * kChunkAlign},
      {3, 1000, 0, 1000},                        // the whole sample when it is smaller
      {100000, 10000, 0, kTvChunkBytes / (8 * 100000)},  // 83 rows: below kChunkAlign, not rounded
      {10000000, 10, 0, 1},                      // at least one row
      {3, 1000, 7, 7},                           // as requested, exactly
      {3, 1000, 5000, 1000},                     // at most the sample
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(testing::Message() << "d = " << c.d << ", rows = " << c.rows << ", requested = " << c.requested);
    s.d = c.d;
    const std::size_t rows = tv_chunk_rows(cpu, s, c.rows, c.requested);
    EXPECT_EQ(rows, c.expect);
    if (c.requested == 0 && rows > 1) {
      EXPECT_LE(rows * 8 * static_cast<std::size_t>(c.d), kTvChunkBytes);
    }
  }
  const RecordingBackend small(1024);
  s.d = 3;
  try {
    tv_chunk_rows(small, s, 5000, 2000);
    ADD_FAILURE() << "a chunk over max_chunk_rows was accepted";
  } catch (const ResourceError& e) {
    EXPECT_NE(std::string(e.what()).find("--chunk 2000 does not fit"), std::string::npos) << e.what();
  }
  EXPECT_EQ(tv_chunk_rows(small, s, 5000, 0), 1024u);
}

TEST(TvStream, ShapeErrorsAndAFileCutWhileStreamingAreErrors) {
  const Mixture m = isotropic(2, {{1, 0}}, {1.0}, {1.0});
  TvOptions o;
  o.stats = "axes";
  auto be = make_backend("cpu", 0);
  const std::string p = temp_path("stream_bad.npy");
  auto message = [&](const std::function<void()>& f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  write_npy_raw(p, draw(m, 10, 1), 5, 4);  // d = 4
  {
    NpyReader r(p);
    EXPECT_NE(message([&] { tv_of_npy(m, r, o, *be); }).find("the sample has d = 4 columns but the model has d = 2"),
              std::string::npos);
  }
  write_npy_raw(p, {}, 0, 2);
  {
    NpyReader r(p);
    EXPECT_NE(message([&] { tv_of_npy(m, r, o, *be); }).find("empty sample (0 rows)"), std::string::npos);
  }
  // cut after the reader checked the size: the chunk that reaches the cut fails, no report
  const uint64_t n = 4000;
  write_npy_raw(p, draw(m, n, 2), n, 2);
  for (const std::size_t chunk : stream_chunks(n)) {
    SCOPED_TRACE(testing::Message() << "chunk = " << chunk);
    write_npy_raw(p, draw(m, n, 2), n, 2);
    NpyReader r(p);
    ASSERT_EQ(::truncate(p.c_str(), static_cast<off_t>(r.header().data_offset + (n / 2) * 2 * 8)), 0);
    const std::string msg = message([&] { tv_of_npy(m, r, o, *be, chunk); });
    EXPECT_NE(msg.find("truncated .npy data"), std::string::npos) << msg;
    EXPECT_EQ(msg.find(p), 0u) << msg;
  }
}

}  // namespace
}  // namespace gmmdiff

namespace gmmdiff {
namespace {

// Issue 15: `tv` refused a d = 10^6 sample that `sample` had just written: its chunk budget
// reserved the step scratch of a full block per thread (256 rows x 2 d doubles each), which TV
// never uses (it only uploads and bins). Here with 256 threads, whose scratch alone (1 TB at
// d = 10^6) exceeds any machine's budget: the steps' budget refuses, TV's accepts, and TV runs.
TEST(TvStream, AHighDimensionalSampleFitsWithoutStepScratch) {
  constexpr int kThreads = 256;
  constexpr int d = 1000000;
  const auto cpu = make_backend("cpu", kThreads);
  PresetParams pp;
  pp.name = "gaussian";
  pp.d = d;
  pp.radius = 1;
  const Mixture m = make_preset(pp);
  RunShape s = run_shape(m, Precision::FP64, 0);
  EXPECT_EQ(cpu->max_chunk_rows(s), 0u) << "this machine's memory holds a step scratch of 1 TB?";
  s.steps = false;
  EXPECT_GE(cpu->max_chunk_rows(s), 2u);
  const uint64_t n = 2;
  std::vector<double> y(n * d, 0.0);
  for (std::size_t i = 0; i < y.size(); ++i) y[i] = std::sin(0.001 * static_cast<double>(i));
  TvOptions o;
  o.stats = "random:2,radial";
  o.bins = 2;
  o.bootstrap = 20;
  const TvReport r = tv_of_sample(m, y.data(), n, o, *cpu);
  EXPECT_EQ(r.n, n);
  EXPECT_EQ(r.stats.size(), 3u);
}

}  // namespace
}  // namespace gmmdiff
