// gmmdiff: the CPU backend's histograms of statistics (backend.hpp, HistogramSpec): projections
// <y, u_v> and the radial |y - c|^2 of each row, accumulated in double from the chunk's data,
// binned with detail::find_bin. OpenMP over fixed blocks of rows with thread-local counts merged
// in thread order (integer counts: the result does not depend on the thread count).
#include <omp.h>

#include <algorithm>
#include <cmath>  // before philox.hpp, which uses log/sqrt without including it
#include <type_traits>
#include <vector>

#include "cpu/cpu_backend.hpp"
#include "gmmdiff/detail/step_math.hpp"
#include "gmmdiff/error.hpp"

namespace gmmdiff {

namespace {

void check_spec(const HistogramSpec& spec, const HistogramCounts& counts, int d) {
  GMMDIFF_EXPECTS(spec.d == d, "histograms: the statistics are for d = ", spec.d, " but the chunk has d = ", d);
  GMMDIFF_EXPECTS(spec.directions.size() % static_cast<std::size_t>(d) == 0,
                  "histograms: directions hold ", spec.directions.size(), " values, not a multiple of d = ", d);
  const std::size_t m = spec.directions.size() / d;
  GMMDIFF_EXPECTS(spec.edges.size() == m + (spec.radial ? 1 : 0), "histograms: ", spec.edges.size(),
                  " edge lists for ", m, " directions", spec.radial ? " and the radial value" : "");
  GMMDIFF_EXPECTS(!spec.radial || spec.center.size() == static_cast<std::size_t>(d),
                  "histograms: the radial centre has ", spec.center.size(), " values, d = ", d);
  for (std::size_t v = 0; v < spec.edges.size(); ++v)
    GMMDIFF_EXPECTS(spec.edges[v].size() >= 2, "histograms: value ", v, " has ", spec.edges[v].size(),
                    " edges (at least 2 are needed)");
  GMMDIFF_EXPECTS(counts.one_d.size() == spec.edges.size() && counts.two_d.size() == spec.pairs.size(),
                  "histograms: counts are not shaped for the spec (use HistogramCounts::zeros)");
  for (std::size_t v = 0; v < spec.edges.size(); ++v)
    GMMDIFF_EXPECTS(counts.one_d[v].size() == spec.edges[v].size() - 1,
                    "histograms: counts of value ", v, " are not shaped for the spec");
  for (std::size_t p = 0; p < spec.pairs.size(); ++p) {
    const auto [a, b] = spec.pairs[p];
    GMMDIFF_EXPECTS(a >= 0 && b >= 0 && a < spec.num_values() && b < spec.num_values(),
                    "histograms: pair ", p, " names value ", a, " or ", b, " of ", spec.num_values());
    GMMDIFF_EXPECTS(counts.two_d[p].size() == (spec.edges[a].size() - 1) * (spec.edges[b].size() - 1),
                    "histograms: counts of pair ", p, " are not shaped for the spec");
  }
}

}  // namespace

void CpuBackend::accumulate_histograms(const HistogramSpec& spec, HistogramCounts& counts) {
  check_spec(spec, counts, shape_.d);
  if (shape_.precision == Precision::FP32) hist_impl<float>(spec, counts);
  else hist_impl<double>(spec, counts);
}

template <typename Real>
void CpuBackend::hist_impl(const HistogramSpec& spec, HistogramCounts& counts) {
  const Real* Y;
  if constexpr (std::is_same_v<Real, float>) Y = data_f32();
  else Y = data_f64();
  const int d = shape_.d;
  const std::size_t rows = rows_;
  const int m = static_cast<int>(spec.directions.size() / d);
  const int nv = spec.num_values();
  const bool radial = spec.radial;
  const int np = static_cast<int>(spec.pairs.size());

  // Directions transposed to [d][m]: the inner loop runs over directions (vectorises, no reduction).
  std::vector<double> Ut(static_cast<std::size_t>(d) * m);
  for (int v = 0; v < m; ++v)
    for (int j = 0; j < d; ++j) Ut[static_cast<std::size_t>(j) * m + v] = spec.directions[static_cast<std::size_t>(v) * d + j];
  // Flat layout of the thread-local counts: the 1-D histograms, then the 2-D ones.
  std::vector<std::size_t> off1(nv), off2(np);
  std::vector<int> nb(nv);
  std::size_t total = 0;
  for (int v = 0; v < nv; ++v) {
    nb[v] = static_cast<int>(spec.edges[v].size()) - 1;
    off1[v] = total;
    total += nb[v];
  }
  for (int p = 0; p < np; ++p) {
    off2[p] = total;
    total += static_cast<std::size_t>(nb[spec.pairs[p].first]) * nb[spec.pairs[p].second];
  }

  const int nthreads = threads_ > 0 ? threads_ : omp_get_max_threads();
  std::vector<std::vector<uint64_t>> local(nthreads);
  std::vector<uint64_t> bad(nthreads, 0);
  const std::size_t nblocks = (rows + kCpuBlock - 1) / kCpuBlock;
  const double* center = radial ? spec.center.data() : nullptr;

#pragma omp parallel num_threads(nthreads)
  {
    const int tid = omp_get_thread_num();
    std::vector<uint64_t>& h = local[tid];
    h.assign(total, 0);
    std::vector<double> val(nv);
    std::vector<int> bin(nv);
    uint64_t nonfinite = 0;
#pragma omp for schedule(static)
    for (std::size_t blk = 0; blk < nblocks; ++blk) {
      const std::size_t r1 = std::min(rows, (blk + 1) * kCpuBlock);
      for (std::size_t r = blk * kCpuBlock; r < r1; ++r) {
        const Real* y = Y + r * static_cast<std::size_t>(d);
        bool finite = true;
        for (int v = 0; v < m; ++v) val[v] = 0;
        double rad = 0;
        for (int j = 0; j < d; ++j) {
          const double yj = static_cast<double>(y[j]);
          finite &= detail::is_finite(yj);
          const double* u = Ut.data() + static_cast<std::size_t>(j) * m;
          for (int v = 0; v < m; ++v) val[v] += yj * u[v];
          if (radial) {
            const double dl = yj - center[j];
            rad += dl * dl;
          }
        }
        if (!finite) {
          ++nonfinite;
          continue;
        }
        if (radial) val[m] = rad;
        for (int v = 0; v < nv; ++v) {
          bin[v] = detail::find_bin(val[v], spec.edges[v].data(), nb[v]);
          ++h[off1[v] + bin[v]];
        }
        for (int p = 0; p < np; ++p) {
          const int a = spec.pairs[p].first, b = spec.pairs[p].second;
          ++h[off2[p] + static_cast<std::size_t>(bin[a]) * nb[b] + bin[b]];
        }
      }
    }
    bad[tid] = nonfinite;
  }
  for (int t = 0; t < nthreads; ++t) {
    const std::vector<uint64_t>& h = local[t];
    if (h.empty()) continue;
    for (int v = 0; v < nv; ++v)
      for (int b = 0; b < nb[v]; ++b) counts.one_d[v][b] += h[off1[v] + b];
    for (int p = 0; p < np; ++p) {
      std::vector<uint64_t>& c = counts.two_d[p];
      for (std::size_t i = 0; i < c.size(); ++i) c[i] += h[off2[p] + i];
    }
    counts.nonfinite_rows += bad[t];
  }
  counts.rows += rows;
}

}  // namespace gmmdiff
