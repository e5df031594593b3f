// The statistics of the TV module (host/tv/statistics.cpp): the grammar of --stat, the principal
// directions of the means (orthonormal eigenvectors of M^T M, fast at K = d = 2000), and the
// seeded random directions.
#include "tv/statistics.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "gmmdiff/error.hpp"
#include "gmmdiff/model.hpp"
#include "gmmdiff/npy.hpp"

namespace gmmdiff {
namespace {

constexpr double kOrthoTol = 1e-12;            // orthonormality of directions
constexpr double kEigenResidualTol = 1e-9;     // |M^T M u - s^2 u| / s_1^2 for exact low rank

TEST(TvStats, ParsesTheGrammar) {
  const auto r = tv_detail::parse_stats("means, means:2,means2d,random:32,axes,axes:3,file:a:b.npy,radial,radial:0");
  ASSERT_EQ(r.size(), 9u);
  EXPECT_EQ(r[0].kind, tv_detail::StatRequest::Means);
  EXPECT_EQ(r[0].count, 0);
  EXPECT_EQ(r[1].count, 2);
  EXPECT_EQ(r[2].kind, tv_detail::StatRequest::Means2d);
  EXPECT_EQ(r[3].kind, tv_detail::StatRequest::Random);
  EXPECT_EQ(r[3].count, 32);
  EXPECT_EQ(r[5].count, 3);
  EXPECT_EQ(r[6].path, "a:b.npy");
  EXPECT_FALSE(r[7].origin);
  EXPECT_TRUE(r[8].origin);
  const auto h = tv_detail::parse_stats("meansperp, logp");
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(h[0].kind, tv_detail::StatRequest::MeansPerp);
  EXPECT_EQ(h[1].kind, tv_detail::StatRequest::LogP);
  EXPECT_THROW(tv_detail::parse_stats("logp:3"), Error);
  EXPECT_THROW(tv_detail::parse_stats("meansperp:1"), Error);
}

TEST(TvStats, BadTokensGiveOneLineListingWhatIsAllowed) {
  for (const std::string bad : {"foo", "means:x", "random", "random:0", "axes:-1", "radial:1", "means,,radial",
                                "file:", "means2d:3"}) {
    SCOPED_TRACE("spec = " + bad);
    try {
      tv_detail::parse_stats(bad);
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      const std::string w = e.what();
      EXPECT_EQ(w.find('\n'), std::string::npos);
      EXPECT_NE(w.find("allowed: means[:r], means2d, meansperp, random:M, axes[:m], file:PATH.npy, radial[:0], logp"),
                std::string::npos)
          << w;
    }
  }
}

TEST(TvStats, PrincipalDirectionsOfLowRankMeans) {
  // K = 5 means in a 3-D subspace of R^40: rank 3, directions orthonormal, in the span, and
  // eigenvectors of M^T M whose eigenvalues carry all of |M|_F^2.
  const int d = 40, K = 5;
  std::mt19937_64 g(11);
  std::normal_distribution<double> N01;
  std::vector<double> basis(3 * d), coef(K * 3);
  for (double& x : basis) x = N01(g);
  for (double& x : coef) x = 3 * N01(g);
  Mixture m;
  m.K = K;
  m.d = d;
  m.means.assign(K * d, 0.0);
  for (int k = 0; k < K; ++k)
    for (int a = 0; a < 3; ++a)
      for (int j = 0; j < d; ++j) m.means[k * d + j] += coef[k * 3 + a] * basis[a * d + j];
  m.sd = {1.0};
  m.weights.assign(K, 1.0 / K);
  validate(m);
  const tv_detail::Principal pr = tv_detail::principal_directions(m, 4);
  EXPECT_EQ(pr.rank, 3);
  ASSERT_EQ(pr.dirs.size(), 3u * d);
  double frob = 0, sum_s2 = 0;
  for (double x : m.means) frob += x * x;
  for (int a = 0; a < 3; ++a) {
    sum_s2 += pr.singular[a] * pr.singular[a];
    if (a > 0) {
      EXPECT_GE(pr.singular[a - 1], pr.singular[a]);
    }
    const double* u = pr.dirs.data() + a * d;
    for (int b = 0; b <= a; ++b) {
      double dot = 0;
      for (int j = 0; j < d; ++j) dot += u[j] * pr.dirs[b * d + j];
      EXPECT_NEAR(dot, a == b ? 1.0 : 0.0, kOrthoTol) << "a = " << a << ", b = " << b;
    }
    // Eigen-equation: M^T (M u) = s^2 u.
    std::vector<double> Mu(K, 0.0), res(d, 0.0);
    for (int k = 0; k < K; ++k)
      for (int j = 0; j < d; ++j) Mu[k] += m.means[k * d + j] * u[j];
    for (int k = 0; k < K; ++k)
      for (int j = 0; j < d; ++j) res[j] += m.means[k * d + j] * Mu[k];
    double r2 = 0;
    for (int j = 0; j < d; ++j) r2 += std::pow(res[j] - pr.singular[a] * pr.singular[a] * u[j], 2);
    EXPECT_LE(std::sqrt(r2), kEigenResidualTol * pr.singular[0] * pr.singular[0]) << "direction " << a;
  }
  EXPECT_NEAR(sum_s2 / frob, 1.0, 1e-12);
}

TEST(TvStats, PrincipalDirectionsOfLargeFullRankMeansAreFast) {
  const int d = 2000, K = 2000;
  PresetParams p;
  p.name = "random-sphere";
  p.d = d;
  p.K = K;
  p.radius = 5;
  const Mixture m = make_preset(p);
  const tv_detail::Principal pr = tv_detail::principal_directions(m, 4);
  SCOPED_TRACE(testing::Message() << "K = d = " << d << ", " << pr.iterations << " iterations");
  // "Fast" in work, not in wall time (a timed assertion fails on a loaded machine): the block
  // iteration never forms the d x d matrix M^T M and stops at its work cap (at most 100 passes
  // over M, 4 K d c flops each), whatever the spectrum.
  constexpr int kMaxPrincipalIterations = 100;
  EXPECT_LE(pr.iterations, kMaxPrincipalIterations);
  EXPECT_GE(pr.rank, 4);
  ASSERT_EQ(pr.dirs.size(), 4u * d);
  for (int a = 0; a < 4; ++a)
    for (int b = 0; b <= a; ++b) {
      double dot = 0;
      for (int j = 0; j < d; ++j) dot += pr.dirs[a * d + j] * pr.dirs[b * d + j];
      EXPECT_NEAR(dot, a == b ? 1.0 : 0.0, kOrthoTol);
    }
}

TEST(TvStats, RandomDirectionsAreUnitAndSeeded) {
  const auto a = tv_detail::random_directions(7, 3, 5), b = tv_detail::random_directions(7, 3, 5),
             c = tv_detail::random_directions(7, 3, 6);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  for (int i = 0; i < 3; ++i) {
    double n2 = 0;
    for (int j = 0; j < 7; ++j) n2 += a[i * 7 + j] * a[i * 7 + j];
    EXPECT_NEAR(n2, 1.0, kOrthoTol);
  }
}

// Issue 15: a direction of huge norm gave TV 0 (its squared norm overflowed to inf, every value
// divided by it: a zero direction), and one of tiny norm was refused as zero (it underflowed).
// Each row is scaled by its largest value before its norm is taken.
TEST(TvStats, FileDirectionsOfAnyScaleAreTheSame) {
  for (double scale : {1.0, 1e300, 1e-300}) {
    SCOPED_TRACE(scale);
    NpyArray a;
    a.shape = {2, 2};
    a.data = {3 * scale, 4 * scale, -scale, 0.0};
    const std::vector<double> u = tv_detail::file_directions(a, "dirs.npy", 2);
    EXPECT_NEAR(u[0], 0.6, 1e-15);
    EXPECT_NEAR(u[1], 0.8, 1e-15);
    EXPECT_EQ(u[2], -1.0);
    EXPECT_EQ(u[3], 0.0);
  }
}

}  // namespace
}  // namespace gmmdiff

namespace gmmdiff {
namespace {

// Means near the largest a model holds (8e153: E|X|^2 fits a double): the principal directions
// scaled W = M V by 1 / max|mu| but not Z = M^T W, whose squared norm overflowed, so every column
// was dropped and the means "spanned no direction" (means and meansperp were skipped). The
// directions of the means x s are those of the means, for s from 1 to 8e153.
TEST(TvStats, PrincipalDirectionsOfMeansOfAnyScaleAreTheSame) {
  const std::vector<double> base = {1.0, -0.875, 0.0, 1.0, 0.875, 0.25};  // K = 2, d = 3
  const auto directions = [&](double s) {
    Mixture m;
    m.K = 2;
    m.d = 3;
    for (double x : base) m.means.push_back(x * s);
    m.sd = {1.0};
    m.weights = {0.5, 0.5};
    validate(m);
    return tv_detail::principal_directions(m, 2);
  };
  const tv_detail::Principal p1 = directions(1.0);
  ASSERT_EQ(p1.rank, 2);
  for (double s : {1e120, 1e150, 8e153}) {
    SCOPED_TRACE(testing::Message() << "means x " << s);
    const tv_detail::Principal ps = directions(s);
    ASSERT_EQ(ps.rank, 2);
    ASSERT_EQ(ps.dirs.size(), p1.dirs.size());
    for (std::size_t i = 0; i < p1.dirs.size(); ++i) EXPECT_NEAR(ps.dirs[i], p1.dirs[i], kOrthoTol) << "value " << i;
    EXPECT_NEAR(ps.singular[0] / s, p1.singular[0], kOrthoTol * p1.singular[0]);
  }
}

}  // namespace
}  // namespace gmmdiff
