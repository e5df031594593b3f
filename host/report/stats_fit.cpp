// gmmdiff: the small statistics of the sweep report (report/stats_fit.hpp): Student t CDF and
// quantile, the normal quantile, least-squares lines with confidence intervals on the slope.
#include "report/stats_fit.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "gmmdiff/error.hpp"

namespace gmmdiff {
namespace {

/// Continued fraction of the regularised incomplete beta function I_x(a, b) (modified Lentz),
/// valid for x < (a + 1) / (a + b + 2).
double beta_cf(double a, double b, double x) {
  constexpr int kMaxIter = 500;
  constexpr double kEps = 1e-15, kTiny = 1e-300;
  double c = 1.0, d = 1.0 - (a + b) * x / (a + 1.0);
  if (std::fabs(d) < kTiny) d = kTiny;
  d = 1.0 / d;
  double h = d;
  for (int m = 1; m <= kMaxIter; ++m) {
    const double m2 = 2.0 * m;
    double aa = m * (b - m) * x / ((a + m2 - 1.0) * (a + m2));
    d = 1.0 + aa * d;
    if (std::fabs(d) < kTiny) d = kTiny;
    c = 1.0 + aa / c;
    if (std::fabs(c) < kTiny) c = kTiny;
    d = 1.0 / d;
    h *= d * c;
    aa = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1.0));
    d = 1.0 + aa * d;
    if (std::fabs(d) < kTiny) d = kTiny;
    c = 1.0 + aa / c;
    if (std::fabs(c) < kTiny) c = kTiny;
    d = 1.0 / d;
    const double del = d * c;
    h *= del;
    if (std::fabs(del - 1.0) < kEps) break;
  }
  return h;
}

double inc_beta(double a, double b, double x) {
  if (x <= 0) return 0.0;
  if (x >= 1) return 1.0;
  const double lbt = std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) + b * std::log1p(-x);
  if (x < (a + 1.0) / (a + b + 2.0)) return std::exp(lbt) * beta_cf(a, b, x) / a;
  return 1.0 - std::exp(lbt) * beta_cf(b, a, 1.0 - x) / b;
}

double quantile_of(const std::vector<double>& x, double q) {
  std::vector<double> v = x;
  std::sort(v.begin(), v.end());
  const double pos = q * (v.size() - 1);
  const std::size_t i = static_cast<std::size_t>(pos);
  const double f = pos - i;
  return i + 1 < v.size() ? v[i] * (1 - f) + v[i + 1] * f : v[i];
}

}  // namespace

double student_t_cdf(double t, double dof) {
  GMMDIFF_EXPECTS(dof > 0, "student_t_cdf: dof must be positive, got ", dof);
  if (std::isnan(t)) return t;
  if (std::isinf(t)) return t > 0 ? 1.0 : 0.0;
  const double x = dof / (dof + t * t);
  const double tail = 0.5 * inc_beta(0.5 * dof, 0.5, x);  // P(T > |t|)
  return t > 0 ? 1.0 - tail : tail;
}

double student_t_quantile(double p, double dof) {
  GMMDIFF_EXPECTS(dof > 0, "student_t_quantile: dof must be positive, got ", dof);
  GMMDIFF_EXPECTS(p > 0 && p < 1, "student_t_quantile: p must lie in (0, 1), got ", p);
  if (p == 0.5) return 0.0;
  if (p < 0.5) return -student_t_quantile(1.0 - p, dof);
  // Bracket, then bisect: the CDF is monotone, and 200 halvings reach full double precision.
  double lo = 0.0, hi = 1.0;
  while (student_t_cdf(hi, dof) < p && hi < 1e300) hi *= 2.0;
  for (int i = 0; i < 200; ++i) {
    const double mid = 0.5 * (lo + hi);
    if (mid == lo || mid == hi) break;
    (student_t_cdf(mid, dof) < p ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

double normal_quantile(double p) {
  GMMDIFF_EXPECTS(p > 0 && p < 1, "normal_quantile: p must lie in (0, 1), got ", p);
  if (p == 0.5) return 0.0;
  if (p < 0.5) return -normal_quantile(1.0 - p);
  double lo = 0.0, hi = 40.0;
  for (int i = 0; i < 200; ++i) {
    const double mid = 0.5 * (lo + hi);
    if (mid == lo || mid == hi) break;
    (0.5 * std::erfc(-mid / std::sqrt(2.0)) < p ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

LineFit fit_pooled(const std::vector<double>& x, const std::vector<double>& y, const std::vector<int>& group,
                   double level, const std::vector<double>& sigma) {
  GMMDIFF_EXPECTS(x.size() == y.size() && x.size() == group.size(), "fit: x, y and group differ in length");
  GMMDIFF_EXPECTS(sigma.empty() || sigma.size() == x.size(), "fit: sigma differs in length from x");
  GMMDIFF_EXPECTS(level > 0 && level < 1, "fit: confidence level must lie in (0, 1), got ", level);
  const bool weighted = !sigma.empty();
  std::vector<double> w(x.size(), 1.0);
  if (weighted)
    for (std::size_t i = 0; i < x.size(); ++i) {
      GMMDIFF_EXPECTS(sigma[i] > 0 && std::isfinite(sigma[i]), "fit: sigma must be positive and finite, got ",
                      sigma[i]);
      w[i] = 1.0 / (sigma[i] * sigma[i]);
    }
  LineFit f;
  f.n = static_cast<int>(x.size());
  struct Acc {
    double w = 0, wx = 0, wy = 0;
  };
  std::map<int, Acc> acc;
  for (std::size_t i = 0; i < x.size(); ++i) {
    Acc& a = acc[group[i]];
    a.w += w[i];
    a.wx += w[i] * x[i];
    a.wy += w[i] * y[i];
  }
  f.groups = static_cast<int>(acc.size());
  if (f.n < f.groups + 1) return f;
  double sxx = 0, sxy = 0, syy = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const Acc& a = acc[group[i]];
    const double dx = x[i] - a.wx / a.w, dy = y[i] - a.wy / a.w;
    sxx += w[i] * dx * dx;
    sxy += w[i] * dx * dy;
    syy += w[i] * dy * dy;
  }
  if (!(sxx > 0)) return f;  // x constant within every group: no slope
  f.b = sxy / sxx;
  const Acc& a0 = acc[group.empty() ? 0 : group[0]];
  f.a = a0.wy / a0.w - f.b * a0.wx / a0.w;
  const double ssr = std::max(0.0, syy - f.b * sxy);
  f.r2 = syy > 0 ? 1.0 - ssr / syy : 1.0;
  const int dof = f.dof();
  const double q = 0.5 * (1.0 + level);
  if (!weighted) {
    if (dof >= 1) f.se_b = std::sqrt(ssr / dof / sxx);
  } else {
    const double se_known = std::sqrt(1.0 / sxx);
    f.se_b = se_known;
    if (dof >= 1) {
      f.chi2_dof = ssr / dof;
      f.se_b = se_known * std::max(1.0, std::sqrt(f.chi2_dof));
    }
  }
  if (f.se_b == f.se_b) {
    const double t = dof >= 1 ? student_t_quantile(q, dof) : normal_quantile(q);
    f.ci_lo = f.b - t * f.se_b;
    f.ci_hi = f.b + t * f.se_b;
  }
  return f;
}

LineFit fit_line(const std::vector<double>& x, const std::vector<double>& y, double level,
                 const std::vector<double>& sigma) {
  return fit_pooled(x, y, std::vector<int>(x.size(), 0), level, sigma);
}

double median_of(const std::vector<double>& x) {
  return x.empty() ? std::numeric_limits<double>::quiet_NaN() : quantile_of(x, 0.5);
}

}  // namespace gmmdiff
