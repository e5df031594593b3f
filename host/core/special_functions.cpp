// gmmdiff: special functions in double (see special_functions.hpp and docs/tv.md).
#include "core/special_functions.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

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

double ncx2_cdf(double x, double k, double lambda) {
  if (!(x > 0)) return 0.0;
  if (std::isinf(x)) return 1.0;
  const double a = 0.5 * k, y = 0.5 * x, mu = 0.5 * lambda;
  if (!(mu > 0)) return gamma_p(a, y);
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
