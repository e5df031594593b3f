// The figures of the TV module (host/tv/figures.cpp): against closed-form binned TVs of K = 1
// targets (Gaussian sample and target, an exact sample against itself, two shifted Gaussians),
// and the calibration of the bootstrap (coverage, false resolution rate, bias correction).
#include "tv/figures.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "gmmdiff/backend.hpp"
#include "gmmdiff/model.hpp"
#include "gmmdiff/tv.hpp"
#include "core/special_functions.hpp"
#include "tv/plan_detail.hpp"
#include "util/sample_util.hpp"
#include "util/tv_util.hpp"

namespace gmmdiff {
namespace {

using test::draw;
using test::isotropic;
using test::kNullFloorBand;
using test::normal_masses;
using tv_detail::build_plan;

constexpr double kMinCoverage = 0.85;          // nominal 95% CI; simulations give 0.88-0.97
constexpr double kMaxNullResolvedRate = 0.08;  // nominal 2.5% (one-sided test of the null)

/// Binned TV between masses P (sample law) and p (target).
double binned_tv(const std::vector<double>& P, const std::vector<double>& p) {
  double t = 0;
  for (std::size_t b = 0; b < p.size(); ++b) t += std::fabs(P[b] - p[b]);
  return 0.5 * t;
}

/// Masses of v * chi'^2(k, lambda) in the bins of edges.
std::vector<double> scaled_ncx2_masses(const std::vector<double>& e, double v, double k, double lambda) {
  std::vector<double> P(e.size() - 1);
  for (std::size_t b = 0; b + 1 < e.size(); ++b) {
    const double hi = std::isinf(e[b + 1]) ? 1.0 : special::ncx2_cdf(e[b + 1] / v, k, lambda);
    const double lo = e[b] <= 0 ? 0.0 : special::ncx2_cdf(e[b] / v, k, lambda);
    P[b] = hi - lo;
  }
  return P;
}

// ---- figures against closed forms -------------------------------------------------------------

TEST(TvClosedForm, GaussianSampleAgainstGaussianTargetCiContainsExactBinnedTv) {
  // Sample Y ~ N(m, v I) exactly; target X_0 ~ N(mu, s^2 I) (K = 1). Projections and the radial
  // statistic have closed-form laws under both, so the binned TV is exact for the plan's edges.
  // 12 checks of a 95% interval (4 statistics x 3 sizes; simulated coverage 0.90-0.97 each):
  // at most one may miss, and only by less than half the interval's width.
  const int d = 3;
  const std::vector<double> mu = {1.0, 0.0, 0.0}, ym = {1.08, 0.05, 0.0};
  const double s = 1.0, v = 1.1 * 1.1;
  const Mixture target = isotropic(d, {mu}, {s}, {1.0});
  Mixture law = isotropic(d, {ym}, {std::sqrt(v)}, {1.0});
  TvOptions o;
  o.stats = "means,axes:2,radial";
  o.seed = 7;
  auto be = make_backend("cpu", 0);
  int checks = 0, misses = 0;
  for (uint64_t n : {uint64_t(10000), uint64_t(100000), uint64_t(1000000)}) {
    const std::vector<double> y = draw(law, n, 100 + n);
    const TvReport rep = tv_of_sample(target, y.data(), n, o, *be);
    const tv_detail::Plan plan = build_plan(target, o, n);
    ASSERT_EQ(rep.stats.size(), plan.stats.size());
    for (std::size_t i = 0; i < rep.stats.size(); ++i) {
      const auto& ps = plan.stats[i];
      const auto& r = rep.stats[i];
      const auto& e = plan.spec.edges[ps.a];
      std::vector<double> P;
      if (ps.name == "radial") {
        double lam = 0;  // centre = mu (K = 1)
        for (int j = 0; j < d; ++j) lam += (ym[j] - mu[j]) * (ym[j] - mu[j]);
        P = scaled_ncx2_masses(e, v, d, lam / v);
      } else {
        const double* u = plan.spec.directions.data() + ps.a * d;
        double mean = 0;
        for (int j = 0; j < d; ++j) mean += u[j] * ym[j];
        P = normal_masses(e, mean, std::sqrt(v));
      }
      const double tau = binned_tv(P, ps.target_mass);
      SCOPED_TRACE(testing::Message() << "n = " << n << ", stat " << r.name << ", bins " << r.bins << ": exact binned TV "
                                      << tau << ", tv " << r.tv << ", tv_corrected " << r.tv_corrected << ", floor "
                                      << r.floor << ", CI [" << r.ci_lo << ", " << r.ci_hi << "]");
      ++checks;
      const double width = r.ci_hi - r.ci_lo;
      if (tau < r.ci_lo || tau > r.ci_hi) {
        ++misses;
        EXPECT_LT(std::max(r.ci_lo - tau, tau - r.ci_hi), 0.5 * width) << "a miss by more than half the width";
      }
      EXPECT_TRUE(r.exact_target);
      EXPECT_TRUE(r.resolved);  // tau is 4-20 floors here
      EXPECT_NEAR(r.tv_corrected, tau, width);
    }
  }
  EXPECT_LE(misses, 1) << "of " << checks << " checks";
}

TEST(TvClosedForm, ExactSampleAgainstItselfStaysWithinTheFloor) {
  const Mixture m = isotropic(4, {{2, 0, 1, 0}, {-1, 0.5, 0, 1}, {0, -2, 0, 0}}, {0.7, 1.3, 1.0}, {0.3, 0.3, 0.4});
  TvOptions o;
  o.stats = "means,means2d,random:3,axes:2,radial";
  o.seed = 3;
  const uint64_t n = 200000;
  const std::vector<double> y = draw(m, n, 99);
  auto be = make_backend("cpu", 0);
  const TvReport rep = tv_of_sample(m, y.data(), n, o, *be);
  int resolved = 0;
  for (const auto& r : rep.stats) {
    SCOPED_TRACE(testing::Message() << r.name << ": tv " << r.tv << ", floor " << r.floor << ", CI [" << r.ci_lo
                                    << ", " << r.ci_hi << "], tv_corrected " << r.tv_corrected);
    EXPECT_NEAR(r.tv / r.floor, 1.0, kNullFloorBand);
    EXPECT_LT(r.tv_corrected, r.floor);
    EXPECT_TRUE(r.exact_target);
    resolved += r.resolved;
  }
  EXPECT_LE(resolved, 1) << "of " << rep.stats.size() << " statistics (nominal rate 2.5% each)";
  EXPECT_EQ(rep.nonfinite, 0u);
  EXPECT_EQ(rep.n, n);
}

TEST(TvClosedForm, TwoShiftedGaussians) {
  // X_0 ~ N((2, 0), I), Y ~ N((2 + delta, 0), I): the projection on e_1 has TV 2 Phi(delta/2) - 1,
  // binned TV a little below; the orthogonal axis has TV 0.
  const double delta = 0.1;
  const Mixture target = isotropic(2, {{2, 0}}, {1.0}, {1.0});
  const Mixture law = isotropic(2, {{2 + delta, 0}}, {1.0}, {1.0});
  TvOptions o;
  o.stats = "axes:2";
  const uint64_t n = 400000;
  const std::vector<double> y = draw(law, n, 5);
  auto be = make_backend("cpu", 0);
  const TvReport rep = tv_of_sample(target, y.data(), n, o, *be);
  const tv_detail::Plan plan = build_plan(target, o, n);
  const double continuous = 2 * special::normal_cdf(delta / 2) - 1;
  const double tau = binned_tv(normal_masses(plan.spec.edges[0], 2 + delta, 1.0), plan.stats[0].target_mass);
  const StatResult& a0 = rep.stats[0];
  const StatResult& a1 = rep.stats[1];
  SCOPED_TRACE(testing::Message() << "continuous TV " << continuous << ", binned " << tau << "; axis[0] tv " << a0.tv
                                  << " CI [" << a0.ci_lo << ", " << a0.ci_hi << "]; axis[1] tv " << a1.tv << " CI ["
                                  << a1.ci_lo << ", " << a1.ci_hi << "]");
  EXPECT_LE(tau, continuous);
  EXPECT_GE(tau, 0.95 * continuous);
  EXPECT_LE(a0.ci_lo, tau);
  EXPECT_GE(a0.ci_hi, tau);
  EXPECT_TRUE(a0.resolved);
  EXPECT_EQ(rep.best, 0u);
  EXPECT_EQ(a1.ci_lo, 0.0);
  EXPECT_FALSE(a1.resolved);
}

// ---- calibration of the bootstrap -------------------------------------------------------------

void multinomial(std::mt19937_64& g, uint64_t n, const std::vector<double>& p, std::vector<uint64_t>& out) {
  out.assign(p.size(), 0);
  double rest = 1;
  uint64_t left = n;
  for (std::size_t b = 0; b + 1 < p.size() && left > 0; ++b) {
    const double q = std::clamp(p[b] / rest, 0.0, 1.0);
    const uint64_t x = q >= 1 ? left : std::binomial_distribution<long long>(left, q)(g);
    out[b] = x;
    left -= x;
    rest -= p[b];
  }
  out.back() += left;
}

TEST(TvBootstrap, CoverageAndFalseResolutionRate) {
  const int B = 30, reps = 150;
  const uint64_t n = 20000;
  std::vector<double> p(B), pattern(B);
  double z = 0, spread = 0;
  for (int b = 0; b < B; ++b) z += (p[b] = 1 + 0.5 * std::cos(1.3 * b));
  for (int b = 0; b < B; ++b) {
    p[b] /= z;
    pattern[b] = std::sin(2 * M_PI * (b + 0.5) / B) * p[b];
    spread += std::fabs(pattern[b]);
  }
  for (uint64_t m : {uint64_t(0), uint64_t(20000)}) {
    double floor = 0;
    for (int b = 0; b < B; ++b)
      floor += m == 0 ? special::binomial_mad(n, p[b]) / n
                      : std::sqrt(2 / M_PI) * std::sqrt(p[b] * (1 - p[b]) * (1.0 / n + 1.0 / m));
    floor /= 2;
    for (double ratio : {0.0, 5.0}) {
      std::vector<double> P(B);
      for (int b = 0; b < B; ++b) P[b] = p[b] + ratio * floor / (0.5 * spread) * pattern[b];
      const double tau = binned_tv(P, p);
      std::mt19937_64 g(1234 + m + static_cast<uint64_t>(ratio));
      int covered = 0, resolved = 0;
      double mean_bc = 0;
      for (int r = 0; r < reps; ++r) {
        std::vector<uint64_t> c, rc;
        multinomial(g, n, P, c);
        std::vector<double> target = p;
        if (m > 0) {
          multinomial(g, m, p, rc);
          for (int b = 0; b < B; ++b) target[b] = rc[b] / static_cast<double>(m);
        }
        const StatResult f = tv_detail::histogram_figures(c, target, m, 200, 1000 + r);
        covered += f.ci_lo <= tau && tau <= f.ci_hi;
        resolved += f.resolved;
        mean_bc += f.tv_corrected / reps;
      }
      SCOPED_TRACE(testing::Message() << "reference n " << m << ", true binned TV " << tau << " (" << ratio
                                      << " floors): coverage " << covered / double(reps) << ", resolved "
                                      << resolved / double(reps) << ", mean tv_corrected " << mean_bc);
      EXPECT_GE(covered, kMinCoverage * reps);
      if (ratio == 0) {
        EXPECT_LE(resolved, kMaxNullResolvedRate * reps);
        EXPECT_LT(mean_bc, 0.5 * floor);
      } else {
        EXPECT_EQ(resolved, reps);
        EXPECT_NEAR(mean_bc / tau, 1.0, 0.05);
      }
    }
  }
}

}  // namespace
}  // namespace gmmdiff
