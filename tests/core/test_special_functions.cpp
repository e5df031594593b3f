// Tests of host/core/special_functions: closed forms, and high-precision numerical integration
// (composite Gauss-Legendre in long double) for the incomplete gamma and non-central chi-square.
#include "util/quadrature_util.hpp"
#include "core/special_functions.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <functional>
#include <vector>

namespace gmmdiff {
namespace {

using namespace special;
using gmmdiff::test::integrate;
using gmmdiff::test::LD;

constexpr double kClosedFormTol = 2e-15;    // against closed forms in double
constexpr double kIntegralTol = 1e-12;      // absolute, against long double quadrature
constexpr double kMadRelTol = 1e-11;        // De Moivre against the direct sum

/// P(a, x) by quadrature of the gamma density (a >= 1: smooth), from where the mass starts.
LD gamma_p_quadrature(LD a, LD x) {
  const LD lo = a > 1 ? std::max<LD>(0, a - 60 * std::sqrt(a)) : 0;
  if (x <= lo) return 0;
  const LD lg = std::lgamma(a);
  return integrate([&](LD t) { return std::exp((a - 1) * std::log(t) - t - lg); }, lo, x, 1500);
}

/// CDF of chi'^2(k, lambda) as (Z + sqrt(lambda))^2 + chi^2_{k-1}: conditioning on Z, with
/// v = |Z + sqrt(lambda)| (smooth integrand for k = 1 and k >= 3; P(1/2, .) is not, so k != 2).
LD ncx2_quadrature(double x, double k, double lambda) {
  const LD sl = std::sqrt(static_cast<LD>(lambda));
  const LD c = 1 / std::sqrt(2 * 3.141592653589793238462643383279502884L);
  auto phi2 = [&](LD v) { return c * (std::exp(-(v - sl) * (v - sl) / 2) + std::exp(-(v + sl) * (v + sl) / 2)); };
  if (k == 1) return integrate(phi2, 0, std::sqrt(static_cast<LD>(x)), 2000);
  return integrate([&](LD v) { return phi2(v) * static_cast<LD>(gamma_p((k - 1) / 2, static_cast<double>((x - v * v) / 2))); },
                   0, std::sqrt(static_cast<LD>(x)), 2000);
}

TEST(SpecialNormal, ClosedFormsAndTails) {
  EXPECT_NEAR(normal_cdf(0), 0.5, kClosedFormTol);
  EXPECT_NEAR(normal_cdf(1.959963984540054), 0.975, kClosedFormTol);
  EXPECT_NEAR(normal_sf(1.959963984540054), 0.025, kClosedFormTol);
  // Tails keep their relative accuracy: Phi(-10) = 7.619853024160527e-24.
  EXPECT_NEAR(normal_cdf(-10) / 7.619853024160527e-24, 1.0, 1e-13);
  EXPECT_NEAR(normal_sf(10) / 7.619853024160527e-24, 1.0, 1e-13);
  // An interval far in the upper tail: Phi(11) - Phi(10) ~ Q(10) - Q(11), Q(11) = 1.9106595744986e-28.
  EXPECT_NEAR(normal_interval(10, 11) / (7.619853024160527e-24 - 1.910659574498676e-28), 1.0, 1e-12);
  EXPECT_NEAR(normal_interval(-11, -10) / (7.619853024160527e-24 - 1.910659574498676e-28), 1.0, 1e-12);
  EXPECT_NEAR(normal_interval(-1, 1), 0.6826894921370859, kClosedFormTol);
  EXPECT_EQ(normal_interval(-INFINITY, INFINITY), 1.0);
  EXPECT_EQ(normal_interval(2, 2), 0.0);
}

TEST(SpecialGamma, ClosedForms) {
  for (double x : {1e-8, 1e-3, 0.1, 0.5, 1.0, 1.4999, 1.5, 2.0, 5.0, 20.0, 60.0}) {
    SCOPED_TRACE(testing::Message() << "x = " << x);
    EXPECT_NEAR(gamma_p(1.0, x), -std::expm1(-x), kClosedFormTol);           // exponential
    EXPECT_NEAR(gamma_p(0.5, x), std::erf(std::sqrt(x)), kClosedFormTol);    // P(1/2, x) = erf(sqrt x)
    EXPECT_NEAR(gamma_q(0.5, x), std::erfc(std::sqrt(x)), kClosedFormTol);
    // Integer a: Q(n, x) = e^-x sum_{j<n} x^j / j!.
    double term = std::exp(-x), q = 0;
    for (int j = 0; j < 7; ++j) {
      q += term;
      term *= x / (j + 1);
    }
    EXPECT_NEAR(gamma_q(7.0, x), q, 4 * kClosedFormTol);
    EXPECT_NEAR(gamma_p(3.7, x) + gamma_q(3.7, x), 1.0, kClosedFormTol);
  }
  EXPECT_EQ(gamma_p(2.0, 0.0), 0.0);
  EXPECT_EQ(gamma_p(2.0, INFINITY), 1.0);
}

TEST(SpecialGamma, LargeShapeAgainstQuadrature) {
  for (double a : {1.0, 2.5, 10.0, 37.3, 1000.0, 1e4, 1e5}) {
    for (double z : {-8.0, -3.0, -1.0, -0.1, 0.0, 0.3, 1.0, 3.0, 8.0}) {
      const double x = a + z * std::sqrt(a);
      if (x <= 0) continue;
      SCOPED_TRACE(testing::Message() << "a = " << a << ", x = " << x);
      const LD ref = gamma_p_quadrature(a, x);
      EXPECT_NEAR(gamma_p(a, x), static_cast<double>(ref), kIntegralTol);
      EXPECT_NEAR(gamma_q(a, x), static_cast<double>(1 - ref), kIntegralTol);
    }
  }
}

TEST(SpecialNcx2, AgainstQuadrature) {
  for (double k : {1.0, 3.0, 10.0, 100.0, 1000.0, 20000.0}) {
    for (double lambda : {0.0, 0.5, 5.0, 50.0, 500.0, 5000.0}) {
      const double mean = k + lambda, sd = std::sqrt(2 * (k + 2 * lambda));
      for (double z : {-5.0, -2.0, 0.0, 0.7, 2.0, 5.0}) {
        const double x = mean + z * sd;
        if (x <= 0) continue;
        SCOPED_TRACE(testing::Message() << "k = " << k << ", lambda = " << lambda << ", x = " << x);
        EXPECT_NEAR(ncx2_cdf(x, k, lambda), static_cast<double>(ncx2_quadrature(x, k, lambda)), kIntegralTol);
      }
    }
  }
}

TEST(SpecialNcx2, TwoDegreesOfFreedomAgainstBesselDensity) {
  // k = 2: density 1/2 exp(-(x + lambda)/2) I_0(sqrt(lambda x)); x = u^2 removes the endpoint kink.
  for (double lambda : {0.5, 5.0, 50.0}) {
    for (double x : {0.3, 2.0, 10.0, 60.0, 120.0}) {
      SCOPED_TRACE(testing::Message() << "lambda = " << lambda << ", x = " << x);
      const LD ref = integrate(
          [&](LD u) {
            const double t = static_cast<double>(u * u);
            return static_cast<LD>(std::exp(-(t + lambda) / 2) * std::cyl_bessel_i(0.0, std::sqrt(lambda * t))) * u;
          },
          0, std::sqrt(static_cast<LD>(x)), 400);
      EXPECT_NEAR(ncx2_cdf(x, 2, lambda), static_cast<double>(ref), kIntegralTol);
    }
  }
}

TEST(SpecialNcx2, CentralCaseAndLimits) {
  for (double k : {1.0, 4.0, 333.0})
    for (double x : {0.5, 3.0, 400.0}) {
      SCOPED_TRACE(testing::Message() << "k = " << k << ", x = " << x);
      EXPECT_EQ(ncx2_cdf(x, k, 0.0), chi2_cdf(x, k));
    }
  EXPECT_EQ(ncx2_cdf(0.0, 3, 2.0), 0.0);
  EXPECT_EQ(ncx2_cdf(INFINITY, 3, 2.0), 1.0);
  // Monotone in x across the recurrences' switch points.
  double prev = 0;
  for (double x = 1; x < 3000; x *= 1.05) {
    const double c = ncx2_cdf(x, 50, 900);
    EXPECT_GE(c, prev - 1e-15) << "x = " << x;
    prev = c;
  }
}

TEST(SpecialBinomial, MadAgainstDirectSum) {
  for (double n : {1.0, 7.0, 100.0, 1000.0}) {
    for (double p : {0.001, 0.1, 0.37, 0.5, 0.9}) {
      SCOPED_TRACE(testing::Message() << "n = " << n << ", p = " << p);
      LD mad = 0, total = 0;
      for (int x = 0; x <= n; ++x) {
        const LD pr = std::exp(std::lgamma(static_cast<LD>(n) + 1) - std::lgamma(static_cast<LD>(x) + 1) -
                               std::lgamma(static_cast<LD>(n - x) + 1) + x * std::log(static_cast<LD>(p)) +
                               (n - x) * std::log1p(-static_cast<LD>(p)));
        mad += std::fabs(x - n * p) * pr;
        total += dbinom(x, n, p);
      }
      EXPECT_NEAR(binomial_mad(n, p), static_cast<double>(mad), kMadRelTol * std::max<double>(1.0, mad));
      EXPECT_NEAR(static_cast<double>(total), 1.0, 1e-13);
    }
  }
  EXPECT_EQ(binomial_mad(10, 0.0), 0.0);
  EXPECT_EQ(binomial_mad(10, 1.0), 0.0);
  EXPECT_NEAR(binomial_mad(1, 0.3), 2 * 0.3 * 0.7, kClosedFormTol);
  // Large n: the normal limit sqrt(2 n p q / pi) (relative error O(1/(n p q))).
  const double n = 1e9, p = 1e-3;
  EXPECT_NEAR(binomial_mad(n, p) / std::sqrt(2 / M_PI * n * p * (1 - p)), 1.0, 1e-5);
}

TEST(SpecialInvert, NormalQuantiles) {
  auto F = [](double x) { return normal_cdf(x); };
  for (double q : {1e-6, 0.025, 0.3, 0.5, 0.975, 1 - 1e-6}) {
    SCOPED_TRACE(testing::Message() << "q = " << q);
    const double x = invert_monotone(F, q, -10, 10, F(-10), F(10), 1e-15, 1e-15, 200);
    EXPECT_NEAR(F(x), q, 1e-14);
  }
}

}  // namespace
}  // namespace gmmdiff

namespace gmmdiff {
namespace {

using namespace special;
using gmmdiff::test::integrate;
using gmmdiff::test::LD;

/// chi'^2(k, lambda) CDF by an independent route: conditioning on Z_1 along the mean,
/// (sqrt(lambda) + z)^2 + chi^2_{k-1}, with the central chi^2 CDF (gamma_p) inside, over
/// z in [-14, 14] split where x - (R + z)^2 = 0 (the chi^2_{k-1} CDF has a kink there). x - (R+z)^2
/// is formed from x - lambda in long double: both near 1e18 at lambda = 1e18. k = 1: Phi directly.
LD ncx2_reference_large(double x, double k, double lambda) {
  const LD R = std::sqrt(static_cast<LD>(lambda)), dx = static_cast<LD>(x) - static_cast<LD>(lambda);
  const LD c = 1 / std::sqrt(2 * 3.141592653589793238462643383279502884L);
  auto rest = [&](LD z) { return dx - 2 * R * z - z * z; };  // x - (R + z)^2
  auto f = [&](LD z) -> LD {
    const LD y = rest(z);
    if (y <= 0) return 0;
    const LD p = k == 1 ? 1.0L : static_cast<LD>(gamma_p((k - 1) / 2, static_cast<double>(y / 2)));
    return c * std::exp(-z * z / 2) * p;
  };
  // Kinks: (R + z)^2 = x, i.e. z = sqrt(x) - R (the other root is near -2R, outside [-14, 14]).
  // Just before it the chi^2_{k-1} CDF climbs from 0 to 1 while y grows by about k + 40 sqrt(k),
  // i.e. over a z-width of that over 2R (1e-6 at R = 1e6): a piece of its own.
  const LD kink = dx / (std::sqrt(static_cast<LD>(x)) + R);
  const LD climb = (k + 40 * std::sqrt(k) + 100) / (2 * R);
  LD s = 0;
  if (kink <= -14 || kink - climb >= 14) return integrate(f, -14, 14, 400);
  const LD a = std::max<LD>(-14, kink - climb), b = std::min<LD>(14, kink);
  if (a > -14) s += integrate(f, -14, a, 400);
  // [a, kink]: z = kink - u^2, so that the chi^2_{k-1} CDF's root-like start at y = 0 (k = 2:
  // P(chi^2_1 <= y) ~ sqrt(y)) becomes smooth in u.
  s += integrate([&](LD u) { return 2 * u * f(kink - u * u); }, std::sqrt(std::max<LD>(0, kink - b)),
                 std::sqrt(kink - a), 400);
  return s;
}

/// The closed form for k = 3 (|X| of a 3-D normal with |mean| = a): P(|X|^2 <= x) =
/// Phi(r - a) - Phi(-r - a) - (phi(r - a) - phi(r + a)) / a, r = sqrt(x), r - a from x - a^2.
LD ncx2_closed_form_k3(double x, double lambda) {
  const LD a = std::sqrt(static_cast<LD>(lambda)), r = std::sqrt(static_cast<LD>(x));
  const LD rma = (static_cast<LD>(x) - static_cast<LD>(lambda)) / (r + a);
  const LD c = 1 / std::sqrt(2 * 3.141592653589793238462643383279502884L);
  auto Phi = [](LD z) { return 0.5L * std::erfc(-z / std::sqrt(2.0L)); };
  return Phi(rma) - Phi(-r - a) - c * (std::exp(-rma * rma / 2) - std::exp(-(r + a) * (r + a) / 2)) / a;
}

// Issue 15: the non-central chi-square at a large non-centrality (the radial statistic at radius
// 1e9: lambda = 1e18) in work that does not grow with lambda, against independent computations:
// the closed form for k = 3 and conditioning on the other coordinate for k = 1, 2, 50, 1000.
TEST(SpecialNcx2, LargeNoncentralityAgainstIndependentForms) {
  constexpr double kLargeTol = 1e-10;
  for (double lambda : {2.5e4, 1e6, 1e12, 1e18})
    for (double k : {1.0, 2.0, 3.0, 50.0, 1000.0}) {
      const double sd = std::sqrt(4 * lambda + 2 * k);
      for (double z : {-6.0, -2.0, -0.5, 0.0, 0.7, 2.5, 6.0}) {
        const double x = lambda + k + z * sd;
        SCOPED_TRACE(testing::Message() << "lambda=" << lambda << " k=" << k << " z=" << z);
        const double got = ncx2_cdf(x, k, lambda);
        EXPECT_NEAR(got, static_cast<double>(ncx2_reference_large(x, k, lambda)), kLargeTol);
        if (k == 3) {
          EXPECT_NEAR(got, static_cast<double>(ncx2_closed_form_k3(x, lambda)), kLargeTol);
        }
      }
    }
  // O(1) in lambda: 10^4 evaluations at lambda = 1e18 (each had O(1e9) terms, and a counter that
  // stopped counting past 2^53: it never ended).
  const auto t1 = std::chrono::steady_clock::now();
  double sink = 0;
  for (int i = 0; i < 10000; ++i) sink += ncx2_cdf(1e18 + (i - 5000) * 1e6, 3, 1e18);
  EXPECT_GT(sink, 0.0);
  const double per_call = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count() / 10000;
  EXPECT_LT(per_call, 1e-3) << "ncx2_cdf took " << per_call << " s per call at lambda = 1e18";
}

}  // namespace
}  // namespace gmmdiff
