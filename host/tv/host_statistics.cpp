// gmmdiff: the statistics the TV module bins on the host (tv/host_statistics.hpp; docs/tv.md):
// the meansperp pair and the log-density, their values, target laws and bins.
#include "tv/host_statistics.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/special_functions.hpp"
#include "gmmdiff/detail/step_math.hpp"
#include "gmmdiff/error.hpp"
#include "tv/target_law.hpp"

namespace gmmdiff::tv_detail {

namespace {

/// Rows per block of the host binning (each block's counts depend only on its rows).
constexpr std::size_t kHostBlock = 256;
/// The values of one finite row: the pair (a, b) and log p.
template <typename Real>
void row_values(const HostSpec& s, const HostWork& w, const Real* y, std::vector<double>& yd, double& a, double& b,
                double& lp) {
  const int d = s.d;
  for (int j = 0; j < d; ++j) yd[j] = static_cast<double>(y[j]);
  if (w.pair && s.pair) {
    double along = 0, proj = 0;
    for (int j = 0; j < d; ++j) {
      proj += s.u[j] * yd[j];
      along += s.u[j] * (yd[j] - s.center[j]);
    }
    double r2 = 0;  // |(y - c) - <u, y - c> u|^2, formed explicitly (no cancellation of |y - c|^2 - along^2)
    for (int j = 0; j < d; ++j) {
      const double r = (yd[j] - s.center[j]) - along * s.u[j];
      r2 += r * r;
    }
    a = proj;
    b = r2;
  }
  if (w.logp && s.logp) lp = log_density(s.model, yd.data());
}

}  // namespace

template <typename Real>
uint64_t host_accumulate(const HostSpec& spec, const HostWork& work, const Real* rows, std::size_t n,
                         HistogramCounts& counts, std::size_t off1, std::size_t off2) {
  const bool do_pair = work.pair && spec.pair, do_logp = work.logp && spec.logp;
  const int d = spec.d;
  const int Ba = do_pair ? static_cast<int>(spec.edges_line.size()) - 1 : 0;
  const int Bb = do_pair ? static_cast<int>(spec.edges_perp.size()) - 1 : 0;
  const int Bl = do_logp ? static_cast<int>(spec.edges_logp.size()) - 1 : 0;
  GMMDIFF_EXPECTS(!do_logp || Bl >= 1, "TV statistic logp: its edges are not set (the pilot sample has not been drawn)");
  GMMDIFF_EXPECTS(!do_pair || counts.two_d.size() > off2, "TV: counts are not shaped for the host statistics");
  GMMDIFF_EXPECTS(!do_logp || counts.one_d.size() > off1, "TV: counts are not shaped for the host statistics");
  const std::size_t cells = static_cast<std::size_t>(Ba) * Bb;
  const std::size_t nblocks = (n + kHostBlock - 1) / kHostBlock;
  const int nthreads = std::max(1, std::min<int>(omp_get_max_threads(), static_cast<int>(nblocks)));
  std::vector<std::vector<uint64_t>> pair_local(nthreads), logp_local(nthreads);
  std::vector<uint64_t> bad(nthreads, 0);
#pragma omp parallel num_threads(nthreads)
  {
    const int tid = omp_get_thread_num();
    std::vector<uint64_t>& hp = pair_local[tid];
    std::vector<uint64_t>& hl = logp_local[tid];
    hp.assign(cells, 0);
    hl.assign(static_cast<std::size_t>(Bl), 0);
    std::vector<double> yd(d);
    uint64_t nonfinite = 0;
#pragma omp for schedule(static)
    for (std::size_t blk = 0; blk < nblocks; ++blk) {
      const std::size_t r1 = std::min(n, (blk + 1) * kHostBlock);
      for (std::size_t r = blk * kHostBlock; r < r1; ++r) {
        const Real* y = rows + r * static_cast<std::size_t>(d);
        bool finite = true;
        for (int j = 0; j < d; ++j) finite &= detail::is_finite(static_cast<double>(y[j]));
        if (!finite) {
          ++nonfinite;
          continue;
        }
        double a = 0, b = 0, lp = 0;
        row_values(spec, work, y, yd, a, b, lp);
        if (do_pair) {
          const int ia = detail::find_bin(a, spec.edges_line.data(), Ba);
          const int ib = detail::find_bin(b, spec.edges_perp.data(), Bb);
          ++hp[static_cast<std::size_t>(ia) * Bb + ib];
        }
        if (do_logp) ++hl[detail::find_bin(lp, spec.edges_logp.data(), Bl)];
      }
    }
    bad[tid] = nonfinite;
  }
  uint64_t nonfinite = 0;
  for (int t = 0; t < nthreads; ++t) {
    if (do_pair)
      for (std::size_t i = 0; i < cells; ++i) counts.two_d[off2][i] += pair_local[t][i];
    if (do_logp)
      for (int b = 0; b < Bl; ++b) counts.one_d[off1][b] += logp_local[t][b];
    nonfinite += bad[t];
  }
  return nonfinite;
}

template uint64_t host_accumulate<float>(const HostSpec&, const HostWork&, const float*, std::size_t,
                                         HistogramCounts&, std::size_t, std::size_t);
template uint64_t host_accumulate<double>(const HostSpec&, const HostWork&, const double*, std::size_t,
                                          HistogramCounts&, std::size_t, std::size_t);

PerpLaw perp_law(const Mixture& m, const std::vector<double>& u, const std::vector<double>& center) {
  return squared_distance_law(m, m.d - 1, [&](int k, double unit) {
    // delta = P_u (mu_k - c); the covariance of P_u X is P_u C_k P_u, whose trace and the trace of
    // its square are tr C - u'Cu and tr C^2 - 2 u'C^2 u + (u'Cu)^2 (C diagonal). The terms of the
    // variance are in units of `unit` (squared_distance_law), the mean and delta2 unscaled.
    const double* mu = m.mean(k);
    const double root = std::sqrt(unit);
    double along = 0;
    for (int j = 0; j < m.d; ++j) along += u[j] * (mu[j] - center[j]);
    double delta2 = 0, trC = 0, trC2 = 0, uCu = 0, uC2u = 0, dCd = 0, uCu_s = 0, big = 0;
    for (int j = 0; j < m.d; ++j) {
      const double dl = (mu[j] - center[j]) - along * u[j];
      const double v = m.var(k, j);
      const double vu = v / unit, dlu = dl / root;
      delta2 += dl * dl;
      trC += v;
      uCu += u[j] * u[j] * v;
      trC2 += vu * vu;
      uCu_s += u[j] * u[j] * vu;
      uC2u += u[j] * u[j] * vu * vu;
      dCd += dlu * dlu * vu;
      big = std::max({big, v, dl * dl});
    }
    SquaredDistanceMoments M;
    M.mean = std::max(0.0, trC - uCu) + delta2;
    M.var = 2 * std::max(0.0, trC2 - 2 * uC2u + uCu_s * uCu_s) + 4 * dCd;
    M.delta2 = delta2;
    M.big = big;
    return M;
  });
}

std::vector<double> perp_pair_masses(const Mixture& m, const std::vector<double>& u, const std::vector<double>& edges_line,
                                     const PerpLaw& L, const std::vector<double>& edges_perp) {
  GMMDIFF_EXPECTS(L.exact, "perp_pair_masses: the components are not isotropic (no closed form)");
  const Law1D La = projected_law(m, u.data());
  const int Ba = static_cast<int>(edges_line.size()) - 1, Bb = static_cast<int>(edges_perp.size()) - 1;
  std::vector<double> A(static_cast<std::size_t>(m.K) * Ba), Q(static_cast<std::size_t>(m.K) * Bb);
#pragma omp parallel for schedule(dynamic, 1)
  for (int k = 0; k < m.K; ++k) {
    for (int i = 0; i < Ba; ++i)
      A[static_cast<std::size_t>(k) * Ba + i] = special::normal_interval((edges_line[i] - La.mean[k]) / La.sd[k],
                                                                          (edges_line[i + 1] - La.mean[k]) / La.sd[k]);
    double prev = 0;
    for (int j = 0; j < Bb; ++j) {
      const double e = edges_perp[j + 1];
      const double F = std::isinf(e) ? 1.0 : squared_distance_component_cdf(L, k, e);
      Q[static_cast<std::size_t>(k) * Bb + j] = std::max(0.0, F - prev);
      prev = F;
    }
  }
  std::vector<double> mass(static_cast<std::size_t>(Ba) * Bb, 0.0);
  for (int k = 0; k < m.K; ++k)
    for (int i = 0; i < Ba; ++i) {
      const double wa = m.weights[k] * A[static_cast<std::size_t>(k) * Ba + i];
      for (int j = 0; j < Bb; ++j) mass[static_cast<std::size_t>(i) * Bb + j] += wa * Q[static_cast<std::size_t>(k) * Bb + j];
    }
  return mass;
}

uint64_t logp_pilot_rows(int B) {
  return std::clamp<uint64_t>(64 * static_cast<uint64_t>(std::max(B, 1)), 16384, uint64_t(1) << 20);
}

std::vector<double> quantile_edges(std::vector<double>& values, int B) {
  GMMDIFF_EXPECTS(B >= 1 && !values.empty(), "quantile_edges: B = ", B, ", ", values.size(), " values");
  std::sort(values.begin(), values.end());
  std::vector<double> e(B + 1);
  e[0] = -std::numeric_limits<double>::infinity();
  e[B] = std::numeric_limits<double>::infinity();
  const double n = static_cast<double>(values.size());
  for (int i = 1; i < B; ++i) {
    const double pos = n * i / B - 0.5;  // the i/B quantile, interpolated between order statistics
    const std::size_t lo = static_cast<std::size_t>(std::clamp(std::floor(pos), 0.0, n - 1));
    const std::size_t hi = std::min(lo + 1, values.size() - 1);
    const double f = std::clamp(pos - std::floor(pos), 0.0, 1.0);
    e[i] = values[lo] + f * (values[hi] - values[lo]);
    if (i > 1 && !(e[i] > e[i - 1])) e[i] = std::nextafter(e[i - 1], e[B]);
  }
  return e;
}

}  // namespace gmmdiff::tv_detail
