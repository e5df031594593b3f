// The small statistics of the sweep report (host/report/stats_fit.cpp): the Student t quantile
// against tables, and least-squares slopes with their CIs (ordinary, weighted with the Birge
// ratio, pooled intercepts) against closed forms.
#include "report/stats_fit.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "gmmdiff/error.hpp"
#include "gmmdiff/report.hpp"

using namespace gmmdiff;

namespace {

constexpr double kQuantileTol = 1e-6;  // against 9-digit tables
constexpr double kExactFitTol = 1e-10;

}  // namespace

TEST(ReportStudentT, QuantilesMatchTables) {
  struct Case {
    double p, dof, t;
  } cases[] = {{0.975, 1, 12.7062047},  {0.975, 2, 4.30265273},    {0.975, 5, 2.57058184},
               {0.975, 10, 2.22813885}, {0.975, 30, 2.04227246},   {0.95, 3, 2.35336343},
               {0.995, 4, 4.60409487},  {0.975, 1000, 1.96233908}, {0.9, 7, 1.41492393}};
  for (const auto& c : cases) {
    SCOPED_TRACE("p = " + std::to_string(c.p) + ", dof = " + std::to_string(c.dof));
    EXPECT_NEAR(student_t_quantile(c.p, c.dof), c.t, kQuantileTol * c.t);
    EXPECT_NEAR(student_t_quantile(1 - c.p, c.dof), -c.t, kQuantileTol * c.t);
    EXPECT_NEAR(student_t_cdf(c.t, c.dof), c.p, 1e-8);
  }
  EXPECT_EQ(student_t_quantile(0.5, 3), 0.0);
  EXPECT_THROW(student_t_quantile(1.0, 3), Error);
  EXPECT_THROW(student_t_quantile(0.5, 0), Error);
}

TEST(ReportFit, ExactLineHasAZeroWidthCi) {
  const std::vector<double> x = {1, 2, 3, 4, 5}, y = {2.0, 1.0, 0.0, -1.0, -2.0};
  const LineFit f = fit_line(x, y);
  EXPECT_NEAR(f.b, -1.0, kExactFitTol);
  EXPECT_NEAR(f.a, 3.0, kExactFitTol);
  ASSERT_TRUE(f.has_ci());
  EXPECT_NEAR(f.ci_lo, -1.0, kExactFitTol);
  EXPECT_NEAR(f.ci_hi, -1.0, kExactFitTol);
  EXPECT_EQ(f.dof(), 3);
}

TEST(ReportFit, NoisySlopeCiFromTheResiduals) {
  // y = 1 + 0.5 x + e with e = +-0.1 alternating: se(b) known in closed form.
  std::vector<double> x, y;
  for (int i = 0; i < 6; ++i) {
    x.push_back(i);
    y.push_back(1 + 0.5 * i + (i % 2 ? 0.1 : -0.1));
  }
  const LineFit f = fit_line(x, y);
  double sxx = 0, ssr = 0;
  for (double v : x) sxx += (v - 2.5) * (v - 2.5);
  for (int i = 0; i < 6; ++i) {
    const double e = y[i] - (f.a + f.b * x[i]);
    ssr += e * e;
  }
  const double se = std::sqrt(ssr / 4 / sxx);
  EXPECT_NEAR(f.se_b, se, kExactFitTol);
  EXPECT_NEAR(f.ci_hi - f.b, student_t_quantile(0.975, 4) * se, kExactFitTol);
  EXPECT_LT(f.ci_lo, 0.5);
  EXPECT_GT(f.ci_hi, 0.5);
  // Two points: a slope but no CI.
  const LineFit two = fit_line({0, 1}, {0, 2});
  EXPECT_NEAR(two.b, 2.0, kExactFitTol);
  EXPECT_FALSE(two.has_ci());
  EXPECT_FALSE(fit_line({1}, {1}).ok());
  EXPECT_FALSE(fit_line({1, 1, 1}, {1, 2, 3}).ok());  // x constant
}

TEST(ReportFit, WeightedCiUsesThePointsSigmasAndTheBirgeRatio) {
  // y = 2 - x exactly, sigma 0.1 each: the interval comes from the sigmas alone.
  const std::vector<double> x = {0, 1, 2, 3}, y = {2, 1, 0, -1}, sigma = {0.1, 0.1, 0.1, 0.1};
  const LineFit f = fit_line(x, y, 0.95, sigma);
  EXPECT_NEAR(f.b, -1.0, kExactFitTol);
  const double se_known = 0.1 / std::sqrt(5.0);  // Sxx = 5 for x = 0..3
  EXPECT_NEAR(f.se_b, se_known, kExactFitTol);
  EXPECT_NEAR(f.ci_hi - f.b, student_t_quantile(0.975, 2) * se_known, kExactFitTol);
  EXPECT_NEAR(f.chi2_dof, 0.0, kExactFitTol);
  // Scatter of +-0.5 against sigmas of 0.1: the se grows by sqrt(chi^2 / dof).
  const std::vector<double> ys = {2.5, 0.5, -0.5, -0.5};
  const LineFit g = fit_line(x, ys, 0.95, sigma);
  const LineFit ols = fit_line(x, ys);
  EXPECT_NEAR(g.b, ols.b, kExactFitTol);
  EXPECT_GT(g.chi2_dof, 1.0);
  EXPECT_NEAR(g.se_b, se_known * std::sqrt(g.chi2_dof), kExactFitTol);
  EXPECT_NEAR(g.se_b, ols.se_b, kExactFitTol);  // equal weights: the OLS se
  // A precise point pulls the line: weights 1/sigma^2.
  const LineFit h = fit_line({0, 1, 2}, {0, 1, 0}, 0.95, {1e-3, 1.0, 1e-3});
  EXPECT_NEAR(h.b, 0.0, 1e-5);
  // Two points: no residual dof, the interval from the sigmas with the normal quantile.
  const LineFit two = fit_line({0, 1}, {0, 2}, 0.95, {0.1, 0.1});
  ASSERT_TRUE(two.has_ci());
  EXPECT_NEAR(two.ci_hi - two.b, normal_quantile(0.975) * 0.1 * std::sqrt(2.0), kExactFitTol);
  EXPECT_NEAR(normal_quantile(0.975), 1.959963985, 1e-8);
}

TEST(ReportFit, PooledSlopeIgnoresPerGroupIntercepts) {
  std::vector<double> x, y;
  std::vector<int> g;
  for (int grp = 0; grp < 3; ++grp)
    for (int i = 0; i < 4; ++i) {
      x.push_back(i);
      y.push_back(10.0 * grp - 0.75 * i);
      g.push_back(grp);
    }
  const LineFit f = fit_pooled(x, y, g);
  EXPECT_NEAR(f.b, -0.75, kExactFitTol);
  EXPECT_EQ(f.groups, 3);
  EXPECT_EQ(f.dof(), 12 - 3 - 1);
  EXPECT_LT(fit_line(x, y).r2, 0.5);  // one intercept cannot fit it
}
