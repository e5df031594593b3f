// gmmdiff: special functions in double for the TV module's exact target masses and noise floors
// (docs/tv.md). Written here rather than taken from a library so that the accuracy at large
// arguments (a up to ~1e5, n up to ~1e12) is known and tested (tests/core/test_special_functions.cpp).
//
// The log-space building blocks follow C. Loader, "Fast and accurate computation of binomial
// probabilities" (2000): stirlerr and bd0 avoid the cancellation of lgamma differences.
#pragma once
#include <cstdint>
#include <functional>

namespace gmmdiff {
namespace special {

/// Standard normal CDF Phi(z) and survival 1 - Phi(z), each accurate in its own tail (erfc).
double normal_cdf(double z);
double normal_sf(double z);
/// P(z1 <= Z < z2) for a standard normal Z, z1 <= z2, without cancellation in either tail.
double normal_interval(double z1, double z2);

/// log(n!) - log(sqrt(2 pi n) (n/e)^n), the error of Stirling's formula (n > 0, real).
double stirlerr(double n);
/// x log(x / np) + np - x, computed without cancellation when x is close to np (x >= 0, np > 0).
double bd0(double x, double np);
/// The Poisson "density" x^... generalised to real a: lambda^a e^{-lambda} / Gamma(a + 1) (a >= 0).
double dpois_raw(double a, double lambda);
/// Binomial probability P(X = x), X ~ Binomial(n, p), n and x integers held in double.
double dbinom(double x, double n, double p);
/// E|X - n p| for X ~ Binomial(n, p) (De Moivre's closed form; exact up to rounding).
double binomial_mad(double n, double p);

/// Regularized lower / upper incomplete gamma P(a, x), Q(a, x) = 1 - P(a, x), a > 0, x >= 0.
/// Series for x < a + 1, Lentz continued fraction otherwise; accurate for a up to ~1e5.
double gamma_p(double a, double x);
double gamma_q(double a, double x);

/// CDF of the chi-square with k > 0 degrees of freedom.
double chi2_cdf(double x, double k);
/// lambda / 2 above which ncx2_cdf leaves the Poisson sum for the conditional integral.
constexpr double kNcx2SeriesMaxMu = 1e4;
/// CDF of the non-central chi-square chi'^2(k, lambda). Up to lambda / 2 = kNcx2SeriesMaxMu: the
/// Poisson(lambda/2) mixture of central chi-squares with k + 2j degrees of freedom, summed outward
/// from the Poisson mode (upward and downward recurrences of P(a + j, x/2)) until the remaining
/// Poisson weight is below 1e-15: O(sqrt(lambda)) terms. Beyond (for k = 1 or k >= 2), in work
/// independent of lambda: the CDF conditional on the chi_{k-1} part orthogonal to the mean, two
/// normal CDFs, integrated by Gauss-Legendre (special_functions.cpp). Both are accurate to about
/// 1e-12 where the argument x is exact; at lambda = 1e18 an x near lambda is itself rounded by
/// 1e-16 x, which the CDF then follows.
double ncx2_cdf(double x, double k, double lambda);
/// P(a, x) by the Wilson-Hilferty cube-root normal approximation: O(1) for any a, relative error
/// of order 1/a. For bin edges, which need not be exact, never for masses.
double gamma_p_wilson_hilferty(double a, double x);

/// Solves F(x) = q for a non-decreasing F on the bracket [lo, hi] (F(lo) <= q <= F(hi)) by the
/// Illinois method with bisection safeguards. Stops when |F(x) - q| <= ftol, when the bracket is
/// narrower than xtol (relative to max(|lo|, |hi|, 1)), or after max_iter evaluations.
double invert_monotone(const std::function<double(double)>& F, double q, double lo, double hi,
                       double flo, double fhi, double ftol, double xtol = 1e-15, int max_iter = 200);

}  // namespace special
}  // namespace gmmdiff
