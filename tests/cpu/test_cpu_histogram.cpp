// The CPU backend's histograms (host/cpu/cpu_histogram.cpp): the counts of every value and pair
// of a TV plan's spec equal direct binning of the rows, in both precisions and thread counts,
// with NaN/Inf rows counted apart.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "gmmdiff/backend.hpp"
#include "gmmdiff/model.hpp"
#include "gmmdiff/tv.hpp"
#include "util/sample_util.hpp"

namespace gmmdiff {
namespace {

using test::draw;
using test::isotropic;

TEST(CpuHistogram, MatchesDirectBinningInBothPrecisions) {
  const int d = 5;
  const Mixture m = isotropic(d, {{2, 0, 1, 0, 0}, {-1, 0.5, 0, 0, 3}}, {0.7, 1.3}, {0.4, 0.6});
  TvOptions o;
  o.stats = "means,means2d,random:2,radial";
  const uint64_t n = 3000;
  TvPlan plan(m, o, n);
  const HistogramSpec& spec = plan.spec();
  std::vector<double> y = draw(m, n, 3);
  y[7 * d + 2] = NAN;
  y[100 * d] = INFINITY;
  for (Precision prec : {Precision::FP64, Precision::FP32}) {
    // Direct: the values from the data as the backend holds them (float for FP32).
    HistogramCounts ref = HistogramCounts::zeros(spec);
    const int mdirs = static_cast<int>(spec.directions.size() / d);
    for (uint64_t i = 0; i < n; ++i) {
      std::vector<double> row(d);
      bool finite = true;
      for (int j = 0; j < d; ++j) {
        row[j] = prec == Precision::FP32 ? static_cast<double>(static_cast<float>(y[i * d + j])) : y[i * d + j];
        finite = finite && std::isfinite(row[j]);
      }
      ++ref.rows;
      if (!finite) {
        ++ref.nonfinite_rows;
        continue;
      }
      std::vector<int> bins(spec.num_values());
      for (int v = 0; v < spec.num_values(); ++v) {
        double x = 0;
        for (int j = 0; j < d; ++j)
          x += v < mdirs ? row[j] * spec.directions[v * d + j] : std::pow(row[j] - spec.center[j], 2);
        const auto& e = spec.edges[v];
        bins[v] = static_cast<int>(std::upper_bound(e.begin() + 1, e.end() - 1, x) - (e.begin() + 1));
        ++ref.one_d[v][bins[v]];
      }
      for (std::size_t p = 0; p < spec.pairs.size(); ++p)
        ++ref.two_d[p][bins[spec.pairs[p].first] * (spec.edges[spec.pairs[p].second].size() - 1) +
                       bins[spec.pairs[p].second]];
    }
    for (int threads : {1, 2}) {
      SCOPED_TRACE(testing::Message() << "precision " << to_string(prec) << ", threads " << threads);
      auto be = make_backend("cpu", threads);
      RunShape shape;
      shape.d = d;
      shape.K = m.K;
      shape.precision = prec;
      shape.chunk_rows = 1024;
      be->begin(shape, m);
      HistogramCounts c = HistogramCounts::zeros(spec);
      for (uint64_t first = 0; first < n; first += 1024) {
        const std::size_t rows = std::min<uint64_t>(1024, n - first);
        be->upload_chunk(y.data() + first * d, first, rows);
        be->accumulate_histograms(spec, c);
      }
      EXPECT_EQ(c.rows, n);
      EXPECT_EQ(c.nonfinite_rows, 2u);
      EXPECT_EQ(c.one_d, ref.one_d);
      EXPECT_EQ(c.two_d, ref.two_d);
    }
  }
}

}  // namespace
}  // namespace gmmdiff
