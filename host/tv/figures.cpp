// gmmdiff: the figures of a TV histogram (tv/figures.hpp; docs/tv.md): plug-in TV, noise floor,
// the parametric bootstrap's interval and bias correction.
#include "tv/figures.hpp"

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "gmmdiff/error.hpp"
#include "core/special_functions.hpp"

namespace gmmdiff::tv_detail {

namespace {
constexpr double kZ975 = 1.959963984540054;  ///< the standard normal's 97.5% point
}  // namespace

StatResult histogram_figures(const std::vector<uint64_t>& counts, const std::vector<double>& p,
                             uint64_t reference_n, int bootstrap, uint64_t seed) {
  GMMDIFF_EXPECTS(counts.size() == p.size() && !p.empty(), "histogram_figures: ", counts.size(),
                  " counts for ", p.size(), " target masses");
  GMMDIFF_EXPECTS(bootstrap >= kMinBootstrap, "--bootstrap ", bootstrap, ": at least ", kMinBootstrap,
                  " replicates are needed for a 95% interval");
  const std::size_t C = p.size();
  uint64_t n = 0;
  for (uint64_t c : counts) n += c;
  GMMDIFF_EXPECTS(n > 0, "no finite rows to estimate TV from");
  const double dn = static_cast<double>(n);
  const uint64_t m = reference_n;
  const double dm = static_cast<double>(m);
  constexpr double kSqrt2OverPi = 0.79788456080286535588;

  StatResult r;
  r.bins = static_cast<int>(C);
  r.exact_target = m == 0;
  r.reference_n = m;
  std::vector<double> yhat(C);
  double tv = 0, floor = 0;
  for (std::size_t b = 0; b < C; ++b) {
    yhat[b] = counts[b] / dn;
    tv += std::fabs(yhat[b] - p[b]);
    if (m == 0) floor += special::binomial_mad(dn, p[b]) / dn;
    else floor += kSqrt2OverPi * std::sqrt(p[b] * (1 - p[b]) * (1 / dn + 1 / dm));
  }
  tv *= 0.5;
  floor *= 0.5;
  r.tv = tv;
  r.floor = floor;

  // The worlds of the parametric bootstrap: a path from the null (alpha = 0: the sample's bins
  // equal the target's, at their pooled centre) to the observed histograms (alpha = 1), along
  // which the true binned TV is alpha * tv. For each alpha, `bootstrap` replicates of the plug-in
  // TV are drawn with common random numbers (the multinomial's normal approximation), so that
  // their mean and quantiles are smooth in alpha. docs/tv.md, "Bootstrap".
  std::vector<double> centre(C), dvec(C);
  for (std::size_t b = 0; b < C; ++b) {
    centre[b] = m == 0 ? p[b] : (dn * yhat[b] + dm * p[b]) / (dn + dm);
    dvec[b] = yhat[b] - p[b];
  }
  const int R = bootstrap;
  std::vector<double> Z(static_cast<std::size_t>(R) * C), W;
  {
    std::mt19937_64 g(seed);
    std::normal_distribution<double> N01;
    for (double& z : Z) z = N01(g);
    if (m > 0) {
      W.resize(Z.size());
      for (double& w : W) w = N01(g);
    }
  }
  struct Summary {
    double mean, q_lo, q_hi;
  };
  std::vector<double> pY(C), pX(C), sY(C), sX(C), reps(R);
  const double rn = 1 / std::sqrt(dn), rm = m > 0 ? 1 / std::sqrt(dm) : 0;
  auto replicates = [&](double alpha) {
    for (std::size_t b = 0; b < C; ++b) {
      pY[b] = std::max(0.0, centre[b] + alpha * (yhat[b] - centre[b]));
      pX[b] = m == 0 ? p[b] : std::max(0.0, centre[b] + alpha * (p[b] - centre[b]));
      sY[b] = std::sqrt(pY[b]);
      sX[b] = std::sqrt(pX[b]);
    }
    for (int r = 0; r < R; ++r) {
      const double* z = Z.data() + static_cast<std::size_t>(r) * C;
      const double* w = m > 0 ? W.data() + static_cast<std::size_t>(r) * C : nullptr;
      // e = (diag(s) z - p (s . z)) / sqrt(n) has the multinomial's covariance (diag(p) - p p^T) / n.
      double zs = 0, ws = 0;
      for (std::size_t b = 0; b < C; ++b) zs += sY[b] * z[b];
      if (w)
        for (std::size_t b = 0; b < C; ++b) ws += sX[b] * w[b];
      double t = 0;
      for (std::size_t b = 0; b < C; ++b) {
        double e = alpha * dvec[b] + rn * (sY[b] * z[b] - pY[b] * zs);
        if (w) e -= rm * (sX[b] * w[b] - pX[b] * ws);
        t += std::fabs(e);
      }
      reps[r] = 0.5 * t;
    }
    // The 2.5% and 97.5% points as mean -+ 1.96 sd of the replicates: far less Monte Carlo noise
    // than the extreme order statistics of 200 replicates (the replicates are sums of many
    // independent-ish terms, close to normal; docs/tv.md).
    double mean = 0, var = 0;
    for (double x : reps) mean += x;
    mean /= R;
    for (double x : reps) var += (x - mean) * (x - mean);
    const double sd = std::sqrt(var / (R - 1));
    return Summary{mean, mean - kZ975 * sd, mean + kZ975 * sd};
  };
  const Summary at0 = replicates(0.0), at1 = replicates(1.0);
  // The alpha where a summary of the replicates equals the observed tv, as a TV (alpha * tv);
  // beyond alpha = 1 the basic bootstrap continues it (2 tv - summary at 1), which is continuous
  // at alpha = 1 and is the plain basic bootstrap far from the floor.
  auto solve = [&](double Summary::*field) {
    if (at0.*field >= tv) return 0.0;
    if (at1.*field <= tv) return 2 * tv - at1.*field;
    double lo = 0, hi = 1;
    for (int it = 0; it < 30; ++it) {
      const double mid = 0.5 * (lo + hi);
      (replicates(mid).*field < tv ? lo : hi) = mid;
    }
    return 0.5 * (lo + hi) * tv;
  };
  r.tv_corrected = std::clamp(solve(&Summary::mean), 0.0, 1.0);
  r.ci_lo = std::clamp(solve(&Summary::q_hi), 0.0, 1.0);
  r.ci_hi = std::clamp(solve(&Summary::q_lo), 0.0, 1.0);
  if (r.ci_hi < r.ci_lo) r.ci_hi = r.ci_lo;
  r.resolved = r.ci_lo > 0 && tv > floor;
  return r;
}

}  // namespace gmmdiff::tv_detail
