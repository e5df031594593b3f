// gmmdiff: special functions in double (see special_functions.hpp and docs/tv.md).
#include "core/special_functions.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace gmmdiff {
namespace special {

namespace {
constexpr double kSqrt1_2 = 0.70710678118654752440;
constexpr double kLnSqrt2Pi = 0.91893853320467274178;  // log(sqrt(2 pi))
constexpr double k2Pi = 6.283185307179586476925;
constexpr int kGammaMaxIter = 1000000;
constexpr double kTiny = 1e-300;
}  // namespace

double normal_cdf(double z) { return 0.5 * std::erfc(-z * kSqrt1_2); }
double normal_sf(double z) { return 0.5 * std::erfc(z * kSqrt1_2); }

double normal_interval(double z1, double z2) {
  if (!(z2 > z1)) return 0.0;
  double p;
  if (z1 >= 0) p = normal_sf(z1) - normal_sf(z2);          // upper tail: survival functions
  else if (z2 <= 0) p = normal_cdf(z2) - normal_cdf(z1);   // lower tail: CDFs
  else p = 1.0 - normal_cdf(z1) - normal_sf(z2);           // straddles 0: mass >= both tails
  return p > 0 ? p : 0.0;
}

double stirlerr(double n) {
  constexpr double S0 = 1.0 / 12, S1 = 1.0 / 360, S2 = 1.0 / 1260, S3 = 1.0 / 1680, S4 = 1.0 / 1188;
  if (n > 15) {
    const double nn = n * n;
    if (n > 500) return (S0 - S1 / nn) / n;
    if (n > 80) return (S0 - (S1 - S2 / nn) / nn) / n;
    if (n > 35) return (S0 - (S1 - (S2 - S3 / nn) / nn) / nn) / n;
    return (S0 - (S1 - (S2 - (S3 - S4 / nn) / nn) / nn) / nn) / n;
  }
  return std::lgamma(n + 1.0) - (n + 0.5) * std::log(n) + n - kLnSqrt2Pi;
}

double bd0(double x, double np) {
  if (x == 0) return np;
  if (std::fabs(x - np) < 0.1 * (x + np)) {
    const double v = (x - np) / (x + np);
    double s = (x - np) * v;
    double ej = 2 * x * v;
    const double v2 = v * v;
    for (int j = 1; j < 1000; ++j) {
      ej *= v2;
      const double s1 = s + ej / (2 * j + 1);
      if (s1 == s) return s1;
      s = s1;
    }
    return s;
  }
  return x * std::log(x / np) + np - x;
}

double dpois_raw(double a, double lambda) {
  if (lambda == 0) return a == 0 ? 1.0 : 0.0;
  if (std::isinf(lambda)) return 0.0;
  if (a == 0) return std::exp(-lambda);
  if (a < 10) return std::exp(a * std::log(lambda) - lambda - std::lgamma(a + 1.0));
  return std::exp(-stirlerr(a) - bd0(a, lambda)) / std::sqrt(k2Pi * a);
}

double dbinom(double x, double n, double p) {
  const double q = 1.0 - p;
  if (x < 0 || x > n) return 0.0;
  if (p <= 0) return x == 0 ? 1.0 : 0.0;
  if (q <= 0) return x == n ? 1.0 : 0.0;
  if (x == 0) return n == 0 ? 1.0 : std::exp(n * std::log1p(-p));
  if (x == n) return std::exp(n * std::log(p));
  const double lc = stirlerr(n) - stirlerr(x) - stirlerr(n - x) - bd0(x, n * p) - bd0(n - x, n * q);
  const double lf = std::log(k2Pi) + std::log(x) + std::log1p(-x / n);
  return std::exp(lc - 0.5 * lf);
}

double binomial_mad(double n, double p) {
  if (!(n > 0) || !(p > 0) || !(p < 1)) return 0.0;
  const double nu = std::floor(n * p) + 1.0;
  if (nu > n) return 0.0;
  // De Moivre: E|X - np| = 2 nu C(n, nu) p^nu q^(n - nu + 1) = 2 nu q P(X = nu).
  return 2.0 * nu * (1.0 - p) * dbinom(nu, n, p);
}

namespace {
// P(a, x) by its power series (x < a + 1): x^a e^-x / Gamma(a+1) * sum_n x^n / ((a+1)...(a+n)).
double gamma_p_series(double a, double x) {
  double sum = 1.0, term = 1.0;
  for (int n = 1; n < kGammaMaxIter; ++n) {
    term *= x / (a + n);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return std::min(1.0, dpois_raw(a, x) * sum);
}

// Q(a, x) by Legendre's continued fraction (x >= a + 1), modified Lentz.
double gamma_q_cf(double a, double x) {
  double b = x + 1.0 - a;
  double c = 1.0 / kTiny;
  double d = 1.0 / b;
  double h = d;
  for (int i = 1; i < kGammaMaxIter; ++i) {
    const double an = -i * (i - a);
    b += 2.0;
    d = an * d + b;
    if (std::fabs(d) < kTiny) d = kTiny;
    c = b + an / c;
    if (std::fabs(c) < kTiny) c = kTiny;
    d = 1.0 / d;
    const double del = d * c;
    h *= del;
    if (std::fabs(del - 1.0) < 4e-16) break;
  }
  // x^a e^-x / Gamma(a) = a * x^a e^-x / Gamma(a + 1).
  return std::min(1.0, a * dpois_raw(a, x) * h);
}
}  // namespace

double gamma_p(double a, double x) {
  if (!(x > 0)) return 0.0;
  if (std::isinf(x)) return 1.0;
  if (x < a + 1.0) return gamma_p_series(a, x);
  return 1.0 - gamma_q_cf(a, x);
}

double gamma_q(double a, double x) {
  if (!(x > 0)) return 1.0;
  if (std::isinf(x)) return 0.0;
  if (x < a + 1.0) return 1.0 - gamma_p_series(a, x);
  return gamma_q_cf(a, x);
}

double chi2_cdf(double x, double k) { return gamma_p(0.5 * k, 0.5 * x); }

namespace {

/// Nodes and weights of n-point Gauss-Legendre on [-1, 1] (Newton on the Legendre recurrence).
struct GaussLegendre {
  std::vector<double> x, w;
  explicit GaussLegendre(int n) : x(n), w(n) {
    constexpr double kPi = 3.14159265358979323846;
    for (int i = 0; i < n; ++i) {
      double z = std::cos(kPi * (i + 0.75) / (n + 0.5)), dp = 1;
      for (int it = 0; it < 100; ++it) {
        double p1 = 1, p2 = 0;
        for (int j = 1; j <= n; ++j) {
          const double p3 = p2;
          p2 = p1;
          p1 = ((2 * j - 1) * z * p2 - (j - 1) * p3) / j;
        }
        dp = n * (z * p1 - p2) / (z * z - 1);
        const double z1 = z;
        z = z1 - p1 / dp;
        if (std::fabs(z - z1) < 1e-16) break;
      }
      x[i] = z;
      w[i] = 2 / ((1 - z * z) * dp * dp);
    }
  }
};

/// ncx2_cdf for a large non-centrality, in work independent of it. With R = sqrt(lambda) and
/// X = R e_1 + Z, Z ~ N(0, I_k): |X|^2 = (R + Z_1)^2 + V with V = W^2 ~ chi^2_{k-1} independent
/// of Z_1, so P(|X|^2 <= x) = E_W[ P(|R + Z_1| <= sqrt(x - W^2)) ], a 1-D integral of two normal
/// CDFs against the chi_{k-1} density (smooth on [0, inf) for k - 1 >= 1; W = 0 for k = 1).
/// Composite Gauss-Legendre over W's mass (mode +- 7, 9 of its sds), in panels of width <= 2 and
/// as many more as keep the normal CDFs' argument within 1 per panel; the density is normalised
/// by the same quadrature. sqrt(x - v) - R is computed as (x - v - lambda) / (sqrt(x - v) + R) in
/// long double, without the cancellation of two numbers near R.
double ncx2_cdf_conditional(double x, double k, double lambda) {
  static const GaussLegendre gl(10);
  const long double lam = lambda;
  const double R = std::sqrt(lambda);
  auto g = [&](double v) {
    const long double y = static_cast<long double>(x) - v;
    if (!(y > 0)) return 0.0;
    const long double r = std::sqrt(y);
    return normal_interval(static_cast<double>(-r - R), static_cast<double>((y - lam) / (r + R)));
  };
  const double kv = k - 1;  // degrees of freedom of V
  if (!(kv > 0)) return g(0.0);
  const double w0 = std::sqrt(std::max(kv - 1, 0.0));  // the mode of chi_{kv}
  const double a = std::max(0.0, w0 - 7.0), b = w0 + 7.0;
  // The normal CDFs' argument moves by about sqrt(x - a^2) - sqrt(x - b^2) across [a, b].
  const double spread = x > b * b ? std::sqrt(x - a * a) - std::sqrt(x - b * b) : 1e9;
  const int panels = static_cast<int>(std::min(4096.0, std::max(std::ceil((b - a) / 2), std::ceil(spread))));
  const double h = (b - a) / panels;
  double num = 0, den = 0;
  for (int p = 0; p < panels; ++p) {
    const double c = a + (p + 0.5) * h;
    for (std::size_t i = 0; i < gl.x.size(); ++i) {
      const double w = c + 0.5 * h * gl.x[i];
      if (!(w > 0)) continue;
      // log of w^(kv-1) e^(-w^2/2) relative to the mode: (kv-1) log(w/w0) - (w - w0)(w + w0)/2.
      const double logf = (w0 > 0 ? (kv - 1) * std::log1p((w - w0) / w0) : (kv - 1) * std::log(w)) -
                          0.5 * (w - w0) * (w + w0);
      const double f = gl.w[i] * std::exp(logf);
      num += f * g(w * w);
      den += f;
    }
  }
  return den > 0 ? std::min(1.0, std::max(0.0, num / den)) : g(kv);
}

}  // namespace

double ncx2_cdf(double x, double k, double lambda) {
  if (!(x > 0)) return 0.0;
  if (std::isinf(x)) return 1.0;
  const double a = 0.5 * k, y = 0.5 * x, mu = 0.5 * lambda;
  if (!(mu > 0)) return gamma_p(a, y);
  // The Poisson sum below takes O(sqrt(mu)) terms (minutes at lambda = 1e12, and its counter j
  // stops counting past 2^53): beyond kNcx2SeriesMaxMu the work must not grow with lambda.
  if (mu > kNcx2SeriesMaxMu && (k == 1 || k >= 2)) return ncx2_cdf_conditional(x, k, lambda);
  constexpr double kTail = 1e-16;  // bound on the Poisson weight left out on each side
  const double j0 = std::floor(mu);
  const double w0 = dpois_raw(j0, mu);
  const double p0 = gamma_p(a + j0, y);
  const double t0 = dpois_raw(a + j0, y);  // y^(a+j0) e^-y / Gamma(a+j0+1)
  double sum = w0 * p0, wsum = w0;
  // Downward from the mode: P(A, y) = P(A + 1, y) + t(A), t(A) = t(A + 1) (A + 1) / y.
  {
    double P = p0, t = t0, w = w0;
    for (double j = j0 - 1; j >= 0; j -= 1) {
      t *= (a + j + 1) / y;
      P = std::min(1.0, P + t);
      w *= (j + 1) / mu;
      sum += w * P;
      wsum += w;
      // Left tail beyond j: sum_{i<j} w_i <= w_j j / (mu - j) (ratio i / mu <= j / mu).
      if (w * j / (mu - j) < kTail) break;
    }
  }
  // Upward: P(A + 1, y) = P(A, y) - t(A), t(A + 1) = t(A) y / (A + 1).
  {
    double P = p0, t = t0, w = w0;
    const double jmax = j0 + 1000.0 + 100.0 * std::sqrt(mu);
    for (double j = j0 + 1; j <= jmax; j += 1) {
      P = std::max(0.0, P - t);
      t *= y / (a + j);
      w *= mu / j;
      sum += w * P;
      wsum += w;
      if (1.0 - wsum < 1e-15) break;
      // Right tail beyond j: sum_{i>j} w_i <= w_j mu / (j + 1 - mu) when j + 1 > mu.
      if (j + 1 > mu && w * mu / (j + 1 - mu) < kTail) break;
      if (P == 0.0 && t == 0.0) break;  // every further term is zero
    }
  }
  return std::min(1.0, std::max(0.0, sum));
}

double gamma_p_wilson_hilferty(double a, double x) {
  if (!(x > 0)) return 0.0;
  if (std::isinf(x)) return 1.0;
  const double c = 1.0 / (9.0 * a);
  return normal_cdf((std::cbrt(x / a) - (1.0 - c)) / std::sqrt(c));
}

double invert_monotone(const std::function<double(double)>& F, double q, double lo, double hi,
                       double flo, double fhi, double ftol, double xtol, int max_iter) {
  double a = lo, b = hi, fa = flo - q, fb = fhi - q;
  if (fa >= -ftol) return lo;
  if (fb <= ftol) return hi;
  int side = 0;
  for (int it = 0; it < max_iter; ++it) {
    double x = (a * fb - b * fa) / (fb - fa);
    // Every third step, or when the secant leaves the bracket, bisect (guarantees progress).
    if (!(x > a && x < b) || it % 3 == 2) x = 0.5 * (a + b);
    const double fx = F(x) - q;
    if (std::fabs(fx) <= ftol) return x;
    if (fx < 0) {
      a = x;
      fa = fx;
      if (side == -1) fb *= 0.5;
      side = -1;
    } else {
      b = x;
      fb = fx;
      if (side == 1) fa *= 0.5;
      side = 1;
    }
    const double scale = std::max({1.0, std::fabs(a), std::fabs(b)});
    if (b - a <= xtol * scale) break;
  }
  return 0.5 * (a + b);
}

}  // namespace special
}  // namespace gmmdiff
